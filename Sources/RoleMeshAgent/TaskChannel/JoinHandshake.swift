import CSodium
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshCore

/// The join variant of the task-channel handshake: a new device, not trusted yet, proves it holds
/// an invite's secret without sending it (`protocol.md`, "Task channel", join):
///
///   C → S  "RMJ1" | name_c | eph_c | pk_c            (pk_c: the new device's Ed25519 key)
///   S → C  "RMJ1" | name_s | eph_s | sig_s("rolemesh/1 join-server\0" | transcript)
///            or "RMTX" | code | message              (no pending invite for name_c)
///   C → S  mac | sig_c("rolemesh/1 join-client\0" | transcript)
///            mac = BLAKE2b-256 keyed with the secret over "rolemesh/1 join-client\0" | transcript
///   S → C  "RMOK", then encrypted frames as on the task channel (the `welcome`), or "RMTX" | code | message
///
///   transcript = name_c | eph_c | pk_c | name_s | eph_s
///
/// The client checks sig_s against the inviter's key from the code, so only the inviter can answer;
/// the server checks the MAC (only a holder of the secret can make it, for this transcript only,
/// so a recorded one is useless) and sig_c (the device holds the key it will be trusted with).
extension SecureChannel {
    static let joinHello = Array("RMJ1".utf8)
    static let joinOK = Array("RMOK".utf8)
    static let joinServerTag = Array("rolemesh/1 join-server\0".utf8)
    static let joinClientTag = Array("rolemesh/1 join-client\0".utf8)

    static func joinTranscript(client: String, clientEph: [UInt8], clientKey: [UInt8], server: String, serverEph: [UInt8]) -> [UInt8] {
        var w = ByteWriter()
        w.shortString(client); w.raw(clientEph); w.raw(clientKey); w.shortString(server); w.raw(serverEph)
        return w.bytes
    }

    /// BLAKE2b-256 keyed with the invite's secret.
    static func joinMAC(secret: [UInt8], _ message: [UInt8]) -> [UInt8] {
        BLAKE2b.hash(message, size: 32, key: secret)
    }

    /// The new device's side: tries the code's addresses in order. 77 for a refusal or an
    /// impostor, 69 when no address answers.
    public static func join(_ code: InviteCode, keyPair: Ed25519.KeyPair) async throws(MeshError) -> SecureChannel {
        var failures: [String] = []
        for text in code.addresses {
            guard let address = SocketAddress.resolve(text) else { failures.append("\(text): cannot resolve it"); continue }
            let io: AsyncFD
            do throws(MeshError) { io = try await openTCP(to: address, peer: code.inviter, from: nil) } catch {
                failures.append(error.message); continue
            }
            do throws(MeshError) {
                let channel = try await joinHandshake(io: io, code: code, keyPair: keyPair)
                io.setDeadline(nil)
                return channel
            } catch {
                io.abort()
                if error.code == MeshError.noPermission { throw error }
                failures.append(error.message)
            }
        }
        throw MeshError(MeshError.unavailable,
                        "cannot reach the inviter \(code.inviter) (\(failures.joined(separator: "; "))): start its agent, or run join where it can be reached")
    }

    static func refusedCode(_ code: InviteCode) -> MeshError {
        MeshError(MeshError.noPermission,
                  "\(code.inviter) refused this code (wrong, already used or expired): ask for a new one with `rolemesh invite \(code.name)` on a trusted device")
    }

