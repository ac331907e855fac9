/// Every gossip datagram on the wire (protocol.md 2.1): a clear header that lets the receiver pick
/// the key, then the authenticated ciphertext.
///
///     pair tag (8) · nonce (24) · XChaCha20-Poly1305(pair key, nonce, frame type (1) · payload, ad = pair tag)
///
/// An observer sees addresses, sizes, timing and an opaque tag per pair of devices: no name, role,
/// signal or state. Anything that fails to open costs one AEAD check and is counted.
public enum Envelope {
    public static let headerSize = PairKey.tagSize + AEAD.nonceSize
    /// Clear header, frame type, MAC: 49 bytes.
    public static let overhead = headerSize + 1 + AEAD.overhead
    /// The UDP payload limit, envelope included (see `Wire.maxDatagramSize`).
    public static let maxSize = 1200

    public enum Frame: UInt8, Sendable {
        case hello = 1      // proof of key (`SecureGossip`): echo (16) · challenge (16)
        case gossip = 2     // a wire v2 datagram (`Wire`)
    }

    public static func seal(_ frame: Frame, _ payload: [UInt8], with pk: PairKey, nonce: [UInt8]) -> [UInt8] {
        AEAD.seal([frame.rawValue] + payload, ad: pk.tag, nonce: nonce, key: pk.key, prefix: pk.tag + nonce)
    }

    public enum Opened {
        case malformed
        case unknownPair
        case badMac
        /// Authenticated: from `key.peer`. `frame` is nil for a frame type this version does not know.
        case opened(Frame?, [UInt8], PairKey)
    }

    public static func open(_ bytes: [UInt8], keys: PairKeyTable) -> Opened {
        guard bytes.count >= overhead, bytes.count <= maxSize else { return .malformed }
        guard let pk = keys[tag: Array(bytes[0..<PairKey.tagSize])] else { return .unknownPair }
        let nonce = Array(bytes[PairKey.tagSize..<headerSize])
        guard let plain = AEAD.open(bytes, from: headerSize, ad: pk.tag, nonce: nonce, key: pk.key), !plain.isEmpty else {
            return .badMac
        }
        return .opened(Frame(rawValue: plain[0]), Array(plain[1...]), pk)
    }
}
