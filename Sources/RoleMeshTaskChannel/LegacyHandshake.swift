import RoleMeshPlatform
import RoleMeshCore

/// The task channel's first handshake ("RMT1", release 0.1.0), kept for one release so that a
/// device upgraded first still runs tasks with the ones not upgraded yet (protocol.md, "Task
/// channel", version rule). RMT1 names both ends in clear, so it is spoken only with a member the
/// gossip says runs that release (its heartbeat carries no digest, field 24) and only at the
/// address the gossip authenticated for it: a stranger who sends "RMT1" gets the 7-byte refusal
/// every other failure gets, and learns no name. The frames after it are the same.
///
///   C → S  "RMT1" | name_c | eph_c
///   S → C  "RMT1" | name_s | eph_s | sig_s(transcript)      or "RMTX" | code | length | message
///   C → S  sig_c(transcript)
///   S → C  the first encrypted frame, `info` "ready"
/// Session keys come from `crypto_kx` over the ephemeral X25519 keys.
public enum LegacyHandshake {
    public static let magic = Array("RMT1".utf8)
    public static let serverTag = Array("rolemesh/1 task-server\0".utf8)
    public static let clientTag = Array("rolemesh/1 task-client\0".utf8)

    /// The client's side, to `expected` (a 0.1.0 member), through the server's "ready".
    public static func connect(io: AsyncFD, expected: String, me: String, keyPair: Ed25519.KeyPair,
                        trusted: [String: [UInt8]], within seconds: Double) async throws(SecureChannel.HandshakeFailure) -> SecureChannel {
        io.setDeadline(seconds)
        guard let serverKey = trusted[expected] else { throw .untrusted(expected) }
        let (ephPK, ephSK) = kxKeyPair()
        var w = ByteWriter()
        w.raw(magic); w.shortString(me); w.raw(ephPK)
        guard await io.write(w.bytes), let tag = await io.readExactly(4) else { throw .lost }
        if tag == ChannelHandshake.refusal { throw .refused }
        guard tag == magic, let n = await io.readExactly(1), let nameBytes = await io.readExactly(Int(n[0])),
              let serverEph = await io.readExactly(32), let sig = await io.readExactly(64) else { throw .lost }
        guard String(decoding: nameBytes, as: UTF8.self) == expected else { throw .notAccepted(expected) }
        let transcript = transcriptBytes(client: me, clientEph: ephPK, server: expected, serverEph: serverEph)
        guard Ed25519.verify(signature: sig, message: serverTag + transcript, publicKey: serverKey) else { throw .notAccepted(expected) }
        guard await io.write(keyPair.sign(clientTag + transcript)) else { throw .lost }
        guard let k = X25519.clientSessionKeys(pk: ephPK, sk: ephSK, server: serverEph) else { throw .notAccepted(expected) }
        return SecureChannel(io: io, peer: expected, keys: ChannelHandshake.SessionKeys(send: k.send, receive: k.receive))
    }

    /// The server's side, after the 4-byte magic was read. `legacyKey(name)`: the key of `name` if
    /// it is a trusted member of the previous release at this connection's source address, else nil
    /// (and the client gets the refusal every failure gets).
    public static func accept(io: AsyncFD, me: String, keyPair: Ed25519.KeyPair,
                       legacyKey: (String) async -> [UInt8]?) async throws(SecureChannel.Refusal) -> SecureChannel {
        guard let n = await io.readExactly(1), let nameBytes = await io.readExactly(Int(n[0])),
              let clientEph = await io.readExactly(32) else { throw .ended }
        let client = String(decoding: nameBytes, as: UTF8.self)
        guard NodeName.isValid(client), let clientKey = await legacyKey(client) else {
            await SecureChannel.refuse(io, ChannelHandshake.otherVersion)
            throw .otherVersion
        }
        let (ephPK, ephSK) = kxKeyPair()
        let transcript = transcriptBytes(client: client, clientEph: clientEph, server: me, serverEph: ephPK)
        var w = ByteWriter()
        w.raw(magic); w.shortString(me); w.raw(ephPK); w.raw(keyPair.sign(serverTag + transcript))
        guard await io.write(w.bytes), let sig = await io.readExactly(64) else { throw .ended }
        guard Ed25519.verify(signature: sig, message: clientTag + transcript, publicKey: clientKey) else { throw .notAccepted }
        guard let k = X25519.serverSessionKeys(pk: ephPK, sk: ephSK, client: clientEph) else { throw .notAccepted }
        return SecureChannel(io: io, peer: client, keys: ChannelHandshake.SessionKeys(send: k.send, receive: k.receive))
    }

    public static func kxKeyPair() -> ([UInt8], [UInt8]) { X25519.keyPair() }

    public static func transcriptBytes(client: String, clientEph: [UInt8], server: String, serverEph: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.shortString(client); w.raw(clientEph); w.shortString(server); w.raw(serverEph)
        return w.bytes
    }
}
