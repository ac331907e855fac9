/// A signed statement about trust that spreads from node to node (over the task channel, beside
/// slot records): `introduce` — BY vouches for NAME's key (it admitted NAME with an invite) — or
/// `revoke` — BY withdrew trust in NAME's key. Signed by BY's Ed25519 key over
///
///     "rolemesh/1 trust\0" | kind u8 (1 introduce, 2 revoke) | BY | NAME | key (32) | time u64 (ms since epoch)
///
/// (names as u8 length + UTF-8). In JSON the key and signature are lowercase hex.
public struct TrustStatement: Codable, Hashable, Sendable {
    public enum Kind: String, Codable, Sendable { case introduce, revoke }
    public var kind: Kind
    public var by: String
    public var name: String
    public var key: [UInt8]
    /// Milliseconds since the epoch, on BY's clock: shown in the key file's comment, never trusted for order.
    public var time: Int64
    public var signature: [UInt8]

    static let tag = Array("rolemesh/1 trust\0".utf8)

    public static func signedBytes(_ kind: Kind, by: String, name: String, key: [UInt8], time: Int64) -> [UInt8] {
        var w = ByteWriter()
        w.raw(tag); w.u8(kind == .introduce ? 1 : 2)
        w.shortString(by); w.shortString(name); w.raw(key); w.u64(UInt64(max(0, time)))
        return w.bytes
    }

    /// A statement signed now by `signer` (this node, named `by`).
    public static func make(_ kind: Kind, by: String, name: String, key: [UInt8], time: Int64,
                            sign: ([UInt8]) -> [UInt8]) -> TrustStatement {
        TrustStatement(kind: kind, by: by, name: name, key: key, time: time,
                       signature: sign(signedBytes(kind, by: by, name: name, key: key, time: time)))
    }

    public init(kind: Kind, by: String, name: String, key: [UInt8], time: Int64, signature: [UInt8]) {
        self.kind = kind; self.by = by; self.name = name; self.key = key; self.time = time; self.signature = signature
    }

    public func isSigned(by publicKey: [UInt8]) -> Bool {
        guard signature.count == Ed25519.signatureSize, publicKey.count == Ed25519.publicKeySize else { return false }
        return Ed25519.verify(signature: signature, message: Self.signedBytes(kind, by: by, name: name, key: key, time: time),
                              publicKey: publicKey)
    }

    enum CodingKeys: String, CodingKey { case kind, by, name, key, time, signature = "sig" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        by = try c.decode(String.self, forKey: .by)
        name = try c.decode(String.self, forKey: .name)
        time = try c.decode(Int64.self, forKey: .time)
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
