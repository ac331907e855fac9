/// Checks (protocol.md 7.1): before this node acts on silence or on another node's word, it asks the
/// member itself and, through members it hears, asks others to ask it. One mechanism serves three
/// needs of a mesh split by a network fault:
/// - **a watcher's suspicion** lacks the second watcher's word when that watcher is on the other side
///   of a split: if nobody this node hears can reach the member either, it is dead for this side;
/// - **another node's dead claim** counts only once this node cannot reach the member either (or it
///   comes with the words of the member's watchers), so no key alone kills a member others hear;
/// - **a member others hear but this node does not** (connectivity that is not transitive) is alive,
///   reached "via" the member that answered; it is not watched from here, so it is not suspected
///   again and again, and is checked once per `refreshEvery` in case the path comes back. A member
///   this node does not watch is found out when it leaves a periodic sync unanswered.
///
/// A check round sends the member a direct question (a sync request led by our fresh heartbeat,
/// which it answers with a fresh heartbeat) and a signed `ProbeRequest` to two helpers; a helper
/// asks the member directly and passes its fresh heartbeat on. A fresh heartbeat from the member
/// directly, or from a helper asked, ends the check; silence until the check's window ends fails it.
extension Membership {
    enum CheckPurpose: Sendable {
        case suspicion, verification, recheck, reachability
        var rank: Int {
            switch self {
            case .suspicion: return 3
            case .verification: return 2
            case .recheck, .reachability: return 1
            }
        }
    }

    struct Check: Sendable {
        var purpose: CheckPurpose
        var until: Millis
        var nextRound: Millis
        /// Helpers asked so far: only their answers count.
        var asked: [String] = []
        /// The signed request, made once per check (helpers tell rounds apart by time).
        var request: SignedEntry?
        /// A helper that passed on a fresh heartbeat of the member: it is up. Unless the member
        /// answers us directly before the check ends, it is then reached only through others.
        var helperAnswer: String?
    }

    /// Helpers asked per round.
    static let helpersPerRound = 2

    /// Rounds of a check: often enough that loss rarely fails one, never more than once a tick.
    var checkRoundEvery: Millis { max(profile.tick, suspectAfter / 4) }

    /// How long a check waits for an answer. A watcher's own suspicion without a second word waits
    /// longest: it alone decides a death that no other watcher confirms, so it must not be a few lost
    /// datagrams (at 30 % loss a round fails half the time: eight rounds of three paths each).
    func checkWindow(_ purpose: CheckPurpose) -> Millis {
        switch purpose {
        case .suspicion: return 2 * suspectAfter
        case .verification: return suspectAfter / 2
        case .recheck, .reachability: return suspectAfter
        }
    }

    /// How often a member reached only through others is checked again.
    var recheckEvery: Millis { profile.refreshEvery }

    func startCheck(_ key: String, _ purpose: CheckPurpose, now: Millis) {
        guard var m = members[key], m.isReachable else { return }
        if let running = m.check {
            // A check under way takes the higher purpose (a suspicion's failure decides a death, a
            // verification's applies a claim), and the longer of the two windows. One that already
            // heard from a helper has its answer: the member is up.
            guard running.helperAnswer == nil, purpose.rank > running.purpose.rank else { return }
            m.check!.purpose = purpose
            m.check!.until = max(running.until, now + checkWindow(purpose))
            members[key] = m
            return
        }
        m.check = Check(purpose: purpose, until: now + checkWindow(purpose), nextRound: now)
        members[key] = m
        checking.insert(key)
        checkRound(key, now: now)
    }

    /// Rounds that are due, and checks whose window ended (from `tick`).
    func runChecks(now: Millis) {
        for key in checking.sorted() {
            guard let m = members[key], m.isReachable, let c = m.check else {
                checking.remove(key)
                if members[key]?.check != nil { members[key]!.check = nil }
                continue
            }
            if now >= c.until {
                checkFailed(key, now: now)
            } else if now >= c.nextRound {
                checkRound(key, now: now)
            }
        }
        for key in indirect.sorted() {
            guard let m = members[key], m.isReachable, m.indirectVia != nil else { clearIndirect(key); continue }
            if m.check == nil, let at = m.recheckAt, now >= at { startCheck(key, .recheck, now: now) }
        }
    }

