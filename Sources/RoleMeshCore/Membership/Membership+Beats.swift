/// Beat rounds (protocol.md 7.2 and 6.6): what a node sends its watchers every `heartbeat`, and
/// what a watcher makes of a beat.
///
/// A signed heartbeat costs 170-odd bytes and an Ed25519 signature at one end and a check at the
/// other; most rounds carry nothing new. So a round is **full** — seq + 1, re-signed, the heartbeat
/// with piggybacked news to every target — only when something calls for it, and otherwise every
/// target gets a `Beat` naming the version it already holds (50-odd bytes, no signature). The pair
/// key authenticates a beat; its (version, count) makes it fresh only once.
extension Membership {
    /// One round to our watchers (and to anyone who suspected us lately).
    func beatRound(now: Millis) {
        extraWatchers = extraWatchers.filter { $0.value > now && members[$0.key]?.isReachable == true }
        let targets = beatTargets
        let announce = signalsWorthAnnouncing(latestSignals, now: now)
        // Full when there is something to say (signals due, news queued), when our heartbeat changed
        // since the last round (a target may not hold it), when a target is new since the last full
        // round, and at least every `refreshEvery` (addresses follow signed datagrams only, 7.5).
        let full = announce || broadcasts.count > 0 || me.version != lastRoundVersion
            || now - lastFullRound >= profile.refreshEvery || targets.contains { !lastFullTargets.contains($0) }
        if full {
            me.seq += 1
            if announce {
                me.signals = latestSignals   // held back by the rate limit, or the floor: small drifts go out now and then
                signalsAnnouncedAt = now
                markViewChanged()
            }
            resign()
            lastFullRound = now
            lastFullTargets = Set(targets)
            beatCount = 0
            let budget = Wire.maxDatagramSize - Wire.headerSize - myEntry.encodedSize
            for t in targets { sendDatagram([myEntry] + broadcasts.take(budget: budget, recipient: t), to: t) }
        } else {
            beatCount += 1
            let b = Beat(name: name, incarnation: me.incarnation, seq: me.seq, count: beatCount)
            for t in targets {
                guard let m = members[t], !m.address.isUnspecified else { continue }
                outbox.append(.beat(b, to: m.address))
            }
        }
        lastRoundVersion = me.version
    }

    /// Who hears our beats: our watchers, and anyone who suspected us lately (it thinks it
    /// watches us: its rings differ from ours for now).
    var beatTargets: [String] {
        var targets = myWatchers
        for key in extraWatchers.keys.sorted() where !targets.contains(key) { targets.append(key) }
        return targets
    }

    /// A beat's bytes as they came out of their envelope, sealed by `sender`'s pair key.
    public func receive(beatBytes bytes: [UInt8], sender: String, now: Millis) -> [MembershipAction] {
        guard !hasLeft else { return [] }
        guard let b = try? Beat.decode(bytes) else {
            dropped.malformed += 1
            return []
        }
        return receive(b, sender: sender, now: now)
    }

    /// protocol.md 6.6. `sender` is the device whose pair key authenticated the beat (the simulation
    /// passes the true sender).
    public func receive(_ b: Beat, sender: String, now: Millis) -> [MembershipAction] {
        guard !hasLeft else { return takeActions() }
        // Our own beat reflected back to us (the pair key is shared), or one device naming another.
        guard b.name == sender, b.name != name else { dropped.replay += 1; return takeActions() }
        // Unknown, dead or left: only a signed heartbeat can say anything about it.
        guard var m = members[sender], m.isReachable else { return takeActions() }
        let held = m.heartbeat.version
        let mark = m.lastBeat.map { ($0.version, $0.count) } ?? (held, 0)
        guard b.version >= held, (b.version, b.count) > mark else { dropped.replay += 1; return takeActions() }
        m.lastBeat = b
        m.lastHeard = now
        if m.secondHand {
            m.secondHand = false
            secondHandSince[sender] = nil
            markViewChanged()
        }
        // It spoke again: our suspicion ends, and earlier accusations confirm nothing.
        m.suspectSince = nil
        suspecting.remove(sender)
        dropWords(against: &m)
        if m.state == .suspect {
            m.state = .alive
            m.stateSince = now
            outbox.append(.event(.state(.alive, sender)))
            markStatesChanged()
        }
        members[sender] = m
        // Heard directly: a check of it succeeds, and it is no longer reached only through others.
        if syncAwait?.name == sender { syncAwait = nil }
        checkSucceeded(sender, via: nil, now: now)
        clearIndirect(sender)
        m = members[sender]!
        // A beat ahead of the heartbeat we hold: that round's signed heartbeat was lost. Ask for it
        // (a sync request is answered with the sender's current heartbeat), at most every two beats.
        if b.version > held, now - (m.askedForHeartbeat ?? .min / 2) >= 2 * profile.heartbeat {
            m.askedForHeartbeat = now
            members[sender] = m
            sendSample(.syncRequest, to: m.address)
            return takeActions()
        }
        members[sender] = m
        return takeActions()
    }
}
