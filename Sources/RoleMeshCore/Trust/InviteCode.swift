/// The one line `rolemesh invite NAME` prints and `rolemesh join CODE` reads: `rm1-` and the
/// lowercase base32 (RFC 4648, no padding) of
///
///     version u8 (2) | inviter name | inviter public key (32) | secret (16) | expires u64 (s since epoch)
///     | NAME | count u8 | count × "host:port" (the inviter's task addresses) | checksum (4)
///
/// names and addresses as u8 length + UTF-8; checksum = the first 4 bytes of BLAKE2b-256 over
/// "rolemesh/2 invite code\0" and everything before it, so a mistyped or cut code is caught before
/// anything is sent (it no longer reaches the inviter and reads as an impostor). The inviter's
/// whole public key is the fingerprint: the join handshake is encrypted to it, so no one else can
/// answer for the inviter. The secret never travels: the new device proves it holds it
/// (protocol.md, "Task channel", join). Version 1 (no checksum) is an older RoleMesh's.
public struct InviteCode: Equatable, Sendable {
    public var inviter: String
    public var inviterKey: [UInt8]
    public var secret: [UInt8]
    /// Seconds since the epoch.
    public var expires: Int64
    public var name: String
    public var addresses: [String]

    public static let prefix = "rm1-"
    public static let secretSize = 16
    static let keySize = 32
    static let version: UInt8 = 2
    static let checksumSize = 4

    public init(inviter: String, inviterKey: [UInt8], secret: [UInt8], expires: Int64, name: String, addresses: [String]) {
        self.inviter = inviter; self.inviterKey = inviterKey; self.secret = secret
        self.expires = expires; self.name = name; self.addresses = addresses
    }

    /// Which of the inviter's pending invites this is (`ChannelHandshake.inviteID`).
    public var id: [UInt8] { ChannelHandshake.inviteID(secret: secret) }

    public static func checksum(_ payload: [UInt8]) -> [UInt8] {
        Array(BLAKE2b.hash(Array("rolemesh/2 invite code\0".utf8) + payload, size: 32).prefix(checksumSize))
    }

    public var text: String {
        var w = ByteWriter()
        w.u8(Self.version)
        w.shortString(inviter); w.raw(inviterKey); w.raw(secret); w.u64(UInt64(max(0, expires)))
        w.shortString(name)
        let addrs = addresses.prefix(8)
        w.u8(UInt8(addrs.count))
        for a in addrs { w.shortString(a) }
        return Self.prefix + Base32.encode(w.bytes + Self.checksum(w.bytes))
    }

    /// Why a pasted code cannot be read, as a phrase ("it is mistyped or cut short").
    public enum Problem: Error, Equatable, Sendable {
        case notACode, mistyped, olderVersion, badVersion, badName, noAddress
        public var phrase: String {
            switch self {
            case .notACode: "it is not an invite code (they start with \(InviteCode.prefix))"
            case .mistyped: "it is mistyped or cut short (its checksum does not match): copy the whole line again"
            case .olderVersion: "it comes from an older RoleMesh"
            case .badVersion: "it comes from a newer RoleMesh"
            case .badName: "it names a device or inviter that is not a valid node name"
            case .noAddress: "it holds no address of the inviter"
            }
        }
    }

    /// Reads a pasted code: surrounding blanks and case are forgiven, nothing else.
    public static func parse(_ pasted: String) throws(Problem) -> InviteCode {
        let s = String(pasted.filter { !$0.isWhitespace }).lowercased()
        guard s.hasPrefix(prefix) else { throw .notACode }
        guard let bytes = Base32.decode(String(s.dropFirst(prefix.count))), bytes.count > checksumSize else { throw .mistyped }
        let payload = Array(bytes.dropLast(checksumSize))
        // A letter changed anywhere, the version byte included, fails the checksum; a version 1
        // code has none.
        guard Array(bytes.suffix(checksumSize)) == checksum(payload) else { throw bytes.first == 1 ? .olderVersion : .mistyped }
        guard payload.first == version else { throw .badVersion }
        guard let code = try? fields(payload) else { throw .mistyped }
        guard NodeName.isValid(code.inviter), NodeName.isValid(code.name) else { throw .badName }
        guard !code.addresses.isEmpty, code.addresses.allSatisfy({ NodeConfig.splitHostPort($0) != nil }) else { throw .noAddress }
        return code
    }

    private static func fields(_ bytes: [UInt8]) throws(WireError) -> InviteCode {
        var r = ByteReader(bytes, from: 1)
        let inviter = try r.shortString()
        let key = try r.raw(keySize), secret = try r.raw(secretSize)
        let expires = try r.u64()
        let name = try r.shortString()
        let n = Int(try r.u8())
        var addrs: [String] = []
        for _ in 0..<n { addrs.append(try r.shortString()) }
        guard r.isAtEnd else { throw .truncated }
        return InviteCode(inviter: inviter, inviterKey: key, secret: secret, expires: Int64(min(expires, UInt64(Int64.max))),
                          name: name, addresses: addrs)
    }
}

/// RFC 4648 base32, lowercase, without padding: a code survives being read out or retyped.
public enum Base32 {
    static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = [], buffer: UInt32 = 0, bits = 0
        for b in bytes {
            buffer = (buffer << 8) | UInt32(b); bits += 8
            while bits >= 5 { out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)]); bits -= 5 }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Nil for a character outside the alphabet or a length no encoding has.
    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = [], buffer: UInt32 = 0, bits = 0
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            buffer = (buffer << 5) | UInt32(v); bits += 5
            if bits >= 8 { out.append(UInt8((buffer >> UInt32(bits - 8)) & 0xff)); bits -= 8 }
            buffer &= (1 << UInt32(bits)) - 1
        }
        // Leftover bits must be padding zeros, and fewer than 5 of them.
        guard bits < 5, buffer == 0 else { return nil }
        return out
    }
}
