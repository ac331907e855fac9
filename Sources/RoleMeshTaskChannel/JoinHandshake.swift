import RoleMeshPlatform
import RoleMeshCore
import RoleMeshTransport

/// The join variant of the task-channel handshake: a new device, not trusted yet, proves it holds
/// an invite's secret without sending it (`protocol.md`, "Task channel", join). It is the same
/// handshake (`ChannelHandshake`) with a join identity inside c1 — NAME, the device's new key and
/// the invite's id — and the invite's secret mixed into the keys as a pre-shared key:
///
/// - the hello is encrypted to the inviter's key from the code, so only the inviter can read it
///   and answer, and an observer learns no name;
/// - the answer opens only for a holder of the secret of an invite the inviter holds for NAME;
/// - the device's proof (its new key, bound to the inviter's fresh ephemeral key) completes it, and
///   the first such proof uses the invite up.
extension SecureChannel {
    /// The new device's side: tries the code's addresses in order. 77 for a refusal or an
    /// answer that does not open, 69 when no address answers.
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

    public static func refusedCode(_ code: InviteCode) -> MeshError {
        MeshError(MeshError.noPermission,
                  "\(code.inviter) did not accept this code: it was used, it expired, or the invite was revoked there (or another device answers at \(code.addresses.joined(separator: ", "))): ask for a new one with `rolemesh invite \(code.name)` on a trusted device")
    }

    public static func joinHandshake(io: AsyncFD, code: InviteCode, keyPair: Ed25519.KeyPair) async throws(MeshError) -> SecureChannel {
        let identity = ChannelHandshake.Identity.join(code.name, key: keyPair.publicKey, invite: code.id)
        let channel: SecureChannel
        do throws(HandshakeFailure) {
            channel = try await handshake(io: io, expected: code.inviter, serverKey: code.inviterKey, as: identity,
                                          keyPair: keyPair, psk: code.secret, within: handshakeSeconds)
        } catch {
            switch error {
            case .lost: throw lost(code.inviter)
            case .otherVersion: throw error.meshError(code.inviter, me: code.name)
            case .refused, .notAccepted, .untrusted: throw refusedCode(code)
            }
        }
        guard let ready = try? await channel.receive(), ready.type == .info else { throw refusedCode(code) }
        return channel
    }
}

/// How the task listener answers a join: the secret of NAME's pending invite with that id (nil if
/// none, or expired), and `claim`, which uses NAME's invites up for the key that proved one (false
/// if already used).
public struct InviteDoor: Sendable {
    public let secret: @Sendable (String, [UInt8]) async -> [UInt8]?
    public let claim: @Sendable (String, [UInt8], [UInt8]) async -> Bool
    public init(secret: @escaping @Sendable (String, [UInt8]) async -> [UInt8]?,
                claim: @escaping @Sendable (String, [UInt8], [UInt8]) async -> Bool) {
        self.secret = secret; self.claim = claim
    }
}
