import RoleMeshPlatform
import RoleMeshCore

/// Asks a node's task port whether it trusts us, the way a task connection would: our hello,
/// encrypted to the key of the node we expect there, then its answer. Only a completed,
/// authenticated handshake (its "ready") proves trust both ways. The handshake names no one to a
/// client it does not accept (`ChannelHandshake`), so a node that does not accept us and a node
/// other than the one we expected look alike: `notAccepted`. Nothing is run: the connection
/// closes before any request.
public enum TrustProbe {
    public enum Result: Sendable, Equatable {
        case trusted(String)            // answered as this trusted node and accepted our proof
        case refused                    // opened its answer for us, then refused our proof
        case notAccepted                // no candidate's answer opened: it does not accept our key, or is another node
        case otherVersion               // speaks another version of the task channel
        case unreachable(String)        // nothing answered: why (the system's sentence)
    }

    /// Tries `candidates` (names trusted here) in order, one connection each, at most `maxTries`:
    /// a seed is known by its address only, so the node there may be any of them.
    public static let maxTries = 16

    public static func probe(_ address: WireAddress, candidates: [String], me: String, keyPair: Ed25519.KeyPair,
                             trusted: [String: [UInt8]], from local: WireAddress?) async -> Result {
        for name in candidates.prefix(maxTries) where trusted[name] != nil {
            let io: AsyncFD
            do { io = try await SecureChannel.openTCP(to: address, peer: "\(address)", from: local) } catch {
                // "cannot reach A at A: Connection refused": the system's part is what is new.
                let m = error.message
                return .unreachable(m.ranges(of: ": ").last.map { String(m[$0.upperBound...]) } ?? m)
            }
            defer { io.abort() }
            do {
                let channel = try await SecureChannel.handshake(io: io, expected: name, me: me, keyPair: keyPair,
                                                                trusted: trusted, within: SecureChannel.handshakeSeconds)
                do { try await channel.awaitReady() } catch { return .refused }
                return .trusted(channel.peer)
            } catch {
                switch error {
                case .lost: return .unreachable("the connection to \(address) ended during the handshake")
                case .refused: return .refused
                case .otherVersion: return .otherVersion
                case .untrusted, .notAccepted: continue
                }
            }
        }
        return .notAccepted
    }
}
