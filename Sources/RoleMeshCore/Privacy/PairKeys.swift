import CSodium

/// The key two devices share for gossip, from their identity keys alone (protocol.md 2.2):
///
///     shared = X25519(own secret, peer public), both converted from Ed25519
///     master = BLAKE2b-256(shared ‖ lower Ed25519 public key ‖ higher one)   (byte order)
///     key    = BLAKE2b-256(key: master, "rolemesh/2 gossip key")
///     tag    = BLAKE2b-64(key: master, "rolemesh/2 pair tag")
///
/// Both ends compute the same values; the tag names the pair in the clear header so the receiver
/// finds the key with one lookup, and says nothing about which devices they are. Computed once per
/// trusted key (one X25519 and three hashes) and kept until the key changes.
public struct PairKey: Equatable, Sendable {
    public let peer: String
    public let peerPublic: [UInt8]
    public let key: [UInt8]
    public let tag: [UInt8]

    public static let tagSize = 8

    public init?(me: Ed25519.KeyPair, peer: String, peerPublic: [UInt8]) {
        guard Ed25519.ready, var shared = me.sharedSecret(with: peerPublic) else { return nil }
        defer { Ed25519.wipe(&shared) }
        let (lo, hi) = me.publicKey.lexicographicallyPrecedes(peerPublic) ? (me.publicKey, peerPublic) : (peerPublic, me.publicKey)
        var master = PairKey.blake2b(shared + lo + hi, size: 32)
        defer { Ed25519.wipe(&master) }
        self.peer = peer
        self.peerPublic = peerPublic
        key = PairKey.blake2b(Array("rolemesh/2 gossip key".utf8), size: AEAD.keySize, key: master)
        tag = PairKey.blake2b(Array("rolemesh/2 pair tag".utf8), size: PairKey.tagSize, key: master)
    }

    static func blake2b(_ message: [UInt8], size: Int, key: [UInt8] = []) -> [UInt8] { Blake2b.hash(message, size: size, key: key) }
}

/// The pair keys of every trusted device, by name and by tag. Rebuilt only for keys that changed.
public struct PairKeyTable {
    public private(set) var byName: [String: PairKey] = [:]
    private(set) var byTag: [[UInt8]: PairKey] = [:]

    public init() {}

    /// Follows the trusted set: new keys are computed, changed ones recomputed, removed ones dropped.
    /// Returns the names whose key went away or changed.
    @discardableResult
    public mutating func update(me: Ed25519.KeyPair, myName: String, trusted: [String: [UInt8]]) -> [String] {
        var gone: [String] = []
        for (name, pk) in byName where trusted[name] != pk.peerPublic { gone.append(name) }
        for name in gone { byName[name] = nil }
        for (name, pub) in trusted where name != myName && byName[name] == nil {
            if let pk = PairKey(me: me, peer: name, peerPublic: pub) { byName[name] = pk }
        }
        byTag = Dictionary(byName.values.map { ($0.tag, $0) }, uniquingKeysWith: { a, _ in a })
        return gone
    }

    public subscript(tag tag: [UInt8]) -> PairKey? { byTag[tag] }
}