    static func joinHandshake(io: AsyncFD, code: InviteCode, keyPair: Ed25519.KeyPair) async throws(MeshError) -> SecureChannel {
        let (ephPK, ephSK) = kxKeyPair()
        var w = ByteWriter()
        w.raw(joinHello); w.shortString(code.name); w.raw(ephPK); w.raw(keyPair.publicKey)
        guard await io.write(w.bytes), let tag = await io.readExactly(4) else { throw lost(code.inviter) }
        if tag == refusal { throw refusedCode(code) }
        guard tag == joinHello, let n = await io.readExactly(1), let nameBytes = await io.readExactly(Int(n[0])),
              let serverEph = await io.readExactly(32), let sig = await io.readExactly(64) else { throw lost(code.inviter) }
        let transcript = joinTranscript(client: code.name, clientEph: ephPK, clientKey: keyPair.publicKey,
                                        server: code.inviter, serverEph: serverEph)
        guard String(decoding: nameBytes, as: UTF8.self) == code.inviter,
              Ed25519.verify(signature: sig, message: joinServerTag + transcript, publicKey: code.inviterKey) else {
            throw MeshError(MeshError.noPermission,
                            "the node answering at \(code.addresses.joined(separator: ", ")) could not prove it is \(code.inviter); not joining it")
        }
        let proof = joinMAC(secret: code.secret, joinClientTag + transcript) + keyPair.sign(joinClientTag + transcript)
        guard await io.write(proof), let answer = await io.readExactly(4) else { throw lost(code.inviter) }
        guard answer == joinOK else { throw refusedCode(code) }
        var rx = [UInt8](repeating: 0, count: 32), tx = [UInt8](repeating: 0, count: 32)
        guard crypto_kx_client_session_keys(&rx, &tx, ephPK, ephSK, serverEph) == 0 else { throw lost(code.inviter) }
        return SecureChannel(io: io, peer: code.inviter, tx: tx, rx: rx)
    }

    /// The inviter's side, after the "RMJ1" tag was read.
    static func acceptJoin(io: AsyncFD, me: String, keyPair: Ed25519.KeyPair, invites: InviteDoor) async throws(MeshError) -> SecureChannel {
        guard let n = await io.readExactly(1), let nameBytes = await io.readExactly(Int(n[0])),
              let clientEph = await io.readExactly(32), let clientKey = await io.readExactly(32) else {
            throw MeshError(MeshError.other, "a malformed join hello")
        }
        let client = String(decoding: nameBytes, as: UTF8.self)
        guard NodeName.isValid(client), let secret = await invites.secret(client) else {
            await refuse(io, code: MeshError.noPermission, "\(me) holds no valid invite for this device")
            throw MeshError(MeshError.noPermission, "refused a join as \(client): no pending invite for that name")
        }
        let (ephPK, ephSK) = kxKeyPair()
        let transcript = joinTranscript(client: client, clientEph: clientEph, clientKey: clientKey, server: me, serverEph: ephPK)
        var w = ByteWriter()
        w.raw(joinHello); w.shortString(me); w.raw(ephPK); w.raw(keyPair.sign(joinServerTag + transcript))
        guard await io.write(w.bytes), let mac = await io.readExactly(32), let sig = await io.readExactly(64) else {
            throw MeshError(MeshError.other, "a join as \(client) broke off")
        }
        let expected = joinMAC(secret: secret, joinClientTag + transcript)
        guard sodium_memcmp(mac, expected, 32) == 0,
              Ed25519.verify(signature: sig, message: joinClientTag + transcript, publicKey: clientKey) else {
            await refuse(io, code: MeshError.noPermission, "the code is wrong")
            throw MeshError(MeshError.noPermission, "refused a join as \(client): the proof of the invite's secret was wrong")
        }
        // Single use: the first proof that arrives takes the invite, a racing second one is refused.
        guard await invites.claim(client, clientKey) else {
            await refuse(io, code: MeshError.noPermission, "the code was already used")
            throw MeshError(MeshError.noPermission, "refused a join as \(client): its invite was used meanwhile")
        }
        var rx = [UInt8](repeating: 0, count: 32), tx = [UInt8](repeating: 0, count: 32)
        guard await io.write(joinOK), crypto_kx_server_session_keys(&rx, &tx, ephPK, ephSK, clientEph) == 0 else {
            throw MeshError(MeshError.other, "a join as \(client) broke off")
        }
        io.setDeadline(nil)
        return SecureChannel(io: io, peer: client, tx: tx, rx: rx, joinKey: clientKey)
    }
}

/// How the task listener answers a join: the secret of NAME's pending invite (nil if none, or
/// expired), and `claim`, which uses it up for the key that proved it (false if already used).
public struct InviteDoor: Sendable {
    public let secret: @Sendable (String) async -> [UInt8]?
    public let claim: @Sendable (String, [UInt8]) async -> Bool
    public init(secret: @escaping @Sendable (String) async -> [UInt8]?, claim: @escaping @Sendable (String, [UInt8]) async -> Bool) {
        self.secret = secret; self.claim = claim
    }
}
