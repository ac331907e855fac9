import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// A task channel carried through another member (`protocol.md`, "Relayed channels"): this node
/// opens its ordinary channel to RELAY and asks `{"op": "relay", "to": TARGET}`; RELAY opens its own
/// authenticated channel to TARGET at an address TARGET proved its key at, asks it to take a
/// carried channel, answers `info`, and from then on copies bytes both ways. On those bytes this
/// node runs the ordinary handshake with TARGET, end to end: RELAY sees only sizes and timing.
extension SecureChannel {
    public static func connect(via relay: String, at relayAddress: WireAddress, to target: String, me: String,
                               keyPair: Ed25519.KeyPair, trusted: [String: [UInt8]], from local: WireAddress?) async throws(MeshError) -> SecureChannel {
        let outer = try await connect(to: relayAddress, expected: relay, me: me, keyPair: keyPair, trusted: trusted, from: local)
        let io = outer.io
        do throws(MeshError) {
            io.setDeadline(handshakeSeconds)
            try await outer.send(Frame(.request, encoding: TaskRequest.relay(to: target)))
            guard let answer = try await outer.receive(), answer.type == .info else {
                throw MeshError(MeshError.tempFail, "\(relay) cannot carry a task channel to \(target)")
            }
        } catch {
            io.abort()
            throw error
        }
        // Nothing else is buffered: TARGET speaks only after our hello.
        return try await establish(io: io, expected: target, me: me, keyPair: keyPair, trusted: trusted)
    }

    /// The host answered a direct connection with a refusal (it is up, no agent listens there): a
    /// relay would meet the same. Read from `openTCP`'s sentence, which ends with the system's.
    public static func refusedByHost(_ e: MeshError) -> Bool {
        e.message.hasSuffix(": " + String(cString: strerror(ECONNREFUSED)))
    }

    /// The relay's side: copies bytes both ways between the requester's connection and TARGET's
    /// until either ends, then ends both.
    public static func splice(_ a: AsyncFD, _ b: AsyncFD) async {
        await withTaskGroup(of: Void.self) { group in
            for (from, to) in [(a, b), (b, a)] {
                group.addTask {
                    while let bytes = await from.read(), await to.write(bytes) {}
                    to.close(); from.close()      // what is buffered still goes
                }
            }
        }
    }
}
