import CSodium

/// X25519 through libsodium: ephemeral keys and Diffie–Hellman for the task channel's handshake.
public enum X25519 {
    public static let keySize = 32

    /// A fresh pair (public, secret).
    public static func keyPair() -> (pk: [UInt8], sk: [UInt8]) {
        precondition(Ed25519.ready)
        var pk = [UInt8](repeating: 0, count: keySize), sk = [UInt8](repeating: 0, count: keySize)
        crypto_kx_keypair(&pk, &sk)
        return (pk, sk)
    }

    /// X25519(secret, public); nil for a degenerate (all-zero) result, as a low-order public key gives.
    public static func dh(_ secret: [UInt8], _ pub: [UInt8]) -> [UInt8]? {
        guard Ed25519.ready, secret.count == keySize, pub.count == keySize else { return nil }
        var out = [UInt8](repeating: 0, count: keySize)
        guard crypto_scalarmult(&out, secret, pub) == 0 else { return nil }
        return out
    }

    /// The X25519 form of an Ed25519 public key (libsodium's birational map); nil if it has none.
    public static func fromEd25519(_ pk: [UInt8]) -> [UInt8]? {
        guard Ed25519.ready, pk.count == Ed25519.publicKeySize else { return nil }
        var out = [UInt8](repeating: 0, count: keySize)
        guard crypto_sign_ed25519_pk_to_curve25519(&out, pk) == 0 else { return nil }
        return out
    }

    /// libsodium's `crypto_kx` session keys (the 0.1.0 handshake, LegacyHandshake): the client's
    /// (receive, send) from its pair and the server's public key; nil for a bad key.
    public static func clientSessionKeys(pk: [UInt8], sk: [UInt8], server: [UInt8]) -> (receive: [UInt8], send: [UInt8])? {
        guard Ed25519.ready, server.count == keySize else { return nil }
        var rx = [UInt8](repeating: 0, count: keySize), tx = [UInt8](repeating: 0, count: keySize)
        guard crypto_kx_client_session_keys(&rx, &tx, pk, sk, server) == 0 else { return nil }
        return (rx, tx)
    }

    /// The server's side of `clientSessionKeys`.
    public static func serverSessionKeys(pk: [UInt8], sk: [UInt8], client: [UInt8]) -> (receive: [UInt8], send: [UInt8])? {
        guard Ed25519.ready, client.count == keySize else { return nil }
        var rx = [UInt8](repeating: 0, count: keySize), tx = [UInt8](repeating: 0, count: keySize)
        guard crypto_kx_server_session_keys(&rx, &tx, pk, sk, client) == 0 else { return nil }
        return (rx, tx)
    }
}

/// The task channel's handshake, version 2 (`protocol.md`, "Task channel"): the pure part, bytes in
/// and bytes out, so it is tested without sockets. In the manner of Noise IK (with a pre-shared
/// key for a join): the client knows the server's key and encrypts its own identity to it, so
///
/// - a passive observer of the connection learns no name at all (nothing identifying is in clear);
/// - a stranger learns nothing either: the server answers every hello, good or bad, with 48 bytes
///   that only a client holding a key the server trusts (or a pending invite's secret) can open,
///   after the same work, and refuses every failure alike, naming no one;
/// - the client is authenticated by its static key (ss) bound to the server's fresh ephemeral
///   key, so a replayed hello gets nowhere, and both ephemeral keys give forward secrecy.
///
///     C → S  "RMT2" · e_c (32) · c1 = AEAD(k1, identity block (112))                164 bytes
///     S → C  e_s (32) · c2 = AEAD(k2, empty)                                          48 bytes
///     C → S  c3 = AEAD(k3, empty)                                                     16 bytes
///
/// with k1 from es, k2 from ee, se (and the invite's secret for a join), k3 from ss; every AEAD's
/// associated data is the running transcript hash.
public enum ChannelHandshake {
    public static let magic = Array("RMT2".utf8)
    /// A refusal (not authenticated, and naming nobody): "RMTX", a code, a zero length.
    public static let refusal = Array("RMTX".utf8)
    /// Codes a refusal carries: 77 not accepted, 76 the server does not speak this handshake.
    public static let refused: UInt8 = 77, otherVersion: UInt8 = 76
    public static let blockSize = 112
    public static let helloSize = 4 + X25519.keySize + blockSize + AEAD.overhead
    public static let answerSize = X25519.keySize + AEAD.overhead
    public static let proofSize = AEAD.overhead
    static let inviteIDSize = 8

