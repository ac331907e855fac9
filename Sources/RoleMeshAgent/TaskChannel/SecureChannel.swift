#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSodium
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshCore

/// The task channel between two agents: TCP, mutually authenticated with both nodes'
/// Ed25519 keys, encrypted with XChaCha20-Poly1305. `protocol.md` ("Task channel") has the bytes.
///
/// Handshake (SIGMA-style, both identities bound to both ephemeral keys):
///   C → S  "RMT1" | name_c | eph_c                   (server refuses an untrusted name here, before any task data)
///   S → C  "RMT1" | name_s | eph_s | sig_s(transcript) or "RMTX" | code | message
///   C → S  sig_c(transcript)
///   S → C  the first encrypted frame, `info` "ready": the client's proof was accepted
/// Session keys come from `crypto_kx` over the ephemeral X25519 keys. Each frame is
///   length u32 | AEAD(type | payload), nonce = a per-direction counter, length as associated data,
/// so a tampered, replayed, reordered or dropped frame fails to open and ends the connection.
public final class SecureChannel: FrameTransport {
    let io: AsyncFD
    public let peer: String
    /// Each direction's key and frame counter. The sender encrypts and queues a frame under its
    /// lock, so frames leave in counter order whoever sends them.
    private let tx: Locked<(key: [UInt8], counter: UInt64)>
    private let rx: Locked<(key: [UInt8], counter: UInt64)>

    /// The whole handshake, on either side, must be over within this many seconds.
    public static let handshakeSeconds: Double = 5

    static let hello = Array("RMT1".utf8)
    static let refusal = Array("RMTX".utf8)
    static let serverTag = Array("rolemesh/1 task-server\0".utf8)
    static let clientTag = Array("rolemesh/1 task-client\0".utf8)
    static let aeadOverhead = AEAD.overhead
    static let nonceSize = AEAD.nonceSize

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

    init(io: AsyncFD, peer: String, tx: [UInt8], rx: [UInt8], joinKey: [UInt8]? = nil) {
        self.io = io; self.peer = peer; self.joinKey = joinKey
        self.tx = Locked((tx, 0)); self.rx = Locked((rx, 0))
    }

    // MARK: - Handshake

    /// Connects from `local` (our listen address: all traffic leaves from it) to `address`,
    /// and proves we are `me` while checking that the other end is `expected`.
    public static func connect(to address: WireAddress, expected: String, me: String, keyPair: Ed25519.KeyPair,
                               trusted: [String: [UInt8]], from local: WireAddress?) async throws(MeshError) -> SecureChannel {
        let io = try await openTCP(to: address, peer: expected, from: local)
        return try await establish(io: io, expected: expected, me: me, keyPair: keyPair, trusted: trusted)
    }

