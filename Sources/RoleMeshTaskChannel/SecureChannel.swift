import RoleMeshPlatform
import RoleMeshCore
import RoleMeshTransport

/// The task channel between two agents: TCP, mutually authenticated with both nodes'
/// Ed25519 keys, encrypted with XChaCha20-Poly1305. `protocol.md` ("Task channel") has the bytes.
///
/// Handshake, version 2 (`ChannelHandshake`, in the manner of Noise IK): the client encrypts its
/// name to the server's key, so no name travels in clear and a stranger learns nothing, not even
/// which node it reached; every failure is refused alike, naming no one.
///   C → S  "RMT2" | e_c | c1 (the client's identity, 112 bytes sealed)
///   S → C  e_s | c2 (opens only for the client the server accepts)      or "RMTX" | 76 | 0 0 (another version)
///   C → S  c3 (the client's proof of its key)
///   S → C  the first encrypted frame, `info` "ready"                    or "RMTX" | 77 | 0 0
/// Each frame is
///   length u32 | AEAD(type | payload), nonce = a per-direction counter, length as associated data,
/// so a tampered, replayed, reordered or dropped frame fails to open and ends the connection.
public final class SecureChannel: FrameTransport {
    public let io: AsyncFD
    public let peer: String
    /// Each direction's key and frame counter. The sender encrypts and queues a frame under its
    /// lock, so frames leave in counter order whoever sends them.
    private let tx: Locked<(key: [UInt8], counter: UInt64)>
    private let rx: Locked<(key: [UInt8], counter: UInt64)>

    /// The whole handshake, on either side, must be over within this many seconds.
    public static let handshakeSeconds: Double = 5

    public static let aeadOverhead = AEAD.overhead
    public static let nonceSize = AEAD.nonceSize

    /// Set on the server's side of a join (a new device proving an invite): the public key it
    /// proved it holds. Such a channel carries only the `welcome` (JoinHandshake.swift).
    public let joinKey: [UInt8]?

    /// On the client's side: the server said `"keep": true` when ready, so after a run this
    /// channel may carry another one (`next`), instead of a new connection and handshake each.
    private let keepable = Locked(false)
    public var keeps: Bool { keepable.withLock { $0 } }
    /// A kept channel waits for its next run at most this long on the server, which closes it
    /// then; the client keeps one idle for less (`Submitter.keepIdleSeconds`), so it rarely sends
    /// a run into a channel the server is just closing.
    public static let serverIdleSeconds: Double = 60

    public init(io: AsyncFD, peer: String, keys: ChannelHandshake.SessionKeys, joinKey: [UInt8]? = nil) {
        self.io = io; self.peer = peer; self.joinKey = joinKey
        self.tx = Locked((keys.send, 0)); self.rx = Locked((keys.receive, 0))
    }

    // MARK: - Handshake

    /// Connects from `local` (our listen address: all traffic leaves from it) to `address`,
    /// and proves we are `me` while checking that the other end is `expected`. `previousRelease`:
    /// `expected` runs the release before this one, which speaks the first handshake ("RMT1").
    public static func connect(to address: WireAddress, expected: String, me: String, keyPair: Ed25519.KeyPair,
                               trusted: [String: [UInt8]], from local: WireAddress?, previousRelease: Bool = false) async throws(MeshError) -> SecureChannel {
        let io = try await openTCP(to: address, peer: expected, from: local)
        return try await establish(io: io, expected: expected, me: me, keyPair: keyPair, trusted: trusted, previousRelease: previousRelease)
    }

    /// The client's side on a connected `io` (direct, or spliced through a relay), through to the
    /// server's "ready"; `io` is aborted if it fails.
    public static func establish(io: AsyncFD, expected: String, me: String, keyPair: Ed25519.KeyPair,
                          trusted: [String: [UInt8]], previousRelease: Bool = false) async throws(MeshError) -> SecureChannel {
        do throws(MeshError) {
            let channel: SecureChannel
            if previousRelease {
                do throws(HandshakeFailure) {
                    channel = try await LegacyHandshake.connect(io: io, expected: expected, me: me, keyPair: keyPair, trusted: trusted, within: handshakeSeconds)
                } catch { throw error.meshError(expected, me: me) }
            } else {
                channel = try await clientHandshake(io: io, expected: expected, me: me, keyPair: keyPair, trusted: trusted)
            }
            try await channel.awaitReady()
            io.setDeadline(nil)
            return channel
        } catch {
            io.abort()
            throw error
        }
    }