    public static func refusal(_ code: UInt8) -> [UInt8] { refusal + [code, 0, 0] }

    /// Who the client says it is, inside c1 (fixed size, zero-padded, so a name's length does not show).
    public enum Identity: Equatable, Sendable {
        /// A trusted node, by its name.
        case task(String)
        /// A new device joining as `name` with `key`, for the invite whose id is `invite`.
        case join(String, key: [UInt8], invite: [UInt8])

        public var name: String {
            switch self { case .task(let n), .join(let n, _, _): n }
        }

        var block: [UInt8] {
            var out: [UInt8]
            switch self {
            case .task(let name): out = [1, UInt8(name.utf8.count)] + Array(name.utf8)
            case .join(let name, let key, let invite): out = [2, UInt8(name.utf8.count)] + Array(name.utf8) + key + invite
            }
            return out + [UInt8](repeating: 0, count: max(0, blockSize - out.count))
        }

        static func parse(_ b: [UInt8]) -> Identity? {
            guard b.count == blockSize, b[1] >= 1, b[1] <= 63 else { return nil }
            let end = 2 + Int(b[1])
            let name = String(decoding: b[2..<end], as: UTF8.self)
            guard NodeName.isValid(name) else { return nil }
            switch b[0] {
            case 1: return .task(name)
            case 2: return .join(name, key: Array(b[end..<end + 32]), invite: Array(b[end + 32..<end + 32 + inviteIDSize]))
            default: return nil
            }
        }
    }

    /// The id of an invite, from its secret: the client names which pending invite it holds
    /// (several may be pending for one name) without revealing the secret.
    public static func inviteID(secret: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(Array("rolemesh/2 invite id".utf8), size: inviteIDSize, key: secret)
    }

    /// The two directions' frame keys.
    public struct SessionKeys: Sendable {
        public let send: [UInt8]
        public let receive: [UInt8]
        public init(send: [UInt8], receive: [UInt8]) { self.send = send; self.receive = receive }
    }

    /// The chaining key and the transcript hash (Noise's symmetric state).
    struct Transcript {
        var ck: [UInt8]
        var h: [UInt8]
        static let nonce = [UInt8](repeating: 0, count: AEAD.nonceSize)     // each key seals once

        init() {
            h = BLAKE2b.hash(Array("rolemesh/2 task channel".utf8), size: 32)
            ck = h
        }
        mutating func mixHash(_ data: [UInt8]) { h = BLAKE2b.hash(h + data, size: 32) }
        /// A new chaining key and a key from `ikm`: BLAKE2b-512 keyed with ck, halved.
        mutating func mixKey(_ ikm: [UInt8]) -> [UInt8] {
            let out = BLAKE2b.hash(ikm, size: 64, key: ck)
            ck = Array(out[0..<32])
            return Array(out[32..<64])
        }
        mutating func seal(_ plain: [UInt8], key: [UInt8]) -> [UInt8] {
            let c = AEAD.seal(plain, ad: h, nonce: Self.nonce, key: key)
            mixHash(c)
            return c
        }
        mutating func open(_ cipher: [UInt8], key: [UInt8]) -> [UInt8]? {
            let p = AEAD.open(cipher, ad: h, nonce: Self.nonce, key: key)
            mixHash(cipher)
            return p
        }
        /// (client → server, server → client).
        func split() -> ([UInt8], [UInt8]) {
            let out = BLAKE2b.hash(Array("rolemesh/2 split".utf8), size: 64, key: ck)
            return (Array(out[0..<32]), Array(out[32..<64]))
        }
    }

    /// A stand-in for a secret or shared value that is missing, so a failure costs what a success does.
    static func filler(_ n: Int = 32) -> [UInt8] { Ed25519.randomBytes(n) }

    /// The client's side.
    public struct Client: Sendable {
        var t = Transcript()
        let eph: (pk: [UInt8], sk: [UInt8])
        let serverCurve: [UInt8]
        let psk: [UInt8]?
        /// The first message, to send as it is.
        public let hello: [UInt8]