    /// The client's side on a connected `io` (direct, or spliced through a relay), through to the
    /// server's "ready"; `io` is aborted if it fails.
    static func establish(io: AsyncFD, expected: String, me: String, keyPair: Ed25519.KeyPair,
                          trusted: [String: [UInt8]]) async throws(MeshError) -> SecureChannel {
        do throws(MeshError) {
            let channel = try await clientHandshake(io: io, expected: expected, me: me, keyPair: keyPair, trusted: trusted)
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
    static func openTCP(to address: WireAddress, peer: String, from local: WireAddress?) async throws(MeshError) -> AsyncFD {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, sockStream, 0)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create a TCP socket") }
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
    func awaitReady() async throws(MeshError) {
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
            throw error.meshError(expected)
        }
    }

    /// Why a client handshake failed, for callers that act on the reason (`rolemesh doctor`).
    enum HandshakeFailure: Error, Sendable, Equatable {
        case lost                       // the connection ended or the deadline passed
        case refused                    // "RMTX": the server does not trust this node
        case untrusted(String)          // the server's name has no key here
        case unproven(String)           // the server could not prove it holds that name's key

        func meshError(_ expected: String) -> MeshError {
            switch self {
            case .lost: SecureChannel.lost(expected)
            case .refused: MeshError(MeshError.noPermission, "\(expected) refused the connection: this node is not trusted there")
            case .untrusted(let name) where name == expected: MeshError(MeshError.noPermission, "\(expected) is not trusted here")
            case .untrusted, .unproven:
                MeshError(MeshError.noPermission, "the node answering for \(expected) could not prove it is \(expected)")
            }
        }
    }

    /// The handshake itself. `expected` nil accepts whichever trusted node answers (the
    /// channel's `peer` says which): a seed is known by its address only.
    static func handshake(io: AsyncFD, expected: String?, me: String, keyPair: Ed25519.KeyPair,
                          trusted: [String: [UInt8]], within seconds: Double) async throws(HandshakeFailure) -> SecureChannel {
        io.setDeadline(seconds)
        if let expected, trusted[expected] == nil { throw .untrusted(expected) }
        let (ephPK, ephSK) = kxKeyPair()
        var w = ByteWriter()
        w.raw(hello); w.shortString(me); w.raw(ephPK)
        guard await io.write(w.bytes) else { throw .lost }
        guard let tag = await io.readExactly(4) else { throw .lost }
        if tag == refusal { throw .refused }
        guard tag == hello, let n = await io.readExactly(1),
              let nameBytes = await io.readExactly(Int(n[0])),
              let serverEph = await io.readExactly(32),
              let sig = await io.readExactly(64) else { throw .lost }
        let serverName = String(decoding: nameBytes, as: UTF8.self)
        if let expected, serverName != expected { throw .unproven(expected) }
        guard let serverKey = trusted[serverName] else { throw .untrusted(serverName) }
        let transcript = transcriptBytes(client: me, clientEph: ephPK, server: serverName, serverEph: serverEph)
        guard Ed25519.verify(signature: sig, message: serverTag + transcript, publicKey: serverKey) else {
            throw .unproven(serverName)
        }
        guard await io.write(keyPair.sign(clientTag + transcript)) else { throw .lost }
        var rx = [UInt8](repeating: 0, count: 32), tx = [UInt8](repeating: 0, count: 32)
        guard crypto_kx_client_session_keys(&rx, &tx, ephPK, ephSK, serverEph) == 0 else { throw .unproven(serverName) }
        return SecureChannel(io: io, peer: serverName, tx: tx, rx: rx)
    }

    /// The server side, on an accepted socket. An untrusted client is refused (77) before
    /// anything else is read from it. All of it must be over within `handshakeSeconds`, however
    /// slowly bytes trickle. `trusted` is asked at the moment the client names itself.
    /// `invites`: how a join hello ("RMJ1") is answered; without it, it is refused as malformed.
    public static func accept(io: AsyncFD, me: String, keyPair: Ed25519.KeyPair,
                              trusted: @Sendable (String) async -> [UInt8]?,
                              invites: InviteDoor? = nil) async throws(MeshError) -> SecureChannel {
        io.setDeadline(handshakeSeconds)
        guard let tag = await io.readExactly(4) else { throw MeshError(MeshError.other, "a malformed task-channel hello") }
        if tag == joinHello, let invites { return try await acceptJoin(io: io, me: me, keyPair: keyPair, invites: invites) }
        guard tag == hello, let n = await io.readExactly(1),
              let nameBytes = await io.readExactly(Int(n[0])),
              let clientEph = await io.readExactly(32) else {
            throw MeshError(MeshError.other, "a malformed task-channel hello")
        }
        let client = String(decoding: nameBytes, as: UTF8.self)
        guard NodeName.isValid(client), let clientKey = await trusted(client) else {
            await refuse(io, code: MeshError.noPermission, "\(me) does not trust \(client.isEmpty ? "this node" : client)")
            throw MeshError(MeshError.noPermission, "refused a task connection from untrusted \(client)")
        }
        let (ephPK, ephSK) = kxKeyPair()
        let transcript = transcriptBytes(client: client, clientEph: clientEph, server: me, serverEph: ephPK)
        var w = ByteWriter()
        w.raw(hello); w.shortString(me); w.raw(ephPK); w.raw(keyPair.sign(serverTag + transcript))
        guard await io.write(w.bytes), let sig = await io.readExactly(64),
              Ed25519.verify(signature: sig, message: clientTag + transcript, publicKey: clientKey) else {
            throw MeshError(MeshError.noPermission, "\(client) failed to prove its identity")
        }
        var rx = [UInt8](repeating: 0, count: 32), tx = [UInt8](repeating: 0, count: 32)
        guard crypto_kx_server_session_keys(&rx, &tx, ephPK, ephSK, clientEph) == 0 else {
            throw MeshError(MeshError.noPermission, "key exchange with \(client) failed")
        }
        io.setDeadline(nil)
        let channel = SecureChannel(io: io, peer: client, tx: tx, rx: rx)
        // A failed send shows at the next read.
        try? await channel.send(Frame(.info, encoding: ReadyInfo(message: "ready", keep: true)))
        return channel
    }

    static func refuse(_ io: AsyncFD, code: Int32, _ message: String) async {
        let msg = Array(message.utf8.prefix(1000))
        _ = await io.write(refusal + [UInt8(code), UInt8(msg.count >> 8), UInt8(msg.count & 0xff)] + msg)
        _ = await io.drained()
    }

    static func kxKeyPair() -> ([UInt8], [UInt8]) {
        _ = Ed25519.ready
        var pk = [UInt8](repeating: 0, count: 32), sk = [UInt8](repeating: 0, count: 32)
        crypto_kx_keypair(&pk, &sk)
        return (pk, sk)
    }

    static func transcriptBytes(client: String, clientEph: [UInt8], server: String, serverEph: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.shortString(client); w.raw(clientEph); w.shortString(server); w.raw(serverEph)
        return w.bytes
    }

    static func lost(_ peer: String) -> MeshError { MeshError(MeshError.tempFail, "the connection to \(peer) was lost") }

    // MARK: - Frames

    static func nonce(_ counter: UInt64) -> [UInt8] {
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
    public func close() { io.close() }

    /// Ends the connection now, for both sides (a revoked or dead peer).
    public func abort() { io.abort() }
}
