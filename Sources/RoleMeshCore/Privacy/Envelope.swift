/// Every gossip datagram on the wire (protocol.md 2.1): a clear header that lets the receiver pick
/// the key, then the authenticated ciphertext.
///
///     pair tag (8) · nonce (8) · XChaCha20-Poly1305(pair key, nonce ‖ 16 zero bytes, frame type (1) · payload, ad = pair tag)
///
/// The nonce is the sender's datagram counter, which starts at a random 64-bit value in every run:
/// two runs of one device, or the two devices of a pair (they share the key), would need counter
/// ranges that overlap, a chance of about (datagrams sent) / 2^64. 8 bytes instead of 24 saves 16 bytes
/// on every beat.
/// An observer sees addresses, sizes, timing and an opaque tag per pair of devices: no name, role,
/// signal or state. Anything that fails to open costs one AEAD check and is counted.
public enum Envelope {
    public static let nonceSize = 8
    public static let headerSize = PairKey.tagSize + nonceSize
    /// Clear header, frame type, MAC: 33 bytes.
    public static let overhead = headerSize + 1 + AEAD.overhead
    /// The UDP payload limit, envelope included (see `Wire.maxDatagramSize`).
    public static let maxSize = 1200

    public enum Frame: UInt8, Sendable {
        case hello = 1      // proof of key (`SecureGossip`): echo (16) · challenge (16)
        case gossip = 2     // a wire v2 datagram (`Wire`)
        case beat = 3       // "still here" between signed heartbeats (`Beat`)
    }

    public static func seal(_ frame: Frame, _ payload: [UInt8], with pk: PairKey, nonce: UInt64) -> [UInt8] {
        let wire = (0..<8).map { UInt8((nonce >> UInt64(56 - 8 * $0)) & 0xff) }
        return AEAD.seal([frame.rawValue] + payload, ad: pk.tag, nonce: wire + padding, key: pk.key, prefix: pk.tag + wire)
    }

    static let padding = [UInt8](repeating: 0, count: AEAD.nonceSize - nonceSize)

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
        let nonce = Array(bytes[PairKey.tagSize..<headerSize]) + padding
        guard let plain = AEAD.open(bytes, from: headerSize, ad: pk.tag, nonce: nonce, key: pk.key), !plain.isEmpty else {
            return .badMac
        }
        return .opened(Frame(rawValue: plain[0]), Array(plain[1...]), pk)
    }
}