    /// One round: the member directly, and two helpers we hear.
    func checkRound(_ key: String, now: Millis) {
        guard var m = members[key], var c = m.check else { return }
        c.nextRound = now + checkRoundEvery
        if c.request == nil {
            c.request = sign(.probe(ProbeRequest(asker: name, target: key, incarnation: m.heartbeat.incarnation)))
        }
        // The member itself: a sync request (any version answers it, within its rate limit) with our
        // request about it beside it, which this version answers at once with a fresh heartbeat.
        send(Datagram(kind: .syncRequest, entries: [syncRequestLead(), c.request!]), to: m.address)
        let helpers = pickHelpers(for: key, avoiding: Set(c.asked.suffix(Self.helpersPerRound)), now: now)
        if !helpers.isEmpty {
            let lead = freshLead()
            for h in helpers {
                sendDatagram([lead, c.request!], to: h)
                if !c.asked.contains(h) { c.asked.append(h) }
            }
        }
        m.check = c
        members[key] = m
    }

    /// Up to two members to ask about `target`: first those we heard directly just now (they are on
    /// our side of any split), then the target's watchers, then any alive member; never the target,
    /// one we reach only through others, or (if others remain) the ones asked last round.
    func pickHelpers(for target: String, avoiding recent: Set<String>, now: Millis) -> [String] {
        func usable(_ n: String) -> Bool {
            guard n != target, n != name, let m = members[n], m.state == .alive, m.indirectVia == nil else { return false }
            return true
        }
        var tiers: [[String]] = [[], [], []]
        for n in subjects.union(extraWatchers.keys).sorted() where usable(n) && now - members[n]!.lastHeard < suspectAfter / 2 {
            tiers[0].append(n)
        }
        for n in watchers(of: target) where usable(n) && !tiers[0].contains(n) { tiers[1].append(n) }
        // A few random alive members, drawn without walking the whole list (as `push` does).
        let names = memberNames
        var draws = 0
        while tiers[2].count < Self.helpersPerRound + 2, draws < 8 * Self.helpersPerRound, !names.isEmpty {
            draws += 1
            let n = names[Int.random(in: 0..<names.count, using: &rng)]
            if usable(n), !tiers[0].contains(n), !tiers[1].contains(n), !tiers[2].contains(n) { tiers[2].append(n) }
        }
        var picked: [String] = []
        for pass in 0..<2 {
            for var tier in tiers {
                tier.shuffle(using: &rng)
                for n in tier where picked.count < Self.helpersPerRound && !picked.contains(n) {
                    if pass == 0, recent.contains(n) { continue }
                    picked.append(n)
                }
            }
        }
        return picked
    }

    /// A helper passed on a fresh heartbeat of the member: it is up (a dead claim we were checking
    /// no longer counts). Whether we reach it only through others is decided when the check ends:
    /// one lost answer must not make a member we hear "indirect".
    func helperAnswered(_ key: String, via: String, now: Millis) {
        guard var m = members[key], var c = m.check, c.helperAnswer == nil else { return }
        c.helperAnswer = via
        if c.purpose == .verification { m.deadWord = nil; deadWordHeld.remove(key) }
        // Nothing left to decide but the path: the rest of the window, at least two more rounds from
        // the first answer (not from each: helpers answer every round, and a window pushed out by
        // each answer never ends, so a member only others reach would never become 'via').
        c.purpose = .reachability
        c.until = max(c.until, now + 2 * checkRoundEvery)
        m.check = c
        members[key] = m
    }

    /// The member spoke to us directly (`via` nil), or the check ended with a helper's answer.
    func checkSucceeded(_ key: String, via: String?, now: Millis) {
        guard var m = members[key], let c = m.check else { return }
        m.check = nil
        checking.remove(key)
        if c.purpose == .verification { m.deadWord = nil; deadWordHeld.remove(key) }
        members[key] = m
        if let via {
            setIndirect(key, via: via, now: now)
        } else {
            clearIndirect(key)
        }
    }

    func checkFailed(_ key: String, now: Millis) {
        guard var m = members[key], let c = m.check else { return }
        if let via = c.helperAnswer { return checkSucceeded(key, via: via, now: now) }
        m.check = nil
        checking.remove(key)
        members[key] = m
        switch c.purpose {
        case .suspicion:
            // Silent to us for `suspectAfter`, and to every helper we asked since: dead to this side.
            if m.suspectSince != nil { declareDead(key, now: now) }
        case .verification:
            if let word = m.deadWord {
                markDead(&m, claim: word, incarnation: m.heartbeat.incarnation, now: now)
                members[key] = m
                relayDeath(of: key, now: now)
            }
        case .recheck:
            // The path through others is gone too: watch it directly again, from now.
            clearIndirect(key)
            members[key]!.watchedSince = now
        case .reachability:
            break   // nobody we asked reaches it either: its watchers will say what it is
        }
    }