        /// To the node whose Ed25519 key is `serverKey`, as `identity`; `psk`: a join's invite secret.
        /// Nil when that key has no X25519 form.
        public init?(server serverKey: [UInt8], as identity: Identity, psk: [UInt8]? = nil) {
            guard let sc = X25519.fromEd25519(serverKey) else { return nil }
            let eph = X25519.keyPair()
            guard let es = X25519.dh(eph.sk, sc) else { return nil }
            self.eph = eph; serverCurve = sc; self.psk = psk
            t.mixHash(magic + eph.pk)
            let k1 = t.mixKey(es)
            hello = magic + eph.pk + t.seal(identity.block, key: k1)
        }

        /// The server's answer: our proof and the session keys, or nil when it does not open (another
        /// device answered, or the server does not accept our key, or the invite).
        public mutating func finish(answer: [UInt8], keyPair: Ed25519.KeyPair) -> (proof: [UInt8], keys: SessionKeys)? {
            guard answer.count == answerSize else { return nil }
            let serverEph = Array(answer[0..<X25519.keySize])
            t.mixHash(serverEph)
            guard let ee = X25519.dh(eph.sk, serverEph), let se = keyPair.dh(curvePublic: serverEph) else { return nil }
            _ = t.mixKey(ee)
            var k2 = t.mixKey(se)
            if let psk { k2 = t.mixKey(psk) }
            guard t.open(Array(answer[X25519.keySize...]), key: k2) != nil, let ss = keyPair.dh(curvePublic: serverCurve) else { return nil }
            let proof = t.seal([], key: t.mixKey(ss))
            let (c2s, s2c) = t.split()
            return (proof, SessionKeys(send: c2s, receive: s2c))
        }
    }

    /// The server's side. Every step does the same work whether the hello opened or not.
    public struct Server {
        var t = Transcript()
        let clientEph: [UInt8]
        /// Who the hello says it comes from; nil when it does not open with our key or is malformed.
        public let identity: Identity?
        var clientCurve: [UInt8] = []
        var usable = false

        /// `hello`: the client's first message, `helloSize` bytes, magic included.
        public init(hello: [UInt8], keyPair: Ed25519.KeyPair) {
            let bytes = hello.count == helloSize ? hello : [UInt8](repeating: 0, count: helloSize)
            clientEph = Array(bytes[4..<4 + X25519.keySize])
            t.mixHash(Array(bytes[0..<4 + X25519.keySize]))
            let k1 = t.mixKey(keyPair.dh(curvePublic: clientEph) ?? filler())
            let block = t.open(Array(bytes[(4 + X25519.keySize)...]), key: k1)
            identity = hello.count == helloSize ? block.flatMap(Identity.parse) : nil
        }

        /// The answer to send (`answerSize` bytes). `clientKey`: the Ed25519 key this node trusts for
        /// the identity's name (for a join, the key it brings); `psk`: the invite's secret for a join.
        /// Either missing, the answer is made with stand-ins at the same cost and opens for nobody.
        public mutating func answer(clientKey: [UInt8]?, psk: [UInt8]?) -> [UInt8] {
            var eph = X25519.keyPair()
            // The client takes an answer that starts "RMTX" for a refusal.
            while eph.pk.prefix(4).elementsEqual(refusal) { eph = X25519.keyPair() }
            let curve = clientKey.flatMap(X25519.fromEd25519)
            var isJoin = false
            if case .join = identity { isJoin = true }
            usable = identity != nil && curve != nil && (!isJoin || psk != nil)
            clientCurve = curve ?? X25519.keyPair().pk
            t.mixHash(eph.pk)
            _ = t.mixKey(X25519.dh(eph.sk, clientEph) ?? filler())
            var k2 = t.mixKey(X25519.dh(eph.sk, clientCurve) ?? filler())
            if isJoin { k2 = t.mixKey(psk ?? filler(InviteCode.secretSize)) }
            return eph.pk + t.seal([], key: k2)
        }

        /// The client's proof: the session keys, or nil (a refusal, whatever the reason).
        public mutating func check(proof: [UInt8], keyPair: Ed25519.KeyPair) -> SessionKeys? {
            let k3 = t.mixKey(keyPair.dh(curvePublic: clientCurve) ?? filler())
            guard proof.count == proofSize, t.open(proof, key: k3) != nil, usable else { return nil }
            let (c2s, s2c) = t.split()
            return SessionKeys(send: s2c, receive: c2s)
        }
    }
}
