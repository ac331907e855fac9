/// A converged start, for the simulator at large N: a mesh of 10,000 nodes that joined one by one
/// would spend hours of wall time exchanging full state (each node learns N members, N times over
/// for the mesh) before the run could measure anything. Instead each node is put where a long, quiet
/// run leaves it: every peer alive, heard from directly just now at its current signed heartbeat and
/// address. Nothing is sent, no event is reported, and no news is queued: what follows is the
/// protocol's steady state, driven by the same rules as ever.
extension Membership {
    public func assumeConverged(with peers: [Membership], now: Millis) {
        members.reserveCapacity(members.count + peers.count)
        for peer in peers where peer.name != name && !peer.hasLeft {
            var m = Member(entry: peer.myEntry, state: .alive, lastHeard: now, stateSince: now)
            m.observed = peer.me.address
            members[peer.name] = m
        }
        markStatesChanged()
        lastTick = now
    }
}
