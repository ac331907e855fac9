import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// Reaching members through others: every task channel this node opens (submit, logs, slot
/// exchanges) goes through `channel(to:)`, which tries the direct path and, when nothing answers
/// there, the target's watchers (`Relays`). A member reached through a relay is tried directly
/// again after `retryDirect`; `status` shows `"reach": "via NODE"` meanwhile.
extension Agent {
    /// Relays tried for one channel: a member that is down costs a connect timeout per try.
    static let relayTries = 2

    /// A relay the task plane uses, else the member the gossip hears `node` through, else direct.
    func reachText(_ node: String, gossipVia: String? = nil) -> String {
        if let r = relays.relay(for: node) { return "via \(r)" }
        return gossipVia.map { "via \($0)" } ?? "direct"
    }

    /// The member a channel to `node` goes through from here now (`reachText`'s), or nil: direct.
    func via(_ node: String) -> String? {
        if let r = relays.relay(for: node) { return r }
        return node == name ? nil : core.snapshot(now: Clock.now()).first { $0.name == node }?.via
    }

    /// The direct path to a member reached through a relay is tried again in the background once
    /// `retryDirect` has passed since it failed (a chore, every few seconds), so `via` ends within
    /// about that long after the direct path returns, whether or not a task needs the member.
    func retryDirectPaths() {
        guard !leaving else { return }
        let due = relays.dueForDirectTry()
        guard !due.isEmpty else { return }
        let (keyPair, trusted) = credentials()
        let me = name, from = listenAddress
        for node in due {
            guard let direct = provenAddress(of: node) else { continue }
            spawn {
                do throws(MeshError) {
                    let ch = try await SecureChannel.connect(to: direct, expected: node, me: me, keyPair: keyPair, trusted: trusted, from: from)
                    ch.close()
                    if let was = relays.reachedDirectly(node) { Log.info("\(node) is reachable directly again (was via \(was))") }
                } catch {
                    Log.debug("\(node) is still not reachable directly: \(error.message)")
                }
            }
        }
    }

    /// Where this node may connect to `node` directly: the view's address when `node` proved its key
    /// there (gossip's proof of key, protocol.md 2.3), else another address it proved its key at;
    /// nil when it was never heard from directly. Never an address a member only announced, which
    /// whoever holds its key can point at any host (issue 24: a relay became an open proxy).
    func provenAddress(of node: String) -> WireAddress? {
        if node == name { return address(of: node) }       // this node itself (a submission to itself)
        if let a = address(of: node), gossip.provenPeer(at: a) == node { return a }
        return gossip.provenAddresses(of: node).first { !$0.isUnspecified }
    }

    /// An authenticated channel to `node`, direct or through another member. `address` (the view's)
    /// is used directly only once `node` proved its key there (`provenAddress`).
    func channel(to node: String, address: WireAddress) async throws(MeshError) -> SecureChannel {
        let (keyPair, trusted) = credentials()
        let me = name, from = listenAddress
        var failure: MeshError?
        let view = core.snapshot(now: Clock.now())
        // The direct path failed lately, or the gossip hears the node only through another member
        // (connectivity that is not transitive): a connect there would only time out.
        let recentlyFailed = relays.failedLately(node)
        let gossipVia = view.first { $0.name == node }?.via
        let direct = provenAddress(of: node)
        // A member of the release before this one speaks the first handshake (and carries no relay).
        let previous = view.first { $0.name == node }?.runsPreviousRelease ?? false
        if !recentlyFailed || previous, gossipVia == nil, let direct {
            do throws(MeshError) {
                let ch = try await SecureChannel.connect(to: direct, expected: node, me: me, keyPair: keyPair, trusted: trusted, from: from,
                                                         previousRelease: previous)
                if let was = relays.reachedDirectly(node) { Log.info("\(node) is reachable directly again (was via \(was))") }
                channels.enter(node, ch.io, capped: false)
                return ch
            } catch {
                // A refusal is the node's (or its host's) answer: another path would get the same.
                if error.code == MeshError.noPermission || SecureChannel.refusedByHost(error) { throw error }
                failure = error
            }
        }
        // A suspect member is often down: each try may cost a connect timeout, so one only.
        let tries = view.first { $0.name == node }?.state == .suspect ? 1 : Self.relayTries
        for relay in Relays.candidates(for: node, members: view, watchers: core.profile.watchers,
                                       unreachable: relays.unreachable).prefix(tries) {
            guard let relayAddress = provenAddress(of: relay) else { continue }
            do throws(MeshError) {
                let ch = try await SecureChannel.connect(via: relay, at: relayAddress, to: node, me: me, keyPair: keyPair,
                                                         trusted: trusted, from: from)
                if failure != nil || gossipVia != nil || relays.relay(for: node) != nil {
                    if relays.relay(for: node) != relay { Log.info("reaching \(node) through \(relay): no direct path") }
                    relays.reached(node, through: relay, directFailedNow: failure != nil)
                } else {
                    // Only not heard from directly yet (just learnt through a sync, moments after
                    // start): no path failed, so nothing is marked. Its first datagram here proves its
                    // address and the next channel goes direct, with no retry to wait for.
                    Log.debug("reaching \(node) through \(relay): not heard from directly yet")
                }
                channels.enter(node, ch.io, capped: false)
                channels.enter(relay, ch.io, capped: false)
                return ch
            } catch {
                if error.code == MeshError.noPermission { throw error }
                Log.debug("no channel to \(node) through \(relay): \(error.message)")
            }
        }
        if let failure { throw failure }
        guard let direct else {
            throw MeshError(MeshError.tempFail, "cannot reach \(node): it has not been heard from directly here, and no member could carry a channel to it")
        }
        // The relays failed too, and the direct path was not tried (it failed moments ago, or the
        // gossip said it would): try it now.
        relays.reachedDirectly(node)
        if gossipVia != nil {
            let ch = try await SecureChannel.connect(to: direct, expected: node, me: me, keyPair: keyPair, trusted: trusted, from: from)
            channels.enter(node, ch.io, capped: false)
            return ch
        }
        return try await channel(to: node, address: address)
    }

