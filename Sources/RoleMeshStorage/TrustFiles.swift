import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// A key file as read: its key and what its comment lines say.
public struct KeyFile: Equatable, Sendable {
    public var key: [UInt8]
    /// From `# granted: ROLE backup:ROLE ...`; nil without that line (every role).
    public var grants: RoleGrants?
    /// From `# introduced by BY at TIME` (a key received at join says only who passed it on).
    public var introducedBy: String?
    public var introducedAt: String?

    public init(key: [UInt8], grants: RoleGrants? = nil) { self.key = key; self.grants = grants }

    public init(text: String, key: [UInt8]) {
        self.key = key
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmed(where: \.isWhitespace)
            guard line.hasPrefix("#") else { continue }
            let words = line.dropFirst().split(separator: " ").map(String.init)
            if words.first == "granted:" {
                // An unreadable word grants nothing rather than everything.
                grants = RoleGrants(words.dropFirst().filter(RoleGrants.isValidWord)) ?? RoleGrants()
            } else if words.count >= 5, words[0] == "introduced", words[1] == "by", words[3] == "at" {
                introducedBy = words[2]; introducedAt = words[4]
            }
        }
    }
}

/// The files trust statements change: `keys/NAME.pub` (written for an introduction, with comment
/// lines saying who introduced it, when, and the roles it was granted, so the folder stays the
/// truth a person reads) and `keys/revoked/NAME.pub` (where a revoked key goes; an introduction
/// never brings it back).
extension KeyStore {
    public static func revokedDir(_ dir: NodeDirectory) -> URL { dir.keysDir.appendingPathComponent("revoked") }

    /// The keys in `keys/revoked/`; none when the folder is missing.
    public static func loadRevoked(in dir: NodeDirectory) throws(MeshError) -> Set<[UInt8]> {
        Set(try loadRevokedFiles(in: dir).values.map(\.key))
    }

    public static func loadRevokedFiles(in dir: NodeDirectory) throws(MeshError) -> [String: KeyFile] {
        let path = revokedDir(dir).path
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        return try loadKeyFiles(at: path)
    }

    /// Every trusted key file (`keys/*.pub`), with its comment lines read.
    public static func loadTrustedFiles(in dir: NodeDirectory, report: (String) -> Void = { _ in }) throws(MeshError) -> [String: KeyFile] {
        try loadKeyFiles(at: dir.keysDir.path, report: report)
    }

    /// `# granted: build backup:transcode` (`# granted:` alone grants nothing); no line for nil.
    public static func grantLine(_ grants: [String]?) -> String {
        guard let grants else { return "" }
        return "# granted:" + grants.sorted().map { " " + $0 }.joined() + "\n"
    }

    /// `# introduced by BY at TIME`, the grant line and the key; the key stays the last word, as `decode` reads it.
    public static func introducedText(_ s: TrustStatement, grants: [String]?) -> String {
        let when = Clock.rfc3339(Date(timeIntervalSince1970: Double(s.time) / 1000))
        return "# introduced by \(s.by) at \(when)\n" + grantLine(grants) + "\(Data(s.key).base64EncodedString())\n"
    }

    /// Writes `keys/NAME.pub` for an accepted introduction, unless a file is there already
    /// (a person's file always wins). True when written.
    public static func writeIntroduced(_ s: TrustStatement, grants: [String]?, in dir: NodeDirectory) throws(MeshError) -> Bool {
        let file = dir.publicKey(s.name)
        guard !FileManager.default.fileExists(atPath: file.path) else { return false }
        try AtomicFile.replace(file, with: introducedText(s, grants: grants))
        return true
    }

    /// Replaces the `# granted:` line of `keys/NAME.pub` (removed for nil), when the file holds
    /// `key`; every other line is kept. True when the file changed.
    public static func rewriteGrants(name: String, key: [UInt8], grants: [String]?, in dir: NodeDirectory) throws(MeshError) -> Bool {
        let file = dir.publicKey(name)
        guard case .success(let text?) = readSmallFile(file.path), decode(text) == key else { return false }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last?.isEmpty == true { lines.removeLast() }
        lines.removeAll { $0.trimmed(where: \.isWhitespace).hasPrefix("# granted:") }
        let line = grantLine(grants)
        if !line.isEmpty { lines.insert(String(line.dropLast()), at: max(0, lines.count - 1)) }
        let next = lines.joined(separator: "\n") + "\n"
        guard next != text else { return false }
        try AtomicFile.replace(file, with: next)
        return true
    }

    /// Moves `keys/NAME.pub` to `keys/revoked/NAME.pub` when it holds `key`. True when moved.
    public static func moveToRevoked(name: String, key: [UInt8], in dir: NodeDirectory) throws(MeshError) -> Bool {
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

    /// Moves `keys/revoked/NAME.pub` back to `keys/NAME.pub` when it holds `key` and no file took
    /// its place (a revocation that no longer counts). True when moved.
    public static func restoreRevoked(name: String, key: [UInt8], in dir: NodeDirectory) throws(MeshError) -> Bool {
        let from = revokedDir(dir).appendingPathComponent("\(name).pub"), to = dir.publicKey(name)
        guard case .success(let text?) = readSmallFile(from.path), decode(text) == key,
              !FileManager.default.fileExists(atPath: to.path) else { return false }
        guard rename(from.path, to.path) == 0 else {
            throw MeshError(MeshError.other, "cannot move \(from.path) back to \(to.path): \(String(cString: strerror(errno)))")
        }
        return true
    }
}

/// `state/trust.json`: `{"statements": [...]}`, every trust statement this node holds.
public enum TrustStore {
    public struct File: Codable { var statements: [TrustStatement] }
    public static let file = StateJSON<File>(name: "trust.json")

    public static func load(_ dir: NodeDirectory) -> [TrustStatement] { file.load(dir)?.statements ?? [] }

    public static func save(_ statements: [TrustStatement], _ dir: NodeDirectory) throws(MeshError) {
        try file.save(File(statements: statements), dir)
    }
}

/// An invite this node holds until it is used or expires (`state/invites.json`).
public struct PendingInvite: Codable, Equatable, Sendable {
    public var name: String
    /// base64.
    public var secret: String
    /// Seconds since the epoch.
    public var expires: Int64
    /// What `invite --role R --backup R` granted besides what the device asks for at `join`.
    public var grants: [String]?

    public init(name: String, secret: String, expires: Int64, grants: [String]?) {
        self.name = name; self.secret = secret; self.expires = expires; self.grants = grants
    }
}

public enum InviteStore {
    public struct File: Codable { var invites: [PendingInvite] }
    public static let file = StateJSON<File>(name: "invites.json")

    public static func load(_ dir: NodeDirectory) -> [PendingInvite] { file.load(dir)?.invites ?? [] }

    public static func save(_ invites: [PendingInvite], _ dir: NodeDirectory) throws(MeshError) {
        try file.save(File(invites: invites), dir)
    }
}
