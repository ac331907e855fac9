import RoleMeshPlatform
import RoleMeshCore
import RoleMeshStorage

/// `rolemesh revoke NAME` while this node's agent is not running: the key moves now and the signed
/// revocation waits in `state/trust.json`, which the agent loads and passes on to every member it
/// exchanges with once it starts (a lost laptop should not wait for the agent). The same rules as
/// the agent's: only an introducer may, and a revocation the ledger refuses changes nothing.
public enum OfflineRevoke {
    public static func revoke(_ revoked: String, in dir: NodeDirectory) throws(MeshError) {
        let config = try dir.loadConfig()
        guard revoked != config.name else { throw MeshError(MeshError.usage, "\(revoked) is this node; revoke it from another device") }
        let trusted = try KeyStore.loadTrusted(in: dir)
        guard let key = trusted[revoked] else {
            throw MeshError(MeshError.other, "\(revoked) is not trusted here (no keys/\(revoked).pub)")
        }
        let pair = try KeyStore.loadSecret(name: config.name, in: dir)
        var ledger = TrustLedger(TrustStore.load(dir))
        let recovery = config.recovery.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
        let known = Array(Set(config.acceptedIntroducers + ledger.introducersByStatement)).sorted()
        if let refusal = Agent.refusal(ledger.standing(of: pair.publicKey, hasRecoveryKey: recovery != nil), me: config.name, introducers: known) {
            throw refusal
        }
        let s = TrustStatement.make(.revoke, by: config.name, name: revoked, key: key,
                                    time: Int64(Date().timeIntervalSince1970 * 1000), sign: pair.sign)
        var all = trusted
        all[config.name] = pair.publicKey
        let view = TrustLedger.View(me: config.name, trusted: all, introducers: config.acceptedIntroducers, recoveryKey: recovery)
        if case .refused(let why) = ledger.consider(s, view) { throw Agent.refusedHere(why) }
        try StateStore(dir: dir).prepare()
        try TrustStore.save(ledger.statements, dir)
        _ = try KeyStore.moveToRevoked(name: revoked, key: key, in: dir)
    }
}