    /// The periodic sync goes to the members in turn (in name order), skipping those reached only
    /// through others: over N syncs every member is asked directly once.
    func nextSyncPeer() -> String? {
        let names = memberNames
        guard !names.isEmpty else { return nil }
        var i = Self.firstIndex(after: syncPeerCursor, in: names)
        for _ in 0..<names.count {
            let n = names[i]
            i = (i + 1) % names.count
            guard let m = members[n], m.isReachable, m.indirectVia == nil else { continue }
            syncPeerCursor = n
            return n
        }
        return nil
    }

    /// A sync left unanswered for `suspectAfter` by a member we do not watch: is it reached only
    /// through others? (A member we watch is judged by its beats.)
    func checkUnansweredSync(now: Millis) {
        guard let (peer, since) = syncAwait, now - since >= suspectAfter else { return }
        syncAwait = nil
        guard let m = members[peer], m.isReachable, m.check == nil, m.indirectVia == nil, !subjects.contains(peer) else { return }
        startCheck(peer, .reachability, now: now)
    }

    func setIndirect(_ key: String, via: String, now: Millis) {
        guard members[key] != nil else { return }
        if members[key]!.indirectVia != via { markViewChanged() }
        members[key]!.indirectVia = via
        members[key]!.recheckAt = now + recheckEvery
        indirect.insert(key)
    }

    func clearIndirect(_ key: String) {
        indirect.remove(key)
        guard members[key]?.indirectVia != nil || members[key]?.recheckAt != nil else { return }
        members[key]!.indirectVia = nil
        members[key]!.recheckAt = nil
        markViewChanged()
    }

    // MARK: - Helping

    /// A node asks us to check `p.target` (entry ≥ 1 of a datagram whose fresh lead is `sender`'s).
    /// Returns false when the datagram must not be read further (a bad signature).
    func acceptProbe(_ entry: SignedEntry, _ p: ProbeRequest, sender: String, source: WireAddress, now: Millis) -> Bool {
        // Only the asker's own request, straight from it.
        guard p.asker == sender, p.asker != name, p.target != p.asker else { return true }
        if p.target == name {
            // Asked about ourselves: "are you there?". A fresh heartbeat, at most once a tick per asker.
            guard now - (lastSelfProbe[p.asker] ?? .min / 2) >= profile.tick, p.incarnation <= me.incarnation else { return true }
            switch verify(entry, origin: p.asker, source: source, now: now) {
            case .valid: break
            case .unknownKey: dropped.unknownKey += 1; return true
            case .rateLimited: dropped.rateLimited += 1; return true
            case .invalid: dropped.badSignature += 1; return false
            }
            if lastSelfProbe.count > 1024 { lastSelfProbe = [:] }
            lastSelfProbe[p.asker] = now
            send(Datagram(kind: .gossip, entries: [freshLead()]), to: source)
            return true
        }
        // About another member we know up.
        guard let m = members[p.target], m.isReachable else { return true }
        guard let m = members[p.target], m.isReachable else { return true }
        // Asked again within a heartbeat of the last time: nothing new to do.
        if m.answerTo.contains(where: { $0.asker == p.asker }), m.answerUntil - helperWait > now - profile.heartbeat { return true }
        switch verify(entry, origin: p.asker, source: source, now: now) {
        case .valid: break
        case .unknownKey: dropped.unknownKey += 1; return true
        case .rateLimited: dropped.rateLimited += 1; return true
        case .invalid: dropped.badSignature += 1; return false
        }
        help(p.asker, about: p.target, incarnation: p.incarnation, request: entry, now: now)
        return true
    }

    /// How long a helper passes on what the member answers.
    var helperWait: Millis { suspectAfter / 2 }

    /// Ask `target` for a fresh heartbeat and pass it to `asker` when it comes (`answerHelped`), with
    /// `request` (the asker's own signed request or suspicion) beside it to mark it as the answer.
    func help(_ asker: String, about target: String, incarnation: UInt64, request: SignedEntry, now: Millis) {
        guard var m = members[target] else { return }
        if m.heartbeat.incarnation > incarnation, now - m.lastHeard < helperWait {
            // It refuted since, and we heard it just now: what we hold proves it is up. (Only then:
            // a refutation signed before a split proves nothing about now. Answered with it, the
            // asker held the member 'via' us while we declared it dead: chaos seed 32969.)
            sendDatagram([freshLead(), m.entry, request], to: asker)
            return
        }
        if m.answerUntil < now { m.answerTo = [] }
        if !m.answerTo.contains(where: { $0.asker == asker }) { m.answerTo.append((asker, request)) }
        m.answerUntil = now + helperWait
        answering.insert(target)
        if now - (m.probeSentAt ?? .min / 2) >= profile.heartbeat / 2 {
            m.probeSentAt = now
            send(Datagram(kind: .syncRequest, entries: [syncRequestLead()]), to: m.address)
        }
        members[target] = m
    }