    /// `{"op": "relay", "to": TARGET}` from a trusted peer. TARGET must be up and have proved its
    /// key at the address this node connects to (`provenAddress`); this node then opens its own
    /// authenticated channel to TARGET (TARGET's answer proves its key before a byte of the
    /// requester's goes anywhere) and asks it to take the carried channel (`carry`); from TARGET's
    /// `info` on, bytes are copied both ways and the two ends run their own handshake inside.
    /// Revoking either end here cuts it (`applyTrusted`).
    func carry(to target: String?, for ch: SecureChannel) async {
        func refuse(_ why: String) async { try? await ch.send(.error(MeshError(MeshError.unavailable, why))) }
        guard let target, NodeName.isValid(target), target != name, target != ch.peer, trustedKey(target) != nil,
              address(of: target) != nil, !leaving else {
            return await refuse("\(name) cannot carry a channel to \(target ?? "that node")")
        }
        guard let address = provenAddress(of: target) else {
            return await refuse("\(name) has not heard from \(target) directly, so it carries no channel to it")
        }
        guard let id = relays.startCarrying(from: ch.peer, to: target, ch.io) else { return await refuse("\(name) carries too many channels now") }
        defer { relays.stopCarrying(id) }
        let (keyPair, trusted) = credentials()
        let outer: SecureChannel
        do throws(MeshError) {
            outer = try await SecureChannel.connect(to: address, expected: target, me: name, keyPair: keyPair, trusted: trusted, from: listenAddress)
        } catch {
            return await refuse("\(name) cannot reach \(target): \(error.message)")
        }
        relays.addEnd(outer.io, to: id)
        channels.enter(target, outer.io, capped: false)
        outer.io.setDeadline(SecureChannel.handshakeSeconds)
        let taken: Bool
        do throws(MeshError) {
            try await outer.send(Frame(.request, encoding: TaskRequest.carry(from: ch.peer)))
            taken = try await outer.receive()?.type == .info
        } catch { taken = false }
        outer.io.setDeadline(nil)
        // Either end may have been revoked meanwhile.
        guard taken, trustedKey(target) != nil, trustedKey(ch.peer) != nil else {
            outer.abort()
            return await refuse("\(target) did not take a channel carried by \(name)")
        }
        Log.debug("carrying a task channel from \(ch.peer) to \(target)")
        try? await ch.send(.info("relaying to \(target)"))
        await SecureChannel.splice(ch.io, outer.io)
    }

    /// `{"op": "carry", "from": NODE}` on a relay's own channel: from the next byte on, the
    /// connection carries NODE's channel, whose handshake this node runs as for any connection
    /// (NODE proves its key end to end; the relay sees only sizes). Then it is served like any.
    func carried(from: String?, on ch: SecureChannel) async {
        guard let from, NodeName.isValid(from), from != name, from != ch.peer, trustedKey(from) != nil, !leaving else {
            try? await ch.send(.error(MeshError(MeshError.unavailable, "\(name) takes no channel from \(from ?? "that node")")))
            return
        }
        try? await ch.send(.info("carrying"))
        let (keyPair, _) = credentials()
        let inner: SecureChannel
        do throws(SecureChannel.Refusal) {
            inner = try await SecureChannel.accept(io: ch.io, me: name, keyPair: keyPair, trusted: { await self.trustedKey($0) })
        } catch {
            noteRefusal(error.phrase + " (carried by \(ch.peer))", from: ch.peer)
            return
        }
        guard inner.peer == from else {
            try? await inner.send(.error(MeshError(MeshError.noPermission, "\(ch.peer) said it carries \(from), not \(inner.peer)")))
            return
        }
        await serveAccepted(inner)
    }
}
