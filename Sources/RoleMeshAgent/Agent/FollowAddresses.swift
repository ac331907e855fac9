import RoleMeshPlatform
import RoleMeshCore
import RoleMeshTransport

/// The agent acting on what its `AddressFollower` finds (RoleMeshTransport/AddressFollower.swift):
/// it looks when netlink reports a change (after the burst settles) and every 10 s regardless.
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
        let look = addresses.look(announced: core.me.address,
                                  remembered: core.rememberedPeers.sorted { $0.key < $1.key }.map(\.value))
        for note in look.notes {
            if note.warning { Log.warn(note.text, context: ["node": name]) } else { Log.info(note.text, context: ["node": name]) }
        }
        if look.forgetProofs { node.forgetProofs() }
        if let here = look.movedTo {
            perform(node.updateSelf(now: Clock.now(), announce: true) { $0.address = here })
            let submitter = self.submitter
            spawn { await submitter.ownAddressChanged(to: here) }
        }
        if look.cutOffChanged == false { armCoreTick() }     // the first tick back sees the gap
    }

    /// After a view change: members now reached at another address (they moved). Their task
    /// connections to the old address are dead (`Submitter.memberMoved`).
    func noticeMoves() {
        var now: [String: WireAddress] = [:]
        for m in core.snapshot(now: Clock.now()) where !m.isSelf && (m.state == .alive || m.state == .suspect) { now[m.name] = m.address }
        let moved = addresses.moves(now)
        guard !moved.isEmpty else { return }
        let submitter = self.submitter
        spawn { for m in moved { await submitter.memberMoved(m.name, from: m.from, to: m.to) } }
    }
}
