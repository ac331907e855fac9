/// A signed statement about trust that spreads from node to node (over the task channel, beside
/// slot records). Kinds: `introduce` (BY vouches for NAME's key: it admitted NAME with an invite),
/// `revoke` (BY withdrew trust in NAME's key), `grant` (the roles NAME's key may hold from now on),
/// `introducer-add` / `introducer-remove` (NAME's key may, or may no longer, change trust). Signed
/// by BY's Ed25519 key — or, with `recovery`, by the mesh's recovery key — over
///
///     "rolemesh/1 trust\0" | kind u8 | BY | NAME | key (32) | time u64 (ms since epoch) | fields
///
/// (names as u8 length + UTF-8). `fields` are type-length-value (`tag u8 · length u8 · value`, in
/// tag order): 1 `grants` (empty: a grant list follows, possibly empty), 2 `grant` (repeated, one
/// `ROLE` or `backup:ROLE` each, sorted), 3 `recovery` (empty). A statement without fields signs
/// exactly the bytes of the first version, so statements held before grants still verify.
/// In JSON the key and signature are lowercase hex.
public struct TrustStatement: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case introduce, revoke, grant
        case introducerAdd = "introducer-add"
        case introducerRemove = "introducer-remove"

        public var code: UInt8 {
            switch self {
            case .introduce: 1
            case .revoke: 2
            case .grant: 3
            case .introducerAdd: 4
            case .introducerRemove: 5
            }
        }
    }
    public var kind: Kind
    public var by: String
    public var name: String
    public var key: [UInt8]
    /// Milliseconds since the epoch, on BY's clock: shown in the key file's comment, and orders
    /// two grants (or introducer changes) of one key; never what makes a revocation count.
    public var time: Int64
    /// `introduce` and `grant`: the roles NAME's key may hold (`ROLE`, `backup:ROLE`, sorted);
    /// nil for an introduction without grants (every role, as a key copied by hand).
    public var grants: [String]?
    /// Signed with the mesh's recovery key (`rolemesh ... --recovery`), not with BY's key.
    public var recovery: Bool
    public var signature: [UInt8]

    static let tag = Array("rolemesh/1 trust\0".utf8)
    enum Field {
        static let grants: UInt8 = 1
        static let grant: UInt8 = 2
        static let recovery: UInt8 = 3
    }

    public static func signedBytes(_ kind: Kind, by: String, name: String, key: [UInt8], time: Int64,
                                   grants: [String]? = nil, recovery: Bool = false) -> [UInt8] {
        var w = ByteWriter()
        w.raw(tag); w.u8(kind.code)
        w.shortString(by); w.shortString(name); w.raw(key); w.u64(UInt64(max(0, time)))
        if let grants {
            w.field(Field.grants, [])
            for g in grants.sorted() { w.field(Field.grant, Array(g.utf8.prefix(255))) }
        }
        if recovery { w.field(Field.recovery, []) }
        return w.bytes
    }

    var signedBytes: [UInt8] {
        Self.signedBytes(kind, by: by, name: name, key: key, time: time, grants: grants, recovery: recovery)
    }

    /// A statement signed now by `sign` (this node's key, named `by`, or the recovery key).
    public static func make(_ kind: Kind, by: String, name: String, key: [UInt8], time: Int64, grants: [String]? = nil,
                            recovery: Bool = false, sign: ([UInt8]) -> [UInt8]) -> TrustStatement {
        let g = grants.map { Array(Set($0)).sorted() }
        return TrustStatement(kind: kind, by: by, name: name, key: key, time: time, grants: g, recovery: recovery,
                              signature: sign(signedBytes(kind, by: by, name: name, key: key, time: time, grants: g, recovery: recovery)))
    }

    public init(kind: Kind, by: String, name: String, key: [UInt8], time: Int64, grants: [String]? = nil,
                recovery: Bool = false, signature: [UInt8]) {
        self.kind = kind; self.by = by; self.name = name; self.key = key; self.time = time
        self.grants = grants; self.recovery = recovery; self.signature = signature
    }

    public func isSigned(by publicKey: [UInt8]) -> Bool {
        guard signature.count == Ed25519.signatureSize, publicKey.count == Ed25519.publicKeySize else { return false }
        return Ed25519.verify(signature: signature, message: signedBytes, publicKey: publicKey)
    }

    /// Names, key, grants and kind make sense (before any signature is checked).
    public var isWellFormed: Bool {
        guard NodeName.isValid(by), NodeName.isValid(name), key.count == Ed25519.publicKeySize else { return false }
        if let grants {
            guard kind == .introduce || kind == .grant, RoleGrants(grants)?.words.count == grants.count else { return false }
        } else if kind == .grant {
            return false
        }
        if recovery, ![.revoke, .introducerAdd, .introducerRemove].contains(kind) { return false }
        return true
    }

    /// Orders two statements about one key: the later time wins, the signature breaks a tie, so
    /// every node keeps the same one whatever order they arrived in.
    public func isNewer(than other: TrustStatement) -> Bool {
        if time != other.time { return time > other.time }
        return other.signature.lexicographicallyPrecedes(signature)
    }

    enum CodingKeys: String, CodingKey { case kind, by, name, key, time, grants, recovery, signature = "sig" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        by = try c.decode(String.self, forKey: .by)
        name = try c.decode(String.self, forKey: .name)
        time = try c.decode(Int64.self, forKey: .time)
        grants = try c.decodeIfPresent([String].self, forKey: .grants)
        recovery = try c.decodeIfPresent(Bool.self, forKey: .recovery) ?? false
        guard let k = Hex.decode(try c.decode(String.self, forKey: .key)),
              let s = Hex.decode(try c.decode(String.self, forKey: .signature)) else {
            throw DecodingError.dataCorruptedError(forKey: .key, in: c, debugDescription: "not hex")
        }
        key = k; signature = s
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind); try c.encode(by, forKey: .by); try c.encode(name, forKey: .name)
        try c.encode(Hex.encode(key), forKey: .key); try c.encode(time, forKey: .time)
        if let grants { try c.encode(grants, forKey: .grants) }
        if recovery { try c.encode(true, forKey: .recovery) }
        try c.encode(Hex.encode(signature), forKey: .signature)
    }
}

enum Hex {
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count % 2 == 0, u.count <= 256 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            default: nil
            }
        }
        var out: [UInt8] = []
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let hi = v(u[i]), let lo = v(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }
}
