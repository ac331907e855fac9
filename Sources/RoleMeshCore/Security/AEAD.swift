import CSodium

/// XChaCha20-Poly1305-IETF through libsodium: the one authenticated cipher RoleMesh uses, for the
/// task channel's frames and for every gossip datagram (`Privacy/Envelope.swift`).
public enum AEAD {
    public static let keySize = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    public static let nonceSize = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    public static let overhead = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)

    /// `prefix` (in clear, not authenticated unless it is also in `ad`) followed by the ciphertext of `plain`.
    public static func seal(_ plain: [UInt8], ad: [UInt8], nonce: [UInt8], key: [UInt8], prefix: [UInt8] = []) -> [UInt8] {
        precondition(Ed25519.ready && nonce.count == nonceSize && key.count == keySize)
        var out = [UInt8](repeating: 0, count: prefix.count + plain.count + overhead)
        var clen: UInt64 = 0
        out.withUnsafeMutableBufferPointer { buf in
            for (i, b) in prefix.enumerated() { buf[i] = b }
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(buf.baseAddress! + prefix.count, &clen, plain, UInt64(plain.count),
                                                            ad, UInt64(ad.count), nil, nonce, key)
        }
        return out
    }

    /// The plaintext of `cipher[range]`, or nil if it fails to authenticate (one check, no other cost).
    public static func open(_ cipher: [UInt8], from start: Int = 0, ad: [UInt8], nonce: [UInt8], key: [UInt8]) -> [UInt8]? {
        let len = cipher.count - start
        guard Ed25519.ready, len >= overhead, nonce.count == nonceSize, key.count == keySize else { return nil }
        var plain = [UInt8](repeating: 0, count: len - overhead)
        var plen: UInt64 = 0
        let rc = cipher.withUnsafeBufferPointer { c in
            crypto_aead_xchacha20poly1305_ietf_decrypt(&plain, &plen, nil, c.baseAddress! + start, UInt64(len),
                                                       ad, UInt64(ad.count), nonce, key)
        }
        guard rc == 0 else { return nil }
        return plain
    }
}
