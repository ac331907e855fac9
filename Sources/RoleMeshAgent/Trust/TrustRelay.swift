#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshControl
import RoleMeshCore

/// Introductions and revocations: judged by `TrustLedger` (RoleMeshCore/Trust), applied to
/// `keys/` here, and spread on the slot-record exchange (Schedules/SlotRelay.swift): pushed to
/// every up member when this node accepts a new one, and caught up by the exchange with one
/// member every 10 s. The agent's `keys/` reload then trusts or distrusts the node, and a
/// revocation ends its channels and tasks as a removed `.pub` does.
extension Agent {
    static func wallMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    var trustView: TrustLedger.View {
        TrustLedger.View(me: name, trusted: keyRing.trusted, introducers: config.introducers, revokedOnDisk: revokedOnDisk)
    }

    /// Considers statements (ours, or a peer's); applies what is accepted and passes news on.
    /// Returns the file changes it started, each ending with its failure if it failed (the `revoke`
    /// command answers once they are done, with that failure).
    @discardableResult
    func considerTrust(_ statements: [TrustStatement], from peer: String) -> [Task<MeshError?, Never>] {
        var news = false
        var applying: [Task<MeshError?, Never>] = []
        for s in statements.prefix(TrustLedger.capacity) {
            switch trust.consider(s, trustView) {
            case .known: continue
            case .refused(let why): Log.debug("trust statement from \(peer): \(why)"); continue
            case .held: break
            case .introduce(let s): applying.append(applyIntroduction(s))
            case .revoke(let s): applying.append(applyRevocation(s))
            }
            news = true
        }
        guard news else { return applying }
        let statements = trust.statements, dir = self.dir
        disk.write { () throws(MeshError) in try TrustStore.save(statements, dir) }
        shareSlots()
        return applying
    }

    func applyIntroduction(_ s: TrustStatement) -> Task<MeshError?, Never> {
        let dir = self.dir
        return Task {
            let written = await disk.written { () throws(MeshError) in
                if try KeyStore.writeIntroduced(s, in: dir) { Log.info("\(s.by) introduced \(s.name): wrote keys/\(s.name).pub") }
            }
            if let written { Log.warn(written.message) }
            reloadKeys()
            return written
        }
    }

    func applyRevocation(_ s: TrustStatement) -> Task<MeshError?, Never> {
        let dir = self.dir
        return Task {
            let failure = await disk.written { () throws(MeshError) in
                guard try KeyStore.moveToRevoked(name: s.name, key: s.key, in: dir) else {
                    throw MeshError(MeshError.other, "keys/\(s.name).pub no longer holds the revoked key; nothing was moved")
                }
                Log.info("\(s.by) revoked \(s.name): moved keys/\(s.name).pub to keys/revoked/")
            }
            if let failure { Log.warn(failure.message) }
            reloadKeys()
            return failure
        }
    }

    /// `rolemesh revoke NAME`.
    func revoke(name revoked: String, _ conn: ControlConnection) {
        guard revoked != name else { return conn.fail(MeshError(MeshError.usage, "\(revoked) is this node; revoke it from another device")) }
        guard let key = keyRing.trusted[revoked] else {
            return conn.fail(MeshError(MeshError.other, "\(revoked) is not trusted here (no keys/\(revoked).pub)"))
        }
        let s = TrustStatement.make(.revoke, by: name, name: revoked, key: key, time: Self.wallMillis(), sign: keyRing.keyPair.sign)
        let applying = considerTrust([s], from: name)
        Task {      // on the agent (it uses `self`), where `conn` lives
            var failure: MeshError?
            for t in applying { if let e = await t.value { failure = e } }  // the key has moved (not just been queued to move)
            // The revocation is signed and kept whatever happened to the file: say both halves.
            if let failure {
                return conn.fail(MeshError(failure.code, failure.message
                    + "; \(revoked) stays trusted here until its key is moved, but the signed revocation is kept and spreads to the mesh"))
            }
            conn.reply(OkReply(node: self.name))
        }
    }
}