    /// `key`'s fresh heartbeat just came to us directly: pass it to whoever asked us to check it.
    func answerHelped(_ key: String, now: Millis) {
        guard answering.contains(key), var m = members[key] else { return }
        answering.remove(key)
        let askers = m.answerUntil >= now ? m.answerTo : []
        m.answerTo = []
        m.probeSentAt = nil
        members[key] = m
        guard !askers.isEmpty else { return }
        let lead = freshLead()
        for a in askers { sendDatagram([lead, m.entry, a.request], to: a.asker) }
    }

    // MARK: - Deaths

    /// Words against `target` from its watchers (in our rings): enough of them is the fast path to
    /// a death, as when a crashed member's two watchers both time out.
    func watcherWords(against target: String) -> Int {
        guard let m = members[target], !m.words.isEmpty else { return 0 }
        let w = watchers(of: target)
        return m.words.keys.filter { w.contains($0) }.count
    }

    /// This node declares `key` dead on its own watch: a signed claim, and every member told at once
    /// with the words it holds (a death is rare and moves roles: N − 2 datagrams, on this event only),
    /// and once more a suspicion period later (`echoDeaths`).
    func declareDead(_ key: String, now: Millis) {
        guard var m = members[key], m.isReachable else { return }
        let claim = sign(.accusation(Accusation(accuser: name, kind: .dead, target: key, incarnation: m.heartbeat.incarnation)))
        let words = m.words.keys.sorted().map { m.words[$0]! }
        markDead(&m, claim: claim, incarnation: m.heartbeat.incarnation, now: now)
        members[key] = m
        broadcasts.add(key: "a:\(name):2:\(key)", entry: claim, origin: name, limit: ownLimit, urgent: true)
        relayWords(words, about: key)
        announceDeath(of: key)
        deathEchoes[key] = now + suspectAfter
    }

    /// Our death claim about `key`, with the words held, to every reachable member.
    func announceDeath(of key: String) {
        guard let m = members[key], let claim = m.deathClaim else { return }
        let words = m.words.keys.sorted().compactMap { $0 == name ? nil : m.words[$0] }
        let datagrams = pack([claim] + words, kind: .gossip, lead: freshLead())
        for other in memberNames where other != key && members[other]!.isReachable {
            for d in datagrams { send(d, to: members[other]!.address) }
        }
    }

    /// A death taken from others' claims goes on, with the words that made it.
    func relayDeath(of key: String, now: Millis) {
        guard let m = members[key], let claim = m.deathClaim, case .accusation(let a) = claim.statement else { return }
        broadcasts.add(key: "a:\(a.accuser):2:\(key)", entry: claim, origin: a.accuser, limit: relayLimit, urgent: true)
        relayWords(m.words.keys.sorted().compactMap { $0 == a.accuser ? nil : m.words[$0] }, about: key)
        deathEchoes[key] = now + suspectAfter
    }

    /// A death is passed on once more, `suspectAfter` later: news goes to each recipient once, and
    /// the one datagram that carried it may have been lost, with nobody else to relay it (two nodes
    /// left on one side of a split). The declarer tells every member again; others queue it afresh.
    func echoDeaths(now: Millis) {
        for (key, at) in deathEchoes.sorted(by: { $0.key < $1.key }) where now >= at {
            deathEchoes[key] = nil
            guard let m = members[key], m.state == .dead, let claim = m.deathClaim, case .accusation(let a) = claim.statement else { continue }
            if a.accuser == name { announceDeath(of: key); continue }
            broadcasts.add(key: "a:\(a.accuser):2:\(key)", entry: claim, origin: a.accuser, limit: relayLimit, urgent: true)
            relayWords(m.words.keys.sorted().compactMap { $0 == a.accuser ? nil : m.words[$0] }, about: key)
        }
    }

    func relayWords(_ words: [SignedEntry], about key: String) {
        for w in words {
            guard case .accusation(let a) = w.statement else { continue }
            broadcasts.add(key: "a:\(a.accuser):\(a.kind.rawValue):\(key)", entry: w, origin: a.accuser, limit: relayLimit, urgent: true)
        }
    }
}
