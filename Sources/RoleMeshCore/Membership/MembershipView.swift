extension Membership {
    /// Every member including ourselves, as `status` lists them, sorted by name.
    public func snapshot(now: Millis) -> [MemberSnapshot] {
        let mine = MemberSnapshot(name: name, address: me.address, state: hasLeft ? .left : .alive,
                                  incarnation: me.incarnation, roles: me.roles, backup: me.backup,
                                  draining: me.draining, signals: me.signals, lastHeardMs: 0, isSelf: true, digest: me.digest,
                                  services: me.services)
        // In name order, built in that order from the sorted names (taken after every view change:
        // sorting the snapshots each time was most of a large simulation's work).
        var out: [MemberSnapshot] = []
        out.reserveCapacity(members.count + 1)
        var placed = false
        for key in memberNames {
            if !placed, name < key { out.append(mine); placed = true }
            let m = members[key]!
            out.append(MemberSnapshot(name: key, address: m.address, state: m.state,
                                      incarnation: m.heartbeat.incarnation, roles: m.heartbeat.roles,
                                      backup: m.heartbeat.backup, draining: m.heartbeat.draining,
                                      signals: m.heartbeat.signals, lastHeardMs: max(0, now - m.lastHeard),
                                      isSelf: false, secondHand: m.secondHand,
                                      via: m.isReachable ? m.indirectVia : nil, digest: m.heartbeat.digest,
                                      services: m.heartbeat.services))
        }
        if !placed { out.append(mine) }
        return out
    }

    /// Addresses worth remembering for the next start (not members that left).
    public var rememberedPeers: [String: WireAddress] {
        var out: [String: WireAddress] = [:]
        for m in members.values where m.state != .left { out[m.heartbeat.name] = m.address }
        return out
    }

    public func state(of node: String) -> MemberState? {
        node == name ? (hasLeft ? .left : .alive) : members[node]?.state
    }

    /// The member this node reaches `node` through (a check's helper answered and it did not), or
    /// nil: heard directly, or not alive.
    public func via(_ node: String) -> String? {
        guard let m = members[node], m.isReachable else { return nil }
        return m.indirectVia
    }

    public var memberCount: Int { members.count + 1 }

    /// The digests (`Heartbeat.digest`) of the members this node watches and hears directly: their
    /// signed heartbeats come to it every full round, so these are fresh (protocol.md, "Slot records").
    public func watchedDigests() -> [(name: String, digest: [UInt8])] {
        subjects.sorted().compactMap { n in
            guard isWatching(n), let m = members[n], m.state == .alive, let d = m.heartbeat.digest else { return nil }
            return (n, d)
        }
    }

    /// Whether this node watches `node` directly now: one of its subjects, and not reached only
    /// through others (protocol.md 7.1).
    public func isWatching(_ node: String) -> Bool {
        subjects.contains(node) && members[node]?.indirectVia == nil && members[node]?.check?.helperAnswer == nil
    }
}
