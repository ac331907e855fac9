#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshControl
import RoleMeshCore

/// Reaching members through others: every task channel this node opens (submit, logs, slot
/// exchanges) goes through `channel(to:)`, which tries the direct path and, when nothing answers
/// there, the target's watchers (`Relays`). A member reached through a relay is tried directly
/// again after `retryDirect`; `status` shows `"reach": "via NODE"` meanwhile.
extension Agent {
    static let retryDirect: TimeInterval = 30
    /// Relayed channels this node carries at once for others, at most.
    static let carryLimit = 32
    /// Relays tried for one channel: a member that is down costs a connect timeout per try.
    static let relayTries = 2

    /// A relay the task plane uses, else the member the gossip hears `node` through, else direct.
    func reachText(_ node: String, gossipVia: String? = nil) -> String {
        if let r = reach[node] { return "via \(r.via)" }
        return gossipVia.map { "via \($0)" } ?? "direct"
    }

    /// An authenticated channel to `node` at `address`, direct or through another member.
    func channel(to node: String, address: WireAddress) async throws(MeshError) -> SecureChannel {
        let (keyPair, trusted) = credentials()
        let me = name, from = listenAddress
        var failure: MeshError?
        let view = core.snapshot(now: Clock.now())
        // The direct path failed lately, or the gossip hears the node only through another member
        // (connectivity that is not transitive): a connect there would only time out.
        let recentlyFailed = reach[node].map { Date().timeIntervalSince($0.failed) < Self.retryDirect } ?? false
        let gossipVia = view.first { $0.name == node }?.via
        if !recentlyFailed, gossipVia == nil {
            do throws(MeshError) {
                let ch = try await SecureChannel.connect(to: address, expected: node, me: me, keyPair: keyPair, trusted: trusted, from: from)
                if let was = reach.removeValue(forKey: node) { Log.info("\(node) is reachable directly again (was via \(was.via))") }
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
                                       unreachable: Set(reach.keys)).prefix(tries) {
            guard let relayAddress = self.address(of: relay), !relayAddress.isUnspecified else { continue }
            do throws(MeshError) {
                let ch = try await SecureChannel.connect(via: relay, at: relayAddress, to: node, me: me, keyPair: keyPair,
                                                         trusted: trusted, from: from)
                if reach[node]?.via != relay { Log.info("reaching \(node) through \(relay): no direct path") }
                reach[node] = (relay, failure == nil ? reach[node]?.failed ?? Date() : Date())
                return ch
            } catch {
                if error.code == MeshError.noPermission { throw error }
                Log.debug("no channel to \(node) through \(relay): \(error.message)")
            }
        }
        if let failure { throw failure }
        // The relays failed too, and the direct path was not tried (it failed moments ago, or the
        // gossip said it would): try it now.
        reach[node] = nil
        if gossipVia != nil {
            return try await SecureChannel.connect(to: address, expected: node, me: me, keyPair: keyPair, trusted: trusted, from: from)
        }
        return try await channel(to: node, address: address)
    }

    /// `{"op": "relay", "to": TARGET}` from a trusted peer: a TCP connection to TARGET, then bytes
    /// copied both ways; the two ends run their own handshake inside. Revoking either end here
    /// cuts it (`applyTrusted`).
    func carry(to target: String?, for ch: SecureChannel) async {
        func refuse(_ why: String) async { try? await ch.send(.error(MeshError(MeshError.unavailable, why))) }
        guard let target, NodeName.isValid(target), target != name, target != ch.peer, trustedKey(target) != nil,
              let address = address(of: target), !address.isUnspecified, !leaving else {
            return await refuse("\(name) cannot carry a channel to \(target ?? "that node")")
        }
        guard carried.count < Self.carryLimit else { return await refuse("\(name) carries too many channels now") }
        let id = nextCarryID
        nextCarryID += 1
        carried[id] = (ch.peer, target, [ch.io])
        defer { carried[id] = nil }
        let io: AsyncFD
        do throws(MeshError) { io = try await SecureChannel.openTCP(to: address, peer: target, from: listenAddress) } catch {
            return await refuse(error.message)
        }
        io.setDeadline(nil)
        // Either end may have been revoked while the connection was made.
        guard trustedKey(target) != nil, trustedKey(ch.peer) != nil else { io.abort(); return }
        carried[id]?.ends.append(io)
        Log.debug("carrying a task channel from \(ch.peer) to \(target)")
        try? await ch.send(.info("relaying to \(target)"))
        await SecureChannel.splice(ch.io, io)
    }
}
