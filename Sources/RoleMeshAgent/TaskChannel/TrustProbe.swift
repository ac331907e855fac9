#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshCore

/// Asks a node's task port whether it trusts us, the way a task connection would: our signed
/// hello, then its answer. Only a completed, authenticated handshake (its "ready") proves
/// trust; an "RMTX" refusal is unauthenticated, so it says "not trusted there" at most.
/// Nothing is run: the connection closes before any request.
public enum TrustProbe {
    public enum Result: Sendable, Equatable {
        case trusted(String)            // answered as this trusted node and accepted our proof
        case refused                    // refused our hello: our key is not in its keys/
        case untrusted(String)          // answered as a node whose key is not in our keys/
        case unproven(String)           // answered as a node but could not prove its key
        case keyMismatch(String)        // proved itself, but refused our proof: its copy of our key is another
        case unreachable(String)        // nothing answered: why (the system's sentence)
    }

    public static func probe(_ address: WireAddress, me: String, keyPair: Ed25519.KeyPair,
                             trusted: [String: [UInt8]], from local: WireAddress?) async -> Result {
        let io: AsyncFD
        do { io = try await SecureChannel.openTCP(to: address, peer: "\(address)", from: local) } catch {
            // "cannot reach A at A: Connection refused": the system's part is what is new.
            let m = error.message
            return .unreachable(m.ranges(of: ": ").last.map { String(m[$0.upperBound...]) } ?? m)
        }
        defer { io.abort() }
        do {
            let channel = try await SecureChannel.handshake(io: io, expected: nil, me: me, keyPair: keyPair,
                                                            trusted: trusted, within: SecureChannel.handshakeSeconds)
            do { try await channel.awaitReady() } catch { return .keyMismatch(channel.peer) }
            return .trusted(channel.peer)
        } catch {
            switch error {
            case .lost: return .unreachable("the connection to \(address) ended during the handshake")
            case .refused: return .refused
            case .untrusted(let name): return .untrusted(name)
            case .unproven(let name): return .unproven(name)
            }
        }
    }
}
