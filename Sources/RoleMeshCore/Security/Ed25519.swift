import CSodium
import Glibc

/// Ed25519 through libsodium. Keys are stored as base64 text: the public key (32 bytes)
/// in `keys/NAME.pub`, the 32-byte seed in `keys/NAME.secret`.
public enum Ed25519 {
    public static let publicKeySize = Int(crypto_sign_PUBLICKEYBYTES)
    public static let seedSize = Int(crypto_sign_SEEDBYTES)
    public static let signatureSize = Int(crypto_sign_BYTES)

    /// libsodium must be initialised once before use; `sodium_init` is idempotent and thread-safe.
    public static let ready: Bool = sodium_init() >= 0

    /// Our own key pair. The secret lives in memory from `sodium_malloc`: locked out of swap
    /// (`mlock`) where the system allows, behind guard pages, and zeroed when the pair goes away.
    /// The seed is never kept: only libsodium's 64-byte secret form, in that guarded buffer.
    public final class KeyPair: Sendable {
        public let publicKey: [UInt8]
        /// libsodium's 64-byte form: seed || public key. Written once in `init`, read-only after.
        private let secret: UnsafeSecret

        public init(seed: [UInt8]) {
            precondition(Ed25519.ready && seed.count == Ed25519.seedSize)
            var pk = [UInt8](repeating: 0, count: Ed25519.publicKeySize)
            let secret = UnsafeSecret(count: Int(crypto_sign_SECRETKEYBYTES))
            _ = crypto_sign_seed_keypair(&pk, secret.pointer, seed)
            self.publicKey = pk; self.secret = secret
        }

        /// A fresh pair; the seed goes straight into `body` (to be written to the key file) and is zeroed.
        public static func generate(_ body: (_ seed: [UInt8]) -> Void = { _ in }) -> KeyPair {
            var seed = Ed25519.randomBytes(Ed25519.seedSize)
            defer { Ed25519.wipe(&seed) }
            body(seed)
            return KeyPair(seed: seed)
        }

        /// X25519(our key, their key), both converted from Ed25519 (libsodium's birational map):
        /// the shared secret gossip's pair keys come from (`Privacy/PairKeys.swift`). Nil for a public
        /// key that has no X25519 form or gives a degenerate (all-zero) result.
        public func sharedSecret(with peerPublic: [UInt8]) -> [UInt8]? {
            guard let peerCurve = X25519.fromEd25519(peerPublic) else { return nil }
            return dh(curvePublic: peerCurve)
        }

        /// X25519(our key converted from Ed25519, an X25519 public key): the task channel's
        /// static–ephemeral and static–static exchanges (`ChannelHandshake`). Nil for a degenerate result.
        public func dh(curvePublic: [UInt8]) -> [UInt8]? {
            guard curvePublic.count == X25519.keySize else { return nil }
            let mine = UnsafeSecret(count: Int(crypto_scalarmult_curve25519_SCALARBYTES))
            _ = crypto_sign_ed25519_sk_to_curve25519(mine.pointer, secret.pointer)
            var shared = [UInt8](repeating: 0, count: Int(crypto_scalarmult_BYTES))
            guard crypto_scalarmult(&shared, mine.pointer, curvePublic) == 0 else { return nil }
            return shared
        }

        public func sign(_ message: [UInt8]) -> [UInt8] {
            var sig = [UInt8](repeating: 0, count: Ed25519.signatureSize)
            _ = crypto_sign_detached(&sig, nil, message, UInt64(message.count), secret.pointer)
            return sig
        }
    }

    /// Zeroes secret bytes held in a Swift array (best effort: copies made earlier are not reached).
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { if let base = $0.baseAddress { sodium_memzero(base, $0.count) } }
    }

    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard ready, signature.count == signatureSize, publicKey.count == publicKeySize else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }

    public static func randomBytes(_ n: Int) -> [UInt8] {
        precondition(ready)
        var b = [UInt8](repeating: 0, count: n)
        randombytes_buf(&b, n)
        return b
    }
}

/// A fixed-size buffer from `sodium_malloc` (mlocked, guard pages), freed and zeroed with `sodium_free`.
/// Immutable after the key pair fills it once, which is why sharing it across threads is safe.
final class UnsafeSecret: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
    init(count: Int) {
        guard let raw = sodium_malloc(count) else { fatalError("sodium_malloc failed: out of memory") }
        pointer = raw.bindMemory(to: UInt8.self, capacity: count)
    }
    deinit { sodium_free(pointer) }
}

/// How the membership core signs its own statements and checks others'.
/// Injected, so the simulation can run a thousand nodes without real crypto.
public protocol StatementCrypto: AnyObject {
    func sign(_ message: [UInt8]) -> [UInt8]
    /// `nil` when the origin's key is not trusted.
    func verify(signature: [UInt8], message: [UInt8], origin: String) -> Bool?
    func isTrusted(_ origin: String) -> Bool
}

/// The real thing: our key pair and the trusted public keys from `keys/`.
public final class KeyRing: StatementCrypto {
    public let keyPair: Ed25519.KeyPair
    public private(set) var trusted: [String: [UInt8]]

    public init(keyPair: Ed25519.KeyPair, trusted: [String: [UInt8]]) {
        self.keyPair = keyPair; self.trusted = trusted
    }
    public func replaceTrusted(_ keys: [String: [UInt8]]) { trusted = keys }
    public func sign(_ message: [UInt8]) -> [UInt8] { keyPair.sign(message) }
    public func isTrusted(_ origin: String) -> Bool { trusted[origin] != nil }
    public func verify(signature: [UInt8], message: [UInt8], origin: String) -> Bool? {
        guard let pk = trusted[origin] else { return nil }
        return Ed25519.verify(signature: signature, message: message, publicKey: pk)
    }
}
