import CSodium

/// BLAKE2b (libsodium's `crypto_generichash`), the one hash of the project: pair keys and tags,
/// the join's proof of the invite secret, the recovery code's checksum, anti-entropy digests.
public enum BLAKE2b {
    /// `size` bytes (16 to 64) of BLAKE2b over `message`, keyed with `key` when it is not empty.
    public static func hash(_ message: [UInt8], size: Int, key: [UInt8] = []) -> [UInt8] {
        _ = Ed25519.ready
        var out = [UInt8](repeating: 0, count: size)
        _ = crypto_generichash(&out, size, message, UInt64(message.count), key.isEmpty ? nil : key, key.count)
        return out
    }
}
