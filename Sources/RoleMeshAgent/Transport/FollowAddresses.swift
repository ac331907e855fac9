import RoleMeshPlatform
import RoleMeshCore
import RoleMeshTransport

/// Moving between networks (README, "Travelling"): the agent follows its own addresses.
///
/// - Listening on 0.0.0.0 or [::] (what a laptop should use): within about 2 s of a change it
///   announces the address the mesh reaches it at now, and asks every peer to prove its key again
///   (on a new network a stranger may sit at a remembered address). Peers also follow on their own:
///   a member is reached where its authenticated datagrams come from (protocol.md 7.5).
/// - Listening on a fixed address that vanished: it says so once, and waits for it to return.
/// - Cut off (no route to any member or seed, or the fixed address gone): the failure detector is
///   held instead of declaring the whole mesh dead; on return the core treats the gap like a
///   suspension of this process (it refreshes everyone and accuses nobody, protocol.md 7.2).
extension Agent {
    /// Netlink reports a change as a burst of messages (one address goes, another comes): one look after it.
    static let addressSettleSeconds = 0.3
    /// A look without being told, for systems without netlink and as a safety net.
    static let addressLookMs = 10_000

    func startFollowingAddresses() {
        addressWatcher = AddressWatcher { [weak self] in
            guard let self else { return }
            self.spawn { await self.addressesMayHaveChanged() }
        }
        every(ms: Self.addressLookMs) { $0.checkOwnAddress() }
    }

    func addressesMayHaveChanged() {
        guard !addressLookPending else { return }
        addressLookPending = true
        queue.asyncAfter(deadline: .now() + Self.addressSettleSeconds) { [weak self] in
            self?.assumeIsolated { agent in
                agent.addressLookPending = false
                agent.checkOwnAddress()
            }
        }
    }

    /// Compares what the device's addresses say now with what the agent last acted on.
    func checkOwnAddress() {
        guard !leaving else { return }
        let reachable: Bool
        if listenAddress.isUnspecified {
            let targets = core.rememberedPeers.sorted { $0.key < $1.key }.map(\.value) + seedAddresses
            if let here = OwnAddress.toward(targets, listen: listenAddress) {
                reachable = true
                if here != core.me.address {
                    Log.info("this device's address changed from \(core.me.address) to \(here): telling the mesh",
                             context: ["node": name])
                    node.forgetProofs()
                    perform(node.updateSelf(now: Clock.now(), announce: true) { $0.address = here })
                    let submitter = self.submitter
                    spawn { await submitter.ownAddressChanged(to: here) }
                }
            } else {
                reachable = targets.isEmpty      // alone: there is nobody to be cut off from
            }
        } else {
            reachable = OwnAddress.isLocal(listenAddress)
            if reachable, cutOff { node.forgetProofs() }
        }
        if !reachable, !cutOff {
            cutOff = true
            Log.warn(listenAddress.isUnspecified
                ? "this device has no route to any member or seed now: holding failure detection until it has one"
                : "the listen address \(listenAddress) is no longer on this device: this node is cut off from the mesh until it returns (listen = \"0.0.0.0:\(listenAddress.port)\" in node.toml follows the device's addresses instead)",
                context: ["node": name])
        } else if reachable, cutOff {
            cutOff = false
            armCoreTick()    // the first tick back sees the gap (see above)
            Log.info(listenAddress.isUnspecified ? "a route to the mesh is back" : "the listen address \(listenAddress) is back",
                     context: ["node": name])
        }
    }

    /// After a view change: members now reached at another address (they moved). Their task
    /// connections to the old address are dead (`Submitter.memberMoved`).
    func noticeMoves() {
        var now: [String: WireAddress] = [:]
        for m in core.snapshot(now: Clock.now()) where !m.isSelf && (m.state == .alive || m.state == .suspect) { now[m.name] = m.address }
        for (name, address) in now {
            guard let old = memberAddresses[name], old != address else { continue }
            let submitter = self.submitter
            spawn { await submitter.memberMoved(name, from: old, to: address) }
        }
        memberAddresses = now
    }
}
