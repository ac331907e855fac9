import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage

/// The recovery code on the command line (RoleMeshCore/Trust/RecoveryCode.swift): `init` makes
/// one and records, signed by it, that the new node is the mesh's first introducer; `--recovery`
/// signs a revocation or an introducer change with it, which the agent applies and spreads. The
/// code is read from stdin and used in this process only: the agent never sees it.
public enum Recovery {
    /// For `init`: a new code, whose public key goes into node.toml as `recovery`.
    public static func newCode() -> (code: RecoveryCode, publicKey: String) {
        let code = RecoveryCode.generate()
        return (code, Data(code.keyPair.publicKey).base64EncodedString())
    }

    /// For `init`, once the node exists: the statement, signed with the code, that makes it an
    /// introducer (the first device is its own authority, and says so with the mesh's key).
    public static func recordFirstIntroducer(_ dir: NodeDirectory, name: String, key: [UInt8], code: RecoveryCode) throws(MeshError) {
        let s = TrustStatement.make(.introducerAdd, by: name, name: name, key: key, time: Int64(Date().timeIntervalSince1970 * 1000),
                                    recovery: true, sign: code.keyPair.sign)
        try StateStore(dir: dir).prepare()
        try TrustStore.save(TrustStore.load(dir) + [s], dir)
    }

    /// `revoke NAME --recovery`, `introducers add|remove NAME --recovery`: the statement, signed
    /// with the code, as JSON for the agent (`ControlRequest.recovered`). 77 when the code is not
    /// this mesh's; 1 when NAME is not trusted here.
    public static func statement(_ kind: TrustStatement.Kind, name subject: String, code text: String,
                                 in dir: NodeDirectory) throws(MeshError) -> String {
        let config = try dir.loadConfig()
        guard let recovery = config.recovery else {
            throw MeshError(MeshError.noPermission, "this node has no recovery key (`recovery` in node.toml): its mesh was made before recovery codes")
        }
        guard let code = RecoveryCode.parse(text) else {
            throw MeshError(MeshError.noPermission, "that is not a recovery code (rmr1-...), or a letter of it is wrong; nothing changed")
        }
        let pair = code.keyPair
        guard Data(pair.publicKey).base64EncodedString() == recovery else {
            throw MeshError(MeshError.noPermission, "that is not this mesh's recovery code (node.toml's `recovery` is another key); nothing changed")
        }
        var trusted = try KeyStore.loadTrusted(in: dir)
        if trusted[config.name] == nil { trusted[config.name] = try KeyStore.loadSecret(name: config.name, in: dir).publicKey }
        guard let key = trusted[subject] else {
            throw MeshError(MeshError.other, "\(subject) is not trusted here (no keys/\(subject).pub)")
        }
        let s = TrustStatement.make(kind, by: config.name, name: subject, key: key, time: Int64(Date().timeIntervalSince1970 * 1000),
                                    recovery: true, sign: pair.sign)
        return ControlJSON.string(s)
    }
}
