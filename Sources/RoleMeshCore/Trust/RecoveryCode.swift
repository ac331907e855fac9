
/// The mesh's recovery code: a 32-byte Ed25519 seed that `init` makes, prints once for a person to
/// write down, and never stores. Only its public key is kept (`recovery` in node.toml; a joining
/// device gets it from its inviter). Whoever types the code in (`--recovery`) signs, with its key,
/// revocations and introducer changes that every node of the mesh accepts: the way back when the
/// only introducer is stolen or lost, which a thief holding a device does not have.
///
/// Text: `rmr1-` and the base32 (lowercase, no padding) of the seed and a 3-byte BLAKE2b checksum,
/// in groups of four letters: a mistyped letter is caught before anything is signed.
public struct RecoveryCode: Sendable {
    public static let prefix = "rmr1-"
    static let checksumSize = 3
    public let seed: [UInt8]

    public init?(seed: [UInt8]) {
        guard seed.count == Ed25519.seedSize else { return nil }
        self.seed = seed
    }

    public static func generate() -> RecoveryCode { RecoveryCode(seed: Ed25519.randomBytes(Ed25519.seedSize))! }

    public var keyPair: Ed25519.KeyPair { Ed25519.KeyPair(seed: seed) }

    static func checksum(_ seed: [UInt8]) -> [UInt8] {
        Array(BLAKE2b.hash(Array("rolemesh/1 recovery\0".utf8) + seed, size: 16).prefix(checksumSize))
    }

    public var text: String {
        let letters = Array(Base32.encode(seed + Self.checksum(seed)))
        let groups = stride(from: 0, to: letters.count, by: 4).map { String(letters[$0..<min($0 + 4, letters.count)]) }
        return Self.prefix + groups.joined(separator: "-")
    }

    /// Forgives case, blanks and dashes; nil when it is not a recovery code or its checksum fails.
    public static func parse(_ text: String) -> RecoveryCode? {
        let t = text.lowercased().filter { !$0.isWhitespace && $0 != "-" }
        let head = prefix.filter { $0 != "-" }
        guard t.hasPrefix(head) else { return nil }
        guard let bytes = Base32.decode(String(t.dropFirst(head.count))), bytes.count == Ed25519.seedSize + checksumSize else { return nil }
        let seed = Array(bytes.prefix(Ed25519.seedSize))
        guard Array(bytes.suffix(checksumSize)) == checksum(seed) else { return nil }
        return RecoveryCode(seed: seed)
    }
}
