#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshControl
import RoleMeshCore

/// The files trust statements change: `keys/NAME.pub` (written for an introduction, with a comment
/// line saying who introduced it and when, so the folder stays the truth a person reads) and
/// `keys/revoked/NAME.pub` (where a revoked key goes; an introduction never brings it back).
extension KeyStore {
    static func revokedDir(_ dir: NodeDirectory) -> URL { dir.keysDir.appendingPathComponent("revoked") }

    /// The keys in `keys/revoked/`; none when the folder is missing.
    static func loadRevoked(in dir: NodeDirectory) throws(MeshError) -> Set<[UInt8]> {
        let path = revokedDir(dir).path
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return Set(try loadKeys(at: path).values)
    }

    /// `# introduced by BY at TIME` and the key; the key stays the last word, as `decode` reads it.
    static func introducedText(_ s: TrustStatement) -> String {
        let when = Clock.rfc3339(Date(timeIntervalSince1970: Double(s.time) / 1000))
        return "# introduced by \(s.by) at \(when)\n\(Data(s.key).base64EncodedString())\n"
    }

    /// Writes `keys/NAME.pub` for an accepted introduction, unless a file is there already
    /// (a person's file always wins). True when written.
    static func writeIntroduced(_ s: TrustStatement, in dir: NodeDirectory) throws(MeshError) -> Bool {
        let file = dir.publicKey(s.name)
        guard !FileManager.default.fileExists(atPath: file.path) else { return false }
        try AtomicFile.replace(file, with: introducedText(s))
        return true
    }

    /// Moves `keys/NAME.pub` to `keys/revoked/NAME.pub` when it holds `key`. True when moved.
    static func moveToRevoked(name: String, key: [UInt8], in dir: NodeDirectory) throws(MeshError) -> Bool {
        let file = dir.publicKey(name)
        guard case .success(let text?) = readSmallFile(file.path), decode(text) == key else { return false }
        let target = revokedDir(dir)
        if mkdir(target.path, 0o700) != 0 && errno != EEXIST {
            throw MeshError(MeshError.other, "cannot create \(target.path): \(String(cString: strerror(errno)))")
        }
        guard rename(file.path, target.appendingPathComponent("\(name).pub").path) == 0 else {
            throw MeshError(MeshError.other, "cannot move \(file.path) to \(target.path): \(String(cString: strerror(errno)))")
        }
        return true
    }
}

/// `state/trust.json`: `{"statements": [...]}`, every trust statement this node holds.
enum TrustStore {
    struct File: Codable { var statements: [TrustStatement] }
    static let file = StateJSON<File>(name: "trust.json")

    static func load(_ dir: NodeDirectory) -> [TrustStatement] { file.load(dir)?.statements ?? [] }

    static func save(_ statements: [TrustStatement], _ dir: NodeDirectory) throws(MeshError) {
        try file.save(File(statements: statements), dir)
    }
}

/// An invite this node holds until it is used or expires (`state/invites.json`).
struct PendingInvite: Codable, Equatable, Sendable {
    var name: String
    /// base64.
    var secret: String
    /// Seconds since the epoch.
    var expires: Int64
}

enum InviteStore {
    struct File: Codable { var invites: [PendingInvite] }
    static let file = StateJSON<File>(name: "invites.json")

    static func load(_ dir: NodeDirectory) -> [PendingInvite] { file.load(dir)?.invites ?? [] }

    static func save(_ invites: [PendingInvite], _ dir: NodeDirectory) throws(MeshError) {
        try file.save(File(invites: invites), dir)
    }
}
