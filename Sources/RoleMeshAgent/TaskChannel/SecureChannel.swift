#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSodium
import Foundation
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
public final class SecureChannel: FrameTransport, @unchecked Sendable {
    let fd: Int32
    public let peer: String
    private let txKey: [UInt8], rxKey: [UInt8]
    private var txCounter: UInt64 = 0, rxCounter: UInt64 = 0
    private let sendLock = NSLock(), receiveLock = NSLock()
    private var closed = false
    /// While set, reads give up at this monotonic time (the handshake's total deadline).
    private var readDeadline: UInt64?

    /// The whole handshake, on either side, must be over within this many seconds.
    public static let handshakeSeconds: Double = 5

    static let hello = Array("RMT1".utf8)
    static let refusal = Array("RMTX".utf8)
    static let serverTag = Array("rolemesh/1 task-server\0".utf8)
    static let clientTag = Array("rolemesh/1 task-client\0".utf8)
    static let aeadOverhead = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)
    static let nonceSize = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)

    init(fd: Int32, peer: String, tx: [UInt8], rx: [UInt8]) {
        self.fd = fd; self.peer = peer; self.txKey = tx; self.rxKey = rx
    }

    // MARK: - Handshake

    /// Connects from `local` (our listen address: all traffic leaves from it) to `address`,
    /// and proves we are `me` while checking that the other end is `expected`.
    public static func connect(to address: WireAddress, expected: String, me: String, keyPair: Ed25519.KeyPair,
                               trusted: [String: [UInt8]], from local: WireAddress?) throws(MeshError) -> SecureChannel {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create a TCP socket") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let local, !local.isUnspecified, local.isIPv6 == address.isIPv6 {
            let bound = SocketAddress.with(WireAddress(ip: local.ip, port: 0)) { bind(fd, $0, $1) }
            if bound != 0 { Log.debug("cannot bind the task connection to \(local.host); using the default route") }
        }
        FD.setTimeouts(fd, seconds: Int(handshakeSeconds))
        guard SocketAddress.with(address, { Glibc.connect(fd, $0, $1) }) == 0 else {
            let err = String(cString: strerror(errno))
            Glibc.close(fd)
            throw MeshError(MeshError.tempFail, "cannot reach \(expected) at \(address): \(err)")
        }
        let channel: SecureChannel
        let deadline = FD.deadline(in: handshakeSeconds)
        do {
            channel = try clientHandshake(fd: fd, expected: expected, me: me, keyPair: keyPair, trusted: trusted, deadline: deadline)
        } catch {
            Glibc.close(fd)
            throw error
        }
        // From here the channel owns the descriptor (released with it). The server confirms it
        // accepted our proof; without this a rejected client would only learn of it at its first read.
        channel.readDeadline = deadline
        guard let ready = try? channel.receive(), ready.type == .info else {
            throw MeshError(MeshError.noPermission, "\(expected) refused the task connection (it did not accept our identity)")
        }
        channel.readDeadline = nil
        FD.setTimeouts(fd, seconds: 0)
        return channel
    }

    /// The client's side of the handshake on a connected socket; every read gives up at `deadline`.
    /// A refusal ("RMTX") is not authenticated: its code and text are never taken, whatever they say.
    public static func clientHandshake(fd: Int32, expected: String, me: String, keyPair: Ed25519.KeyPair,
                                       trusted: [String: [UInt8]], deadline: UInt64? = nil) throws(MeshError) -> SecureChannel {
        let deadline = deadline ?? FD.deadline(in: handshakeSeconds)
        guard let serverKey = trusted[expected] else { throw MeshError(MeshError.noPermission, "\(expected) is not trusted here") }
        let (ephPK, ephSK) = kxKeyPair()
        var w = ByteWriter()
        w.raw(hello); w.shortString(me); w.raw(ephPK)
        guard FD.writeAll(fd, w.bytes) else { throw lost(expected) }
        guard let tag = FD.readExactly(fd, 4, deadline: deadline) else { throw lost(expected) }
        if tag == refusal {
            throw MeshError(MeshError.noPermission, "\(expected) refused the connection: this node is not trusted there")
        }
        guard tag == hello, let n = FD.readExactly(fd, 1, deadline: deadline),
              let nameBytes = FD.readExactly(fd, Int(n[0]), deadline: deadline),
              let serverEph = FD.readExactly(fd, 32, deadline: deadline),
              let sig = FD.readExactly(fd, 64, deadline: deadline) else { throw lost(expected) }
        let serverName = String(decoding: nameBytes, as: UTF8.self)
        let transcript = transcriptBytes(client: me, clientEph: ephPK, server: serverName, serverEph: serverEph)
        guard serverName == expected,
              Ed25519.verify(signature: sig, message: serverTag + transcript, publicKey: serverKey) else {
            throw MeshError(MeshError.noPermission, "the node answering for \(expected) could not prove it is \(expected)")
        }
        guard FD.writeAll(fd, keyPair.sign(clientTag + transcript)) else { throw lost(expected) }
        var rx = [UInt8](repeating: 0, count: 32), tx = [UInt8](repeating: 0, count: 32)
        guard crypto_kx_client_session_keys(&rx, &tx, ephPK, ephSK, serverEph) == 0 else {
            throw MeshError(MeshError.noPermission, "key exchange with \(expected) failed")
        }
        return SecureChannel(fd: fd, peer: expected, tx: tx, rx: rx)
    }

    /// The server side, on an accepted socket. An untrusted client is refused (77) before
    /// anything else is read from it.
    /// Every read gives up at a total deadline (`handshakeSeconds`), however slowly bytes trickle.
    public static func accept(fd: Int32, me: String, keyPair: Ed25519.KeyPair,
                              trusted: [String: [UInt8]]) throws(MeshError) -> SecureChannel {
        FD.setTimeouts(fd, seconds: Int(handshakeSeconds))
        let deadline = FD.deadline(in: handshakeSeconds)
        guard let tag = FD.readExactly(fd, 4, deadline: deadline), tag == hello, let n = FD.readExactly(fd, 1, deadline: deadline),
              let nameBytes = FD.readExactly(fd, Int(n[0]), deadline: deadline),
              let clientEph = FD.readExactly(fd, 32, deadline: deadline) else {
            throw MeshError(MeshError.other, "a malformed task-channel hello")
        }
        let client = String(decoding: nameBytes, as: UTF8.self)
        guard NodeName.isValid(client), let clientKey = trusted[client] else {
            refuse(fd, code: MeshError.noPermission, "\(me) does not trust \(client.isEmpty ? "this node" : client)")
            throw MeshError(MeshError.noPermission, "refused a task connection from untrusted \(client)")
        }
        let (ephPK, ephSK) = kxKeyPair()
        let transcript = transcriptBytes(client: client, clientEph: clientEph, server: me, serverEph: ephPK)
        var w = ByteWriter()
        w.raw(hello); w.shortString(me); w.raw(ephPK); w.raw(keyPair.sign(serverTag + transcript))
        guard FD.writeAll(fd, w.bytes), let sig = FD.readExactly(fd, 64, deadline: deadline),
              Ed25519.verify(signature: sig, message: clientTag + transcript, publicKey: clientKey) else {
            throw MeshError(MeshError.noPermission, "\(client) failed to prove its identity")
        }
        var rx = [UInt8](repeating: 0, count: 32), tx = [UInt8](repeating: 0, count: 32)
        guard crypto_kx_server_session_keys(&rx, &tx, ephPK, ephSK, clientEph) == 0 else {
            throw MeshError(MeshError.noPermission, "key exchange with \(client) failed")
        }
        FD.setTimeouts(fd, seconds: 0)
        let channel = SecureChannel(fd: fd, peer: client, tx: tx, rx: rx)
        // Owned by the channel from here: a failed send shows at the next read, never as a throw
        // that would make the caller close the descriptor a second time.
        try? channel.send(.info("ready"))
        return channel
    }

    static func refuse(_ fd: Int32, code: Int32, _ message: String) {
        let msg = Array(message.utf8.prefix(1000))
        _ = FD.writeAll(fd, refusal + [UInt8(code), UInt8(msg.count >> 8), UInt8(msg.count & 0xff)] + msg)
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

    public func send(_ frame: Frame) throws(MeshError) {
        let plain = [frame.type.rawValue] + frame.payload
        let len = UInt32(plain.count + Self.aeadOverhead)
        var w = ByteWriter(capacity: 4)
        w.u32(len)
        let header = w.bytes
        sendLock.lock(); defer { sendLock.unlock() }
        var out = [UInt8](repeating: 0, count: 4 + Int(len))
        out[0..<4] = header[0..<4]
        var clen: UInt64 = 0
        let n = Self.nonce(txCounter)
        txCounter += 1
        out.withUnsafeMutableBufferPointer { buf in
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(buf.baseAddress! + 4, &clen, plain, UInt64(plain.count),
                                                            header, 4, nil, n, txKey)
        }
        guard !closed, FD.writeAll(fd, out) else { throw Self.lost(peer) }
    }

    public func receive() throws(MeshError) -> Frame? {
        receiveLock.lock(); defer { receiveLock.unlock() }
        guard let header = FD.readExactly(fd, 4, deadline: readDeadline) else { return nil }
        var r = ByteReader(header)
        let len = Int((try? r.u32()) ?? 0)
        guard len > Self.aeadOverhead, len <= Frame.maxFrame + Self.aeadOverhead + 1,
              let cipher = FD.readExactly(fd, len, deadline: readDeadline) else {
            throw MeshError(MeshError.tempFail, "the task channel with \(peer) broke")
        }
        var plain = [UInt8](repeating: 0, count: len - Self.aeadOverhead)
        var plen: UInt64 = 0
        let n = Self.nonce(rxCounter)
        rxCounter += 1
        let rc = crypto_aead_xchacha20poly1305_ietf_decrypt(&plain, &plen, nil, cipher, UInt64(len), header, 4, n, rxKey)
        guard rc == 0, plen >= 1, let type = FrameType(rawValue: plain[0]) else {
            throw MeshError(MeshError.tempFail, "a tampered or replayed frame from \(peer) ended the connection")
        }
        return Frame(type, Array(plain[1..<Int(plen)]))
    }

    /// Ends the connection; the descriptor is released with the last reference (see PlainFrames).
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { Glibc.close(fd) }

    /// Wakes a thread blocked reading (e.g. when membership declares the peer dead).
    public func interrupt() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
}