    /// A TCP connection from `local` to `address`, connected within `handshakeSeconds` (the
    /// deadline stays armed for the handshake that follows).
    public static func openTCP(to address: WireAddress, peer: String, from local: WireAddress?) async throws(MeshError) -> AsyncFD {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, sockStream, 0)
        guard fd >= 0 else {
            throw MeshError(MeshError.tempFail, "cannot create a TCP socket: \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let local, !local.isUnspecified, local.isIPv6 == address.isIPv6 {
            let bound = SocketAddress.with(WireAddress(ip: local.ip, port: 0)) { bind(fd, $0, $1) }
            if bound != 0 { Log.debug("cannot bind the task connection to \(local.host); using the default route") }
        }
        let io = AsyncFD(fd)      // non-blocking from here: the connect completes in the background
        io.setDeadline(handshakeSeconds)
        var rc = SocketAddress.with(address) { sysConnect(fd, $0, $1) }
        var err = rc == 0 ? 0 : errno
        if rc != 0, err == EINPROGRESS {
            if await io.writable() {
                var soErr: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len)
                err = soErr
                rc = soErr == 0 ? 0 : -1
            } else { err = ETIMEDOUT }
        }
        guard rc == 0 else {
            io.abort()
            throw MeshError(MeshError.tempFail, "cannot reach \(peer) at \(address): \(String(cString: strerror(err)))")
        }
        return io
    }

    /// The server confirms it accepted our proof; without this a rejected client would only
    /// learn of it at its first read.
    public func awaitReady() async throws(MeshError) {
        guard let ready = try? await receive(), ready.type == .info else {
            throw MeshError(MeshError.noPermission, "\(peer) refused the task connection (it did not accept our identity)")
        }
        let keep = ready.decode(ReadyInfo.self)?.keep == true
        keepable.withLock { $0 = keep }
    }

    /// The client's side of the handshake on a connected socket, all of it within `seconds`.
    /// A refusal ("RMTX") is not authenticated: its code and text are never taken, whatever they say.
    public static func clientHandshake(io: AsyncFD, expected: String, me: String, keyPair: Ed25519.KeyPair,
                                       trusted: [String: [UInt8]], within seconds: Double = handshakeSeconds) async throws(MeshError) -> SecureChannel {
        do {
            return try await handshake(io: io, expected: expected, me: me, keyPair: keyPair, trusted: trusted, within: seconds)
        } catch {
            throw error.meshError(expected, me: me)
        }
    }

    /// Why a client handshake failed, for callers that act on the reason (`rolemesh doctor`).
    public enum HandshakeFailure: Error, Sendable, Equatable {
        case lost                       // the connection ended or the deadline passed
        case refused                    // "RMTX" after our proof
        case otherVersion               // "RMTX" 76: the server does not speak this handshake
        case untrusted(String)          // no key here for the node we meant to reach
        case notAccepted(String)        // the answer did not open: another device, or it does not accept our key

        func meshError(_ expected: String, me: String) -> MeshError {
            switch self {
            case .lost: SecureChannel.lost(expected)
            case .refused: MeshError(MeshError.noPermission, "\(expected) refused the connection: this node is not trusted there")
            case .otherVersion:
                MeshError(MeshError.unavailable, "\(expected) speaks another version of the task channel: run the same RoleMesh release on both")
            case .untrusted(let name): MeshError(MeshError.noPermission, "\(name) is not trusted here")
            case .notAccepted(let name):
                MeshError(MeshError.noPermission,
                          "\(name) did not accept this node: its keys/\(me).pub is missing or another key, or the key here for \(name) is not the one it holds (or another device answers at its address)")
            }
        }
    }

    /// The handshake itself, as `identity` (a node's name, or a join) to the node `expected`
    /// whose key is `serverKey`; `psk`: a join's invite secret.
    public static func handshake(io: AsyncFD, expected: String, serverKey: [UInt8], as identity: ChannelHandshake.Identity,
                          keyPair: Ed25519.KeyPair, psk: [UInt8]? = nil, within seconds: Double) async throws(HandshakeFailure) -> SecureChannel {
        io.setDeadline(seconds)
        guard var client = ChannelHandshake.Client(server: serverKey, as: identity, psk: psk) else { throw .notAccepted(expected) }
        guard await io.write(client.hello) else { throw .lost }
        guard let head = await io.readExactly(4) else { throw .lost }
        if head == ChannelHandshake.refusal {
            let code = await io.readExactly(3)
            throw code?.first == ChannelHandshake.otherVersion ? .otherVersion : .refused
        }
        guard let rest = await io.readExactly(ChannelHandshake.answerSize - 4) else { throw .lost }
        guard let (proof, keys) = client.finish(answer: head + rest, keyPair: keyPair) else { throw .notAccepted(expected) }
        guard await io.write(proof) else { throw .lost }
        return SecureChannel(io: io, peer: expected, keys: keys)
    }

    public static func handshake(io: AsyncFD, expected: String, me: String, keyPair: Ed25519.KeyPair,
                          trusted: [String: [UInt8]], within seconds: Double) async throws(HandshakeFailure) -> SecureChannel {
        guard let serverKey = trusted[expected] else { throw .untrusted(expected) }
        return try await handshake(io: io, expected: expected, serverKey: serverKey, as: .task(me), keyPair: keyPair, within: seconds)
    }

    /// Why a server-side handshake did not end in a channel: for the refusal log, which counts
    /// them (`HandshakeRefusals`) and never names the client (its name is not proven).
    public enum Refusal: Error, Sendable {
        case ended              // the connection ended, or the deadline passed, before the client's proof
        case otherVersion       // not "RMT2"
        case notAccepted        // the proof did not hold: a stranger, an untrusted name, a wrong key or invite
        case inviteUsed         // a correct join whose invite a racing one used first

        /// Why, for the log: fixed text, nothing the client said.
        public var phrase: String {
            switch self {
            case .ended: "it ended or ran out of time before proving a key"
            case .otherVersion: "it speaks another handshake than RMT2"
            case .notAccepted: "it did not prove a key trusted here (or an invite held here)"
            case .inviteUsed: "another join used its invite just before"
            }
        }
    }

    /// The server side, on an accepted socket. The client's hello is answered whatever it says,
    /// at the same cost; only a client this node trusts (or one holding a pending invite) can
    /// complete it, and every failure gets the same refusal. All of it must be over within
    /// `handshakeSeconds`, however slowly bytes trickle. `trusted` is asked once the hello opened.
    /// `invites`: how a join is answered; without it, a join is refused like any failure.
    /// `previousRelease`: for the first handshake ("RMT1"), the key of a member of the release before
    /// this one at this connection's source (`LegacyHandshake`); without it, "RMT1" is refused.
    public static func accept(io: AsyncFD, me: String, keyPair: Ed25519.KeyPair,
                              trusted: @Sendable (String) async -> [UInt8]?,
                              invites: InviteDoor? = nil,
                              previousRelease: (@Sendable (String) async -> [UInt8]?)? = nil) async throws(Refusal) -> SecureChannel {
        io.setDeadline(handshakeSeconds)
        guard let magic = await io.readExactly(4) else { throw .ended }
        if magic == LegacyHandshake.magic, let previousRelease {
            let channel = try await LegacyHandshake.accept(io: io, me: me, keyPair: keyPair, legacyKey: previousRelease)
            io.setDeadline(nil)
            try? await channel.send(Frame(.info, encoding: ReadyInfo(message: "ready", keep: false)))
            return channel
        }
        guard magic == ChannelHandshake.magic else {
            await refuse(io, ChannelHandshake.otherVersion)
            throw .otherVersion
        }
        guard let body = await io.readExactly(ChannelHandshake.helloSize - 4) else { throw .ended }
        var server = ChannelHandshake.Server(hello: magic + body, keyPair: keyPair)
        var clientKey: [UInt8]?, psk: [UInt8]?
        switch server.identity {
        case .task(let name)?: clientKey = await trusted(name)
        case .join(let name, let key, let id)?:
            if let secret = await invites?.secret(name, id) { clientKey = key; psk = secret }
        case nil: _ = await trusted("")     // the same round trip to the agent as a hello that opened
        }
        guard await io.write(server.answer(clientKey: clientKey, psk: psk)),
              let proof = await io.readExactly(ChannelHandshake.proofSize) else { throw .ended }
        guard let keys = server.check(proof: proof, keyPair: keyPair), let identity = server.identity else {
            await refuse(io, ChannelHandshake.refused)
            throw .notAccepted
        }
        var joinKey: [UInt8]?
        if case .join(let name, let key, let id) = identity {
            // Single use: the first proof that arrives takes the invite, a racing second one is refused.
            guard await invites?.claim(name, id, key) == true else {
                await refuse(io, ChannelHandshake.refused)
                throw .inviteUsed
            }
            joinKey = key
        }
        io.setDeadline(nil)
        let channel = SecureChannel(io: io, peer: identity.name, keys: keys, joinKey: joinKey)
        // A failed send shows at the next read.
        try? await channel.send(Frame(.info, encoding: ReadyInfo(message: "ready", keep: true)))
        return channel
    }

    /// "RMTX", a code, a zero length: the same bytes for every refusal of one kind, naming no one.
    public static func refuse(_ io: AsyncFD, _ code: UInt8) async {
        _ = await io.write(ChannelHandshake.refusal(code))
        _ = await io.drained()
    }

    public static func lost(_ peer: String) -> MeshError { MeshError(MeshError.tempFail, "the connection to \(peer) was lost") }

    // MARK: - Frames

    public static func nonce(_ counter: UInt64) -> [UInt8] {
        var n = [UInt8](repeating: 0, count: nonceSize)
        for i in 0..<8 { n[i] = UInt8((counter >> (8 * UInt64(i))) & 0xff) }
        return n
    }

    public func send(_ frame: Frame) async throws(MeshError) {
        guard enqueue(frame), await io.drained(below: AsyncFD.highWater) else { throw Self.lost(peer) }
    }

    /// Seals and queues `frame` now, in order with every other frame, without waiting; false once
    /// the connection is gone. What decides a frame's place in the stream: a caller that must send
    /// nothing after some point (a run handing the channel back) enqueues under its own lock.
    public func enqueue(_ frame: Frame) -> Bool {
        let plain = [frame.type.rawValue] + frame.payload
        let len = UInt32(plain.count + Self.aeadOverhead)
        var w = ByteWriter(capacity: 4)
        w.u32(len)
        let header = w.bytes
        return tx.withLock { tx -> Bool in
            let n = Self.nonce(tx.counter)
            tx.counter += 1
            return io.enqueue(AEAD.seal(plain, ad: header, nonce: n, key: tx.key, prefix: header))
        }
    }

    /// Waits while the peer is far behind, as `send` does after queueing; false once it is gone.
    public func drained() async -> Bool { await io.drained(below: AsyncFD.highWater) }

    /// A kept channel between runs: open, nothing unread and nothing arrived (an idle channel the
    /// server closed reads as end of stream, so it fails this and is not used).
    public var isIdleAndOpen: Bool { io.isOpenAndQuiet }

    /// One reader at a time (each connection has one).
    public func receive() async throws(MeshError) -> Frame? {
        guard let header = await io.readExactly(4) else { return nil }
        var r = ByteReader(header)
        let len = Int((try? r.u32()) ?? 0)
        guard len > Self.aeadOverhead, len <= Frame.maxFrame + Self.aeadOverhead + 1,
              let cipher = await io.readExactly(len) else {
            throw MeshError(MeshError.tempFail, "the task channel with \(peer) broke")
        }
        let plain = rx.withLock { rx -> [UInt8]? in
            let n = Self.nonce(rx.counter)
            rx.counter += 1
            return AEAD.open(cipher, ad: header, nonce: n, key: rx.key)
        }
        guard let plain, plain.count >= 1, let type = FrameType(rawValue: plain[0]) else {
            throw MeshError(MeshError.tempFail, "a tampered or replayed frame from \(peer) ended the connection")
        }
        return Frame(type, Array(plain[1...]))
    }

    /// Sends what is queued (bounded), then ends the connection.
    /// The TCP connection's two ends now (a relayed channel's remote end is the relay).
    public var ends: (local: WireAddress, remote: WireAddress)? { SocketAddress.ends(of: io.fd) }

    public func close() { io.close() }

    /// Ends the connection now, for both sides (a revoked or dead peer).
    public func abort() { io.abort() }
}
