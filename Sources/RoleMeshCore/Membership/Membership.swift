/// The membership and failure-detection core: a deterministic state machine.
///
/// Inputs are datagrams, ticks and local commands, each with the current time; outputs are
/// `MembershipAction`s (datagrams to send, events, incarnations to persist, a note that the view
/// changed) that the shell carries out. No clocks, sockets or files here, so the simulation can
/// drive a thousand of these in virtual time. Nor routing: whoever needs routes computes them from
/// `snapshot(now:)` (`Routing.route`; `RouteWatcher` for `role-moved` events).
///
/// The rules, in short (README "How membership works" has the long form):
/// - every node signs a heartbeat each `heartbeat` interval and sends it to its K watchers only
///   (`WatchRings`), so its steady traffic does not grow with N; news (state changes, accusations,
///   new roles, meaningfully changed signals) rides on those beats and is pushed to a few random
///   members at once, relayed with its origin's signature;
/// - a watcher that hears nothing for `suspectAfter` suspects the member and tells it and its other
///   watchers, signed; a watcher that still hears it answers with its newest heartbeat;
/// - it declares the member dead after `suspicionTimeout` only once the member's other watchers
///   (up to `confirmations`) accused it too; a suspected node refutes by raising its incarnation;
/// - dead and left are final for an incarnation; a node's incarnation only rises (persisted by the
///   shell), so a restarted node always overrides its old death;
/// - a tick gap longer than `pauseThreshold` means this process was suspended: it accuses nobody,
///   raises its incarnation and resynchronises.
public final class Membership {
    public struct Config: Sendable {
        public var name: String
        public var address: WireAddress
        public var incarnation: UInt64
        public var roles: [String]
        public var backup: [String: Int]
        public var draining: Bool
        public var signals: Signals
        public var profile: TimingProfile
        /// Seeds and members remembered from the last run: contacted while this node is alone.
        public var bootstrap: [WireAddress]

        public init(name: String, address: WireAddress, incarnation: UInt64 = 1, roles: [String] = [],
                    backup: [String: Int] = [:], draining: Bool = false, signals: Signals = Signals(),
                    profile: TimingProfile = .lan, bootstrap: [WireAddress] = []) {
            self.name = name; self.address = address; self.incarnation = incarnation; self.roles = roles
            self.backup = backup; self.draining = draining; self.signals = signals
            self.profile = profile; self.bootstrap = bootstrap
        }
    }

    public let name: String
    public let profile: TimingProfile
    let crypto: StatementCrypto
    var rng: SplitMix64
    public internal(set) var me: Heartbeat
    var myEntry: SignedEntry
    /// Every change that adds or removes a key marks `memberNames` stale (a plain `didSet` keeps
    /// in-place mutation of members).
    var members: [String: Member] = [:] { didSet { if members.count != cachedNames.count { namesValid = false } } }
    private var cachedNames: [String] = []
    private var namesValid = true
    /// Statements waiting to ride on our datagrams (protocol.md 7.3).
    var broadcasts = BroadcastQueue()
    var seenAccusations: Set<Accusation> = []
    public internal(set) var dropped = DropCounters()
    var bootstrap: [WireAddress]
    var lastTick: Millis?
    var nextBeat: Millis
    var nextSync: Millis
    var nextDeadRetry: Millis
    var nextJoin: Millis
    var joinBackoff: Millis = 0
    /// Rate limits on anything sent in reply, keyed by source IP (never the port) and sender name.
    var lastNotice: [[UInt8]: Millis] = [:]
    var lastSyncReply: [String: Millis] = [:]
    var lastSyncReplyIP: [[UInt8]: Millis] = [:]
    /// When each node last sent us a sync request we answered (see `process`).
    var lastAskedBy: [String: Millis] = [:]
    /// Signature checks each source IP may still cost us.
    var verifyBudget = VerifyBudget()
    /// This input's sync-request lead and the version our heartbeat had right after it was made.
    var roundRequest: (entry: SignedEntry, after: Version)?
    var outbox: [MembershipAction] = []
    /// Whether this input already re-signed our heartbeat (`freshLead`).
    var signedThisInput = false
    public private(set) var hasLeft = false
    /// Set when anything routing reads changed (states, roles, backups, draining, signals, the
    /// second-hand mark); reported as one `.viewChanged` at the end of the input's actions.
    var viewChanged = true
    /// Who watches whom, recomputed when a member's state changes (`refreshWatching`).
    var rings = WatchRings(names: [], k: 1, keys: { _ in [0] })
    /// The names `rings` was built from: the alive members and this node, in name order (the same
    /// list on every node that agrees on who is alive, so the simulator's nodes share one copy).
    var ringNames: [String] = []
    var ringsValid = false
    /// Ring hashes and rings already built (shared by all nodes in the simulator).
    let ringCache: RingCache
    /// The nodes this one sends its heartbeat to, and the members it watches.
    var myWatchers: [String] = []
    var subjects: Set<String> = []
    /// Nodes that suspected us although our rings do not make them our watchers (their view differs
    /// for a moment): we beat to them too, until the time given.
    var extraWatchers: [String: Millis] = [:]
    var lastPush: Millis = .min / 2
    /// The last member a sync sample carried (`sendSample`).
    var syncCursor = ""
    /// Members marked second-hand (since when), and members this node suspects: the tick looks at
    /// these and at `subjects` only, never at every member.
    var secondHandSince: [String: Millis] = [:]
    var suspecting: Set<String> = []
    var deadWordHeld: Set<String> = []
    /// Members under a check (`Membership+Checks.swift`), reached only through others, and that
    /// others asked us to check.
    var checking: Set<String> = []
    var indirect: Set<String> = []
    var answering: Set<String> = []
    /// Deaths to pass on once more, and when (`echoDeaths`).
    var deathEchoes: [String: Millis] = [:]
    /// The member the periodic sync went to last (they take turns), and the one whose answer we
    /// wait for: none within `suspectAfter` starts a check of whether only others reach it.
    var syncPeerCursor = ""
    var syncAwait: (name: String, since: Millis)?
    /// When each asker last had an answer to "are you there?" (`acceptProbe`).
    var lastSelfProbe: [String: Millis] = [:]
    var nextRingRefresh: Millis = .min / 2
    /// The newest probed signals, and when signals were last announced (protocol.md 7.2).
    var latestSignals: Signals
    var signalsAnnouncedAt: Millis
    /// Beat rounds (protocol.md 7.2, `Membership+Beats.swift`): beats sent since our heartbeat took
    /// its current version, the version the last round named, and when and to whom the last round
    /// of signed heartbeats went.
    var beatCount: UInt64 = 0
    var lastRoundVersion: Version?
    var lastFullRound: Millis = .min / 2
    var lastFullTargets: Set<String> = []

    static let retention: Millis = 24 * 3600 * 1000
    static let relayMultiplier = 4
    static let maxSeenAccusations = 10_000

    /// `ringCache`: shared by many cores in one process (the simulator); by default one of its own.
    public init(config: Config, crypto: StatementCrypto, seed: UInt64, now: Millis, ringCache: RingCache = RingCache()) {
        self.ringCache = ringCache
        name = config.name
        profile = config.profile
        self.crypto = crypto
        rng = SplitMix64(seed: seed)
        me = Heartbeat(name: config.name, incarnation: min(config.incarnation, Wire.maxIncarnation), seq: 0, draining: config.draining,
                       address: config.address, roles: config.roles, backup: config.backup, signals: config.signals.quantized)
        myEntry = SignedEntry(statement: .heartbeat(me), body: [], signature: [])
        latestSignals = me.signals
        signalsAnnouncedAt = now
        bootstrap = config.bootstrap
        // Spread first beats so nodes started together do not send in lockstep.
        nextBeat = now + Millis.random(in: 0..<config.profile.heartbeat, using: &rng)
        nextSync = now + config.profile.syncInterval
        nextDeadRetry = now + config.profile.deadRetry
        nextJoin = now + config.profile.heartbeat
        myEntry = sign(.heartbeat(me))
    }

    // MARK: - Inputs

    /// Announce ourselves to the seeds and remembered peers.
    public func start(now: Millis) -> [MembershipAction] {
        lastTick = now
        for address in bootstrap where address != me.address { sendFullState(.syncRequest, to: address) }
        return takeActions()
    }

    public func tick(now: Millis) -> [MembershipAction] {
        guard !hasLeft else { return takeActions() }
        if let last = lastTick, now - last > profile.pauseThreshold { resumeAfterPause(now: now, gap: now - last) }
        lastTick = now
        refreshWatching(now: now)
        detectFailures(now: now)
        runChecks(now: now)
        checkUnansweredSync(now: now)
        echoDeaths(now: now)
        expireSecondHand(now: now)
        let beats = now >= nextBeat
        if beats {
            // Keep the cadence: a beat that fired a little late does not delay the next one.
            nextBeat = max(nextBeat + profile.heartbeat, now + profile.heartbeat / 2)
            beatRound(now: now)
        }
        if broadcasts.pendingUrgent > 0 { push(now: now) }
        // The housekeeping below (sync, dead retry, join) waits for a tick that beats: at its own
        // times it would wake an idle agent as often again (the join check, every heartbeat, fell
        // between beats), and none of it minds a delay of one heartbeat.
        guard beats else { return takeActions() }
        if now >= nextSync {
            nextSync = now + profile.syncEvery(memberCount: memberCount)
            if let peer = nextSyncPeer() {
                sendSample(.syncRequest, to: members[peer]!.address)
                syncAwait = (peer, now)
            }
        }
        if now >= nextDeadRetry {
            nextDeadRetry = now + profile.deadRetry
            // One sample each, not full state: full state is N/8 datagrams, and every node sending
            // it to every dead member each `deadRetry` grew with N (1,700 datagrams at 10,000). The
            // request's fresh lead is what a live node behind a partition needs to hear (6.2).
            for key in memberNames where members[key]!.state == .dead { sendSample(.syncRequest, to: members[key]!.address) }
            forgetOldMembers(now: now)
        }
        if now >= nextJoin {
            // While alone, ask the seeds again: soon at first (a seed may have just started), then
            // backing off to `joinRetry`.
            joinBackoff = min(profile.joinRetry, max(profile.heartbeat, joinBackoff * 2))
            nextJoin = now + joinBackoff
            if !members.values.contains(where: \.isReachable) {
                for address in bootstrap where address != me.address { sendFullState(.syncRequest, to: address) }
            } else {
                joinBackoff = 0
            }
        }
        return takeActions()
    }

    /// A datagram's plaintext as it came out of its envelope. `sender` is the device whose pair key
    /// authenticated it (`SecureGossip`): entry 0 must be that device's own heartbeat, so a trusted
    /// device cannot pass another's datagram off as its own from its address (counted as `replay`).
    public func receive(bytes: [UInt8], from: WireAddress, sender: String? = nil, now: Millis) -> [MembershipAction] {
        guard !hasLeft else { return [] }
        let datagram: Datagram
        do { datagram = try Wire.decode(bytes) } catch {
            dropped.malformed += 1
            return []
        }
        if let sender, case .heartbeat(let first) = datagram.entries[0].statement, first.name != sender {
            dropped.replay += 1
            return []
        }
        return process(datagram, from: from, now: now)
    }

    /// The member the core would reach at `address` (the device `SecureGossip` says hello to there).
    public func member(at address: WireAddress) -> String? {
        members.first { $0.value.address == address }?.key
    }

    /// A decoded datagram (the simulation skips the byte encoding). The same rules apply: a datagram
    /// `Wire.decode` would reject is dropped as malformed.
    public func receive(_ d: Datagram, from: WireAddress, now: Millis) -> [MembershipAction] {
        guard !hasLeft else { return takeActions() }
        do { try Wire.check(d) } catch {
            dropped.malformed += 1
            return takeActions()
        }
        return process(d, from: from, now: now)
    }

    /// protocol.md section 6: entry 0 decides whether the datagram is used at all; nothing is sent
    /// in reply unless entry 0's signature was checked in this datagram.
    func process(_ d: Datagram, from: WireAddress, now: Millis) -> [MembershipAction] {
        guard let first = d.entries.first, case .heartbeat(let sender) = first.statement else { return takeActions() }
        if sender.name == name { dropped.replay += 1; return takeActions() }   // our own words played back to us
        let urgentBefore = broadcasts.pendingUrgent
        // A sync request from a node we did not know, held final, or that came back at another
        // incarnation is answered with everything we know; from anyone else, with a sample.
        let known = members[sender.name]
        let needsFullState = known == nil || known!.finalIncarnation != nil
            || known!.heartbeat.incarnation != sender.incarnation
        var fresh = false
        switch acceptHeartbeat(first, sender, source: from, direct: true, now: now) {
        case .accepted:
            fresh = true
        case .duplicate:
            if members[sender.name]?.finalIncarnation != nil {
                dropped.replay += 1
                return takeActions()
            }
            followAnnouncedAddress(sender.name, source: from)
        case .final:
            // It speaks at an incarnation we hold dead or left: tell it, so it refutes — but only once
            // its newer heartbeat proved to be its own words, fresh, and not a replay of one we answered.
            guard confirmFinal(first, sender, source: from, now: now) else { return takeActions() }
            sendNotice(about: sender.name, to: from, now: now)
        case .stale:
            dropped.replay += 1
            return takeActions()
        case .unknownKey: dropped.unknownKey += 1; return takeActions()
        case .badSignature: dropped.badSignature += 1; return takeActions()
        case .rateLimited: dropped.rateLimited += 1; return takeActions()
        }
        // A helper's answer to our check carries our own request (or suspicion) back: the member's
        // heartbeat beside it is what the helper heard from it just now (`answerHelped`).
        let answered = Set(d.entries.dropFirst().compactMap { e -> String? in
            switch e.statement {
            case .probe(let p) where p.asker == name: return p.target
            default: return nil
            }
        })
        for entry in d.entries.dropFirst() {
            switch entry.statement {
            case .heartbeat(let hb):
                switch acceptHeartbeat(entry, hb, source: from, direct: false,
                                       answerFrom: answered.contains(hb.name) ? sender.name : nil, now: now) {
                case .unknownKey: dropped.unknownKey += 1
                case .rateLimited: dropped.rateLimited += 1
                case .badSignature:
                    // The first bad signature ends the datagram: junk costs at most one check.
                    dropped.badSignature += 1
                    return takeActions()
                default: break
                }
            case .accusation(let a):
                guard acceptAccusation(entry, a, source: from, now: now) else { return takeActions() }
            case .probe(let p):
                guard acceptProbe(entry, p, sender: sender.name, source: from, now: now) else { return takeActions() }
            }
        }
        // News learnt from this datagram goes on at once, not at our next tick (at most one push per
        // tick). Only news this datagram brought: a replay brings none and triggers nothing.
        if broadcasts.pendingUrgent > urgentBefore { push(now: now) }
        // Full state only in answer to a sync request whose signed lead we accepted just now.
        if d.kind == .syncRequest, fresh, sender.syncRequest,
           now - (lastSyncReply[sender.name] ?? Millis.min / 2) >= profile.heartbeat,
           now - (lastSyncReplyIP[from.ip] ?? Millis.min / 2) >= profile.heartbeat {
            lastSyncReply[sender.name] = now
            lastSyncReplyIP[from.ip] = now
            _ = freshLead()     // the asker may be checking that we are up (7.1)
            // A node that asks again and again watches us although our rings do not say so (it
            // holds some member suspect that we hold alive): beat to it too for a while, as to one
            // that suspected us, rather than leave it to question us every 3/4 `suspectAfter` and
            // suspect us the first time an answer is slow. (Once is a periodic sync: no change.)
            if !myWatchers.contains(sender.name), now - (lastAskedBy[sender.name] ?? .min / 2) <= 2 * profile.suspectAfter {
                extraWatchers[sender.name] = now + 4 * profile.suspectAfter
            }
            lastAskedBy[sender.name] = now
            if needsFullState { sendFullState(.syncReply, to: from) } else { sendSample(.syncReply, to: from) }
        }
        return takeActions()
    }

    /// Graceful leave: a signed `left` heartbeat to everyone, twice against loss.
    public func leave(now: Millis) -> [MembershipAction] {
        guard !hasLeft else { return takeActions() }
        me.status = .left
        me.seq += 1
        resign()
        for _ in 0..<2 {
            for m in sortedMembers where m.isReachable {
                send(Datagram(kind: .gossip, entries: [myEntry]), to: m.address)
            }
        }
        hasLeft = true
        return takeActions()
    }

    /// Changes to this node's own roles, backups, draining flag or signals. Roles, backups and
    /// draining go to every member at once. Probed signals are announced only when they change
    /// meaningfully (`Signals.meaningfullyDifferent`) or at the floor rate, riding on beats as news;
    /// `announce` (`rolemesh signal`) sends them at once like the rest.
    public func updateSelf(now: Millis, announce: Bool = false, _ change: (inout Heartbeat) -> Void) -> [MembershipAction] {
        var next = me
        change(&next)
        next.signals = next.signals.quantized
        guard !hasLeft else { return takeActions() }
        latestSignals = next.signals
        let identity = !next.sameIdentity(as: me)
        let fitness = !next.signals.sameFitness(as: me.signals)
        let signalsDue = next.signals != me.signals && (announce || identity || signalsWorthAnnouncing(next.signals, now: now))
        // A new digest (what this node holds beside membership) goes to our watchers with the next
        // beat round, which the new version makes a full one; nobody else needs it at once.
        let digestChanged = next.digest != me.digest
        guard identity || signalsDue || digestChanged else { return takeActions() }
        if identity || fitness {
            outbox.append(.event(MeshEvent(.memberUpdated, node: name)))
        }
        me.roles = next.roles; me.backup = next.backup; me.draining = next.draining; me.address = next.address
        me.digest = next.digest
        me.services = next.services
        if signalsDue { me.signals = next.signals; signalsAnnouncedAt = now }
        if identity || signalsDue { markViewChanged() }
        me.seq += 1
        resign()
        if identity || announce || fitness {
            // A person's command, or a change heavy routing reads: everyone hears it now.
            for m in sortedMembers where m.isReachable { sendDatagram([myEntry], to: m.heartbeat.name) }
        }
        return takeActions()
    }

    /// Whether probed signals `s` should replace the announced ones now (protocol.md 7.2): a flag at
    /// once, figures that moved meaningfully once the rate limit allows, any drift at the floor.
    func signalsWorthAnnouncing(_ s: Signals, now: Millis) -> Bool {
        guard s != me.signals else { return false }
        let since = now - signalsAnnouncedAt
        return s.flagsDiffer(from: me.signals)
            || (s.meaningfullyDifferent(from: me.signals) && since >= profile.signalMinInterval(memberCount: memberCount))
            || since >= profile.signalFloor(memberCount: memberCount)
    }

    /// Trust in `name` was revoked: forget it entirely.
    public func revoke(_ name: String) {
        members[name] = nil
        broadcasts.remove(origin: name)
        seenAccusations = seenAccusations.filter { $0.accuser != name && $0.target != name }
        for key in members.keys where members[key]!.words[name] != nil || members[key]!.indirectVia == name
            || members[key]!.answerTo.contains(where: { $0.asker == name }) || members[key]!.check?.asked.contains(name) == true {
            members[key]!.words[name] = nil
            members[key]!.answerTo.removeAll { $0.asker == name }
            members[key]!.check?.asked.removeAll { $0 == name }
            if members[key]!.indirectVia == name { clearIndirect(key) }
        }
        for set in [\Membership.suspecting, \.deadWordHeld, \.checking, \.indirect, \.answering] { self[keyPath: set].remove(name) }
        deathEchoes[name] = nil
        if syncAwait?.name == name { syncAwait = nil }
        markStatesChanged()
    }

    // MARK: - Heartbeats

    enum Outcome { case accepted, duplicate, stale, final, unknownKey, badSignature, rateLimited }

    /// `direct`: this is entry 0, the sender's own heartbeat, so `source` is where it speaks from;
    /// `answerFrom`: a helper passed it on in answer to our check (protocol.md 7.1, checks).
    func acceptHeartbeat(_ entry: SignedEntry, _ hb: Heartbeat, source: WireAddress, direct: Bool,
                         answerFrom: String? = nil, now: Millis) -> Outcome {
        if hb.name == name { return acceptOwnRecord(entry, hb, source: source, now: now) }
        let old = members[hb.name]
        if let m = old {
            // A byte-identical copy proves nothing new: it moves no address and costs no check.
            if entry.sameBytes(as: m.entry) { return .duplicate }
            if hb.version <= m.heartbeat.version { return .stale }
            if let final = m.finalIncarnation, hb.incarnation <= final { return .final }
        }
        switch verify(entry, origin: hb.name, source: source, now: now) {
        case .valid: break
        case .unknownKey: return .unknownKey
        case .invalid: return .badSignature
        case .rateLimited: return .rateLimited
        }

        var newState: MemberState = hb.status == .left ? .left : .alive
        // A member first heard of through a relay or a sync may have died since: its record is not
        // fresh evidence, so a death claim arriving with it still counts.
        let learnedSecondHand = old == nil && !direct
        // Only the member's own datagram says it is up *now*. A relayed record (a push, a sync
        // sample) may be seconds old: it counts as heard half a suspicion period ago, so it never
        // holds off a dead claim that has its words (6.3) — else a survivor that happened to get it
        // just after a crash learns of the death 0.7 s after everyone else.
        let heard = direct ? now : max(old?.lastHeard ?? .min / 2, now - suspectAfter / 2)
        var m = old ?? Member(entry: entry, state: newState, lastHeard: heard, stateSince: now)
        if let old, old.heartbeat.incarnation != hb.incarnation {
            m.words = [:]
            seenAccusations = seenAccusations.filter { $0.target != hb.name || $0.incarnation >= hb.incarnation }
        }
        m.entry = entry
        m.lastHeard = heard
        // Our own suspicion ends with evidence that it spoke since: its own datagram, a helper's
        // answer to our check, or a new incarnation. A relayed record at the same incarnation may
        // be old news (signed before it crashed, or on the far side of a split).
        let stillSuspected = m.suspectSince != nil && !direct && answerFrom == nil
            && old?.heartbeat.incarnation == hb.incarnation && hb.status != .left
        if !stillSuspected {
            m.suspectSince = nil
            suspecting.remove(hb.name)
        }
        m.secondHand = learnedSecondHand
        secondHandSince[hb.name] = learnedSecondHand ? now : nil
        // Only its own datagram, or a new incarnation, shows it spoke after the words held against
        // it. A relayed record at the same incarnation may have been signed before them — with beats
        // versions change rarely, so a crashed node's last signed heartbeat can still travel after
        // its death — and must not wipe them: a dead claim already seen is never accepted again, and
        // the member would stay alive here for good. A member that is really up refutes them itself.
        // A dead claim we were checking, about a member that answers us itself: tell it, so it
        // refutes and the nodes that took the claim revive it.
        if direct, let word = old?.deadWord, old!.heartbeat.incarnation == hb.incarnation {
            send(Datagram(kind: .gossip, entries: [freshLead(), word]), to: source)
        }
        if direct || old == nil || old!.heartbeat.incarnation != hb.incarnation { dropWords(against: &m) }
        if direct { m.observed = source }
        if stillSuspected { newState = .suspect }
        let changedState = old == nil || old!.state != newState
        let changedIdentity = old.map { !hb.sameIdentity(as: $0.heartbeat) } ?? true
        if changedState {
            m.state = newState
            m.stateSince = now
            m.deathClaim = nil
            m.finalHeard = nil
            outbox.append(.event(.state(newState, hb.name)))
        } else if let old, !hb.sameIdentity(as: old.heartbeat, ignoringIncarnation: true)
                    || !hb.signals.sameFitness(as: old.heartbeat.signals) {
            outbox.append(.event(MeshEvent(.memberUpdated, node: hb.name)))
        }
        members[hb.name] = m
        if direct {
            if syncAwait?.name == hb.name { syncAwait = nil }
            checkSucceeded(hb.name, via: nil, now: now)
            clearIndirect(hb.name)
            answerHelped(hb.name, now: now)
        } else if let answerFrom, m.check != nil {
            helperAnswered(hb.name, via: answerFrom, now: now)
        }
        if changedState {
            markStatesChanged()
        } else if changedIdentity || old?.heartbeat.signals != hb.signals || old?.secondHand != m.secondHand {
            markViewChanged()   // routing reads all of these, the second-hand mark included
        }
        // A plain beat (only seq changed) is not news: it went to the watchers that need it. A new
        // incarnation alone (a refutation: those who suspected it heard it directly, 7.2) floods
        // along the rings like signals: under loss there is one somewhere all the time, and pushed
        // to λ·log N members each it would cost every node more as N grows.
        let urgent = changedState || old.map { !hb.sameIdentity(as: $0.heartbeat, ignoringIncarnation: true) } ?? true
        if urgent || changedIdentity || old?.heartbeat.signals != hb.signals {
            broadcasts.add(key: "h:" + hb.name, entry: entry, origin: hb.name,
                           limit: urgent ? relayLimit : profile.watchers, urgent: urgent)
        }
        return .accepted
    }

    /// Entry 0 is the record we hold, again, straight from the address that record announces: the
    /// member is there, so it is reached there (7.5). A device that moves announces its new address
    /// to every member directly, but that copy waits for a hello round trip at the new address
    /// (2.3) while relayed copies do not: a member that got a relayed one first took the direct one
    /// as a duplicate and kept sending to the old address, where its syncs and checks went
    /// unanswered, so it held the device 'via' others and, cut off from them by a split, found it
    /// dead seconds late (chaos seeds 18541, 18785). A replayed duplicate cannot steer traffic
    /// anywhere the member did not sign as its own address.
    func followAnnouncedAddress(_ node: String, source: WireAddress) {
        guard let m = members[node], m.observed != source, m.heartbeat.address == source else { return }
        members[node]!.observed = source
    }

    /// Entry 0 came at a newer version but an incarnation we hold dead or left. Before anything is
    /// sent back, it must be a version we have not answered yet and carry its origin's signature.
    func confirmFinal(_ entry: SignedEntry, _ hb: Heartbeat, source: WireAddress, now: Millis) -> Bool {
        guard var m = members[hb.name] else { return false }
        if let heard = m.finalHeard, hb.version <= heard { dropped.replay += 1; return false }
        switch verify(entry, origin: hb.name, source: source, now: now) {
        case .valid: break
        case .unknownKey: dropped.unknownKey += 1; return false
        case .invalid: dropped.badSignature += 1; return false
        case .rateLimited: dropped.rateLimited += 1; return false
        }
        m.finalHeard = hb.version
        members[hb.name] = m
        return true
    }

    /// Someone holds a newer record of us than we do: our state was lost. Jump above it. Only we can
    /// sign our heartbeat, so this is the one way a claim above our incarnation can move us.
    func acceptOwnRecord(_ entry: SignedEntry, _ hb: Heartbeat, source: WireAddress, now: Millis) -> Outcome {
        guard hb.version > me.version, !hasLeft else { return .duplicate }
        switch verify(entry, origin: name, source: source, now: now) {
        case .valid: break
        case .unknownKey, .invalid: return .badSignature
        case .rateLimited: return .rateLimited
        }
        refute(atLeast: hb.incarnation)
        return .accepted
    }

    enum Verdict { case valid, invalid, unknownKey, rateLimited }

    /// Every signature check on peer input goes through here: the origin must be trusted, and the
    /// source IP must have budget left (a failed check costs `VerifyBudget.failureCost`).
    func verify(_ entry: SignedEntry, origin: String, source: WireAddress, now: Millis) -> Verdict {
        guard crypto.isTrusted(origin) else { return .unknownKey }
        guard verifyBudget.spend(source.ip, now: now) else { return .rateLimited }
        guard let valid = crypto.verify(signature: entry.signature, message: entry.signedMessage, origin: origin) else {
            return .unknownKey
        }
        if !valid { verifyBudget.penalise(source.ip); return .invalid }
        return .valid
    }

    // MARK: - Accusations

    /// Returns false when the datagram must not be read further (a bad signature).
    func acceptAccusation(_ entry: SignedEntry, _ a: Accusation, source: WireAddress, now: Millis) -> Bool {
        // Cheap relevance checks first: nothing here costs a signature check.
        guard a.accuser != name, a.accuser != a.target, !seenAccusations.contains(a) else { return true }
        guard crypto.isTrusted(a.accuser) else { dropped.unknownKey += 1; return true }
        if a.target == name {
            // Only a claim about our current incarnation needs an answer. One above it cannot be
            // legitimate (our incarnation is persisted); our lost state comes back through our own
            // newer signed heartbeat (acceptOwnRecord), which nobody else can sign.
            guard a.incarnation == me.incarnation else { return true }
        } else {
            // Only claims about a reachable member at the incarnation we hold count.
            guard let m = members[a.target], m.isReachable, a.incarnation == m.heartbeat.incarnation else { return true }
            if m.words[a.accuser] != nil, a.kind == .suspect || m.deadWord != nil { return true }   // nothing new
        }
        switch verify(entry, origin: a.accuser, source: source, now: now) {
        case .valid: break
        case .unknownKey: dropped.unknownKey += 1; return true
        case .rateLimited: dropped.rateLimited += 1; return true
        case .invalid: dropped.badSignature += 1; return false
        }
        if seenAccusations.count >= Self.maxSeenAccusations { seenAccusations.removeAll() }
        seenAccusations.insert(a)
        if a.target == name {
            // Whoever suspects us thinks it watches us: beat to it too for a while.
            if a.kind == .suspect, !myWatchers.contains(a.accuser) {
                extraWatchers[a.accuser] = now + 4 * profile.suspectAfter
            }
            refute(atLeast: a.incarnation, onlySuspected: a.kind == .suspect)
            return true
        }
        guard var m = members[a.target] else { return true }
        if a.kind == .suspect, m.suspectSince == nil, now - m.lastHeard < suspectAfter / 2 {
            // We hear it and the accuser does not: a word that is wrong here, not counted, not passed
            // on. (The accuser's probe request beside it has us ask the member for it.)
            return true
        }
        // A word against the member (a dead claim replaces the accuser's suspicion); it kills only
        // with the words of its watchers, or once this node cannot reach it either (6.3).
        m.words[a.accuser] = entry
        if a.kind == .dead, m.deadWord == nil { m.deadWord = entry; deadWordHeld.insert(a.target) }
        // The helper whose answer showed it up now holds it dead: that answer no longer counts, and
        // the check verifies the claim (else it ended 'via' the accuser, the claim held for good).
        if a.kind == .dead, m.check?.helperAnswer == a.accuser { m.check!.helperAnswer = nil }
        members[a.target] = m
        considerDeath(a.target, now: now)
        return true
    }

    /// A dead claim is held about `key`: dead now if it is known only second-hand, or silent here
    /// and accused by enough of its watchers; else a check decides (protocol.md 6.3, 7.1).
    func considerDeath(_ key: String, now: Millis) {
        guard var m = members[key], m.isReachable, let word = m.deadWord else { return }
        if m.secondHand || (now - m.lastHeard >= suspectAfter / 2 && watcherWords(against: key) >= wordsNeeded) {
            markDead(&m, claim: word, incarnation: m.heartbeat.incarnation, now: now)
            members[key] = m
            relayDeath(of: key, now: now)
        } else {
            startCheck(key, .verification, now: now)   // or a check under way takes this purpose
        }
    }

    /// Words a death takes on the fast path: signed claims at the member's current incarnation from
    /// that many of its watchers (this node's own silence counting as one when it watches it): as
    /// many as it has watchers, up to `confirmations` + 1, and never fewer than two, so one key alone
    /// never kills. With fewer words (a mesh of two, a watcher whose partner is across a split) a
    /// check decides instead (protocol.md 7.1).
    var wordsNeeded: Int { max(2, min(profile.confirmations + 1, profile.watchers)) }

    /// Rebuilds the rings after a change of who is alive (at most once per tick: the rings only
    /// steer beats and detection, which run on ticks). A member that has just become ours to watch
    /// gets a full `suspectAfter` from now before its silence counts.
    func refreshWatching(now: Millis) {
        // At most twice a beat: while a hundred members join, rebuilding on every tick is waste.
        guard !ringsValid, now >= nextRingRefresh else { return }
        ringsValid = true
        nextRingRefresh = now + profile.heartbeat / 2
        var alive: [String] = [], offRing: [String] = []
        var placedSelf = false
        for key in memberNames {
            if !placedSelf, key > name { alive.append(name); placedSelf = true }
            switch members[key]!.state {
            case .alive: alive.append(key)
            case .suspect: offRing.append(key)
            default: break
            }
        }
        if !placedSelf { alive.append(name) }
        // The rings are a function of who is alive alone; most view changes (signals, roles, a
        // suspicion) leave that as it was, and sorting every name K times is the costly part.
        if alive != ringNames {
            (ringNames, rings) = ringCache.rings(over: alive, k: profile.watchers)
            myWatchers = watchers(of: name)
        }
        let next = Set(rings.subjects(of: name, offRing: offRing, keys: ringKeys))
        for key in next.subtracting(subjects).sorted() {
            // A member that has just become ours to watch may not beat to us yet (its view of the
            // rings may lag ours): if we have not heard it lately we ask it directly — a sync
            // request is answered — and suspect it only if that goes unanswered too. This keeps
            // detection fast when its old watchers died or are across a partition.
            members[key]!.watchedSince = now
            if now - members[key]!.lastHeard > suspectAfter / 2 { sendSample(.syncRequest, to: members[key]!.address) }
        }
        for key in subjects.subtracting(next) where members[key] != nil { members[key]!.watchedSince = nil }
        subjects = next
    }

    func watchers(of node: String) -> [String] { rings.watchers(of: node, keys: ringKeys) }

    func ringKeys(_ node: String) -> [UInt64] { ringCache.keys(node, k: profile.watchers) }

    /// Only the members we watch are suspected for silence; the others are watched by others.
    func detectFailures(now: Millis) {
        let threshold = suspectAfter
        // Only members with a timer running or just expired need work; the rest are read, not copied back.
        var due: [String] = []
        // In name order: a direct question goes out from inside this loop, and one seed must give one run.
        for key in subjects.union(suspecting).sorted() {
            guard let m = members[key], m.isReachable else { suspecting.remove(key); continue }
            // Others hear it and we do not: not ours to watch (checked again now and then).
            if m.indirectVia != nil || m.check?.helperAnswer != nil, m.suspectSince == nil { continue }
            // A member we have just started to watch is judged from then (less the time its answer
            // to our probe may take), not from when we last heard it as somebody else's subject.
            let since = max(m.lastHeard, (m.watchedSince ?? .min / 2) - threshold / 2)
            if m.suspectSince != nil || now - since > threshold {
                due.append(key)
            } else if now - since > threshold * 3 / 4, (m.probedAt ?? .min / 2) < since {
                // Silent for three quarters of the limit: ask it directly before accusing it (a sync
                // request is answered). A node whose rings differ from ours (it beats to others for
                // now), or whose beats were lost, answers and is not suspected at all.
                members[key]!.probedAt = now
                sendSample(.syncRequest, to: m.address)
            }
        }
        // Dead claims held back for want of words: the words may be enough now (rings changed).
        for key in deadWordHeld.sorted() {
            guard let m = members[key], m.isReachable, m.deadWord != nil else { deadWordHeld.remove(key); continue }
            if now - m.lastHeard >= suspectAfter / 2, watcherWords(against: key) >= wordsNeeded {
                considerDeath(key, now: now)
            }
        }
        guard !due.isEmpty else { return }
        for key in due.sorted() {
            guard var m = members[key] else { continue }
            if m.suspectSince == nil {
                m.suspectSince = now
                suspecting.insert(key)
                if m.state == .alive {
                    m.state = .suspect
                    m.stateSince = now
                    outbox.append(.event(.state(.suspect, key)))
                    markStatesChanged()
                }
                // The member itself (so it refutes: the words held against it lapse everywhere) and
                // its other watchers (so they confirm, or check it for us) hear it first. Nobody
                // passes a suspicion on, and a watcher that hears the member does not count it, so a
                // member only we cannot hear is never made to refute: connectivity that is not
                // transitive stays calm.
                let claim = sign(.accusation(Accusation(accuser: name, kind: .suspect, target: key,
                                                        incarnation: m.heartbeat.incarnation)))
                members[key] = m
                startCheck(key, .suspicion, now: now)
                m = members[key]!
                let request = m.check?.request.map { [$0] } ?? []
                sendDatagram([freshLead(), claim], to: key)
                for target in watchers(of: key) where target != name { sendDatagram([freshLead(), claim] + request, to: target) }
            }
            // Fast path: its watchers' words. Without them the suspicion's check decides (7.1).
            if let since = m.suspectSince, now - since >= profile.suspicionTimeout,
               watcherWords(against: key) + 1 >= wordsNeeded {
                members[key] = m
                declareDead(key, now: now)
                continue
            }
            members[key] = m
        }
    }

    /// A member learned through others and not contradicted for `suspectAfter` is taken as up: with
    /// gossip v2 most members are never heard directly, only through their watchers' news.
    func expireSecondHand(now: Millis) {
        for (key, since) in secondHandSince where now - since >= suspectAfter {
            secondHandSince[key] = nil
            if members[key] != nil { members[key]!.secondHand = false }
            markViewChanged()
        }
    }

    func markDead(_ m: inout Member, claim: SignedEntry, incarnation: UInt64, now: Millis) {
        m.state = .dead
        m.deathClaim = claim
        m.deathIncarnation = incarnation
        m.suspectSince = nil
        m.deadWord = nil
        m.check = nil
        m.indirectVia = nil
        m.recheckAt = nil
        m.answerTo = []
        m.probeSentAt = nil
        suspecting.remove(m.heartbeat.name)
        deadWordHeld.remove(m.heartbeat.name)
        checking.remove(m.heartbeat.name)
        indirect.remove(m.heartbeat.name)
        answering.remove(m.heartbeat.name)
        m.stateSince = now
        outbox.append(.event(.state(.dead, m.heartbeat.name)))
        markStatesChanged()
    }

    /// Raise our incarnation above `inc` and say so at once. Saturates at `Wire.maxIncarnation`
    /// (then only seq rises): never traps, never leaves the range. After a death claim, a lost
    /// record or a pause, every member may hold us dead: all are told (rare events). A suspicion is
    /// held only by our watchers and accusers (a non-watcher only counts the word): they are told,
    /// and the new incarnation goes on from them (7.3), so under loss a refutation costs the same
    /// at any N (protocol.md 7.2).
    func refute(atLeast inc: UInt64, onlySuspected: Bool = false) {
        let top = max(me.incarnation, min(inc, Wire.maxIncarnation))
        if top < Wire.maxIncarnation {
            me.incarnation = top + 1
            me.seq = 0
        } else {
            me.incarnation = Wire.maxIncarnation
            if me.seq < Wire.maxSeq { me.seq += 1 }
        }
        resign()
        outbox.append(.persistIncarnation(me.incarnation))
        if onlySuspected {
            for t in beatTargets { sendDatagram([myEntry], to: t) }
            return
        }
        for m in sortedMembers where m.state != .left {
            send(Datagram(kind: .gossip, entries: [myEntry]), to: m.address)
        }
    }

    func resumeAfterPause(now: Millis, gap: Millis) {
        outbox.append(.log("no tick for \(gap) ms: this process was suspended; refreshing instead of accusing"))
        for key in checking { members[key]?.check = nil }
        checking = []
        syncAwait = nil
        for key in memberNames where members[key]!.isReachable {
            members[key]!.lastHeard = now
            members[key]!.suspectSince = nil
            suspecting.remove(key)
            if members[key]!.state == .suspect {
                members[key]!.state = .alive
                members[key]!.stateSince = now
                outbox.append(.event(.state(.alive, key)))
                markStatesChanged()
            }
        }
        refute(atLeast: me.incarnation)
        for m in sortedMembers where m.state != .left { sendFullState(.syncRequest, to: m.address) }
        nextBeat = now + profile.heartbeat
    }

    // MARK: - Sending

    /// News not sent yet goes to `pushFanout` random reachable members now, so it spreads in
    /// O(log N) hops; each taker does the same once, then it rides on beats until its limit.
    func push(now: Millis) {
        // At most one push per tick: a burst of news (a hundred members joining) goes out as a few
        // full datagrams per tick, not three per datagram received.
        guard now - lastPush >= profile.tick else { return }
        lastPush = now
        // A few random reachable members, drawn without walking the whole list (a bounded number
        // of draws, then the rest of the list in order).
        let names = memberNames
        var targets: [String] = []
        var draws = 0
        while targets.count < profile.pushFanout, draws < 4 * profile.pushFanout, !names.isEmpty {
            draws += 1
            let pick = names[Int.random(in: 0..<names.count, using: &rng)]
            if members[pick]!.isReachable, !targets.contains(pick) { targets.append(pick) }
        }
        if targets.count < profile.pushFanout {
            for key in names where targets.count < profile.pushFanout && members[key]!.isReachable && !targets.contains(key) {
                targets.append(key)
            }
        }
        let lead = freshLead()
        let budget = Wire.maxDatagramSize - Wire.headerSize - lead.encodedSize
        var sentAny = false
        for t in targets.sorted() {
            let extra = broadcasts.take(budget: budget, recipient: t)
            if !extra.isEmpty { sendDatagram([lead] + extra, to: t); sentAny = true }
        }
        // News no target could take (about the only member we reach, say) must not force a send
        // on every tick: it waits for the next beat like the rest.
        broadcasts.settlePendingUrgent(sentAny: sentAny)
    }

    /// One gossip datagram to a member by name, at its current address.
    func sendDatagram(_ entries: [SignedEntry], to node: String) {
        guard let m = members[node] else { return }
        send(Datagram(kind: .gossip, entries: entries), to: m.address)
    }

    /// Everything we know, in as many datagrams as it takes, each led by our own heartbeat (for a
    /// sync request: this round's signed request heartbeat).
    func sendFullState(_ kind: DatagramKind, to address: WireAddress) {
        var entries: [SignedEntry] = []
        for m in sortedMembers {
            entries.append(m.entry)
            if let claim = m.deathClaim { entries.append(claim) }
        }
        let lead = kind == .syncRequest ? syncRequestLead() : myEntry
        for d in pack(entries, kind: kind, lead: lead) { send(d, to: address) }
    }

    /// Anti-entropy at constant cost: one datagram of our records, the next ones in name order after
    /// those the last sample carried, so N members take about N/8 syncs to go round, whatever N is.
    func sendSample(_ kind: DatagramKind, to address: WireAddress) {
        let lead = kind == .syncRequest ? syncRequestLead() : myEntry
        let names = memberNames
        guard !names.isEmpty else { return send(Datagram(kind: kind, entries: [lead]), to: address) }
        var start = Self.firstIndex(after: syncCursor, in: names)
        var entries = [lead], size = Wire.headerSize + lead.encodedSize
        for _ in 0..<names.count {
            let m = members[names[start]]!
            let add = [m.entry] + (m.deathClaim.map { [$0] } ?? [])
            let extra = add.reduce(0) { $0 + $1.encodedSize }
            if size + extra > Wire.maxDatagramSize || entries.count + add.count > 255 { break }
            entries += add; size += extra
            syncCursor = names[start]
            start = (start + 1) % names.count
        }
        send(Datagram(kind: kind, entries: entries), to: address)
    }

    /// The sync request's kind is signed: its lead is our heartbeat at the next seq with flag 0x02.
    /// Our regular heartbeat is then re-signed one seq later, so every version stays ordered and a
    /// captured request, once seen, is only ever a duplicate or stale. One per round (input).
    func syncRequestLead() -> SignedEntry {
        if let r = roundRequest, r.after == me.version { return r.entry }
        me.seq += 1
        var request = me
        request.syncRequest = true
        let entry = sign(.heartbeat(request))
        me.seq += 1
        resign()
        roundRequest = (entry, me.version)
        return entry
    }

    func pack(_ entries: [SignedEntry], kind: DatagramKind, lead: SignedEntry? = nil) -> [Datagram] {
        let lead = lead ?? myEntry
        var out: [Datagram] = []
        var current = [lead]
        var size = Wire.headerSize + lead.encodedSize
        for e in entries {
            // An entry that cannot fit beside our own heartbeat at all is left out, not sent oversized.
            if Wire.headerSize + lead.encodedSize + e.encodedSize > Wire.maxDatagramSize { continue }
            if size + e.encodedSize > Wire.maxDatagramSize || current.count == 255 {
                out.append(Datagram(kind: kind, entries: current))
                current = [lead]; size = Wire.headerSize + lead.encodedSize
            }
            current.append(e); size += e.encodedSize
        }
        out.append(Datagram(kind: kind, entries: current))
        return out
    }

    /// Tell a node what we hold about it: its newest record, and our claim it is dead.
    func sendNotice(about node: String, to address: WireAddress, now: Millis) {
        guard let m = members[node], now - (lastNotice[address.ip] ?? Millis.min / 2) >= profile.suspectAfter else { return }
        lastNotice[address.ip] = now
        var entries = [m.entry]
        if let claim = m.deathClaim { entries.append(claim) }
        for d in pack(entries, kind: .gossip, lead: freshLead()) { send(d, to: address) }
    }

    /// Every datagram leaves through here. A member that advertises 0.0.0.0 and was only heard of
    /// through relays has no address yet: it will be reached once it speaks to us directly.
    func send(_ d: Datagram, to address: WireAddress) {
        guard !address.isUnspecified else { return }
        outbox.append(.send(d, to: address))
    }

    /// It spoke after the words held against it (its own datagram, a beat): earlier accusations, and
    /// a dead claim waiting for more words, no longer confirm anything.
    func dropWords(against m: inout Member) {
        m.deadWord = nil
        guard !m.words.isEmpty else { return }
        m.words = [:]
        let target = m.heartbeat.name
        seenAccusations = seenAccusations.filter { $0.target != target || $0.kind != .suspect }
    }

    /// Re-signs our heartbeat after `me` changed.
    func resign() {
        myEntry = sign(.heartbeat(me))
        signedThisInput = true
    }

    /// Our heartbeat to lead a datagram that must count as hearing from us — news, an answer, a
    /// suspicion (6.1: only a fresh version does): signed anew at the next seq, once per input,
    /// unless this input signed one already. Between signed rounds (beats, 7.2) every peer that
    /// hears us holds our current version, and the same bytes again are a duplicate.
    func freshLead() -> SignedEntry {
        if !signedThisInput {
            me.seq += 1
            resign()
        }
        return myEntry
    }

    func sign(_ s: Statement) -> SignedEntry {
        let body = Wire.encodeBody(s)
        return SignedEntry(statement: s, body: body, signature: crypto.sign(Wire.signedMessage(for: s, body: body)))
    }

    // MARK: - Helpers

    /// Every watcher hears its subjects directly, so silence means the same at any N.
    var suspectAfter: Millis { profile.suspectAfter }
    /// How many distinct members urgent news is passed to: SWIM's λ·log(N) random ones, plus our
    /// watchers, so the flood along the rings is complete too.
    var relayLimit: Int {
        var n = members.count + 1, digits = 0
        while n > 0 { digits += 1; n /= 10 }
        return Self.relayMultiplier * digits + profile.watchers
    }
    /// Our own accusations are passed on a little more than others' news.
    var ownLimit: Int { relayLimit + 2 }

    func forgetOldMembers(now: Millis) {
        verifyBudget.prune(now: now)
        for (key, m) in members where !m.isReachable && now - m.stateSince > Self.retention {
            members[key] = nil
        }
        if lastNotice.count > 1024 { lastNotice.removeAll() }
        if lastSyncReply.count > 1024 { lastSyncReply.removeAll() }
        if lastSyncReplyIP.count > 1024 { lastSyncReplyIP.removeAll() }
        if lastAskedBy.count > 1024 { lastAskedBy.removeAll() }
    }

    /// Something routing reads changed (roles, signals, the second-hand mark): `.viewChanged`.
    func markViewChanged() { viewChanged = true }
    /// A member's state changed, or a member came or went: the rings, which are a function of who
    /// is alive (and suspect), are rebuilt too. Only then: at 10,000 members, rebuilding on every
    /// signal or incarnation change cost every node O(N) per change anywhere in the mesh.
    func markStatesChanged() { viewChanged = true; ringsValid = false }

    /// Member names, sorted. Dictionary order is seeded per process: whatever sends or emits in a
    /// loop goes in this order, so one seed gives one run (the simulation relies on it).
    var memberNames: [String] {
        if !namesValid {
            // Usually a few members came since the last call: those are merged in (`sort` on two
            // sorted runs is a merge), which is much cheaper than sorting a thousand names again.
            // (Found by binary search in the sorted names, not through a set of them: at 10,000
            // members that set cost each node 260 kB.)
            let added = members.keys.filter { !Self.sortedContains(cachedNames, $0) }
            if cachedNames.count + added.count != members.count {   // some were removed
                cachedNames.removeAll { members[$0] == nil }
            }
            cachedNames += added.sorted()
            cachedNames.sort()
            namesValid = true
        }
        return cachedNames
    }
    var sortedMembers: [Member] { memberNames.map { members[$0]! } }

    /// The index of the first name after `cursor` in sorted `names` (binary search), or 0.
    static func firstIndex(after cursor: String, in names: [String]) -> Int {
        let i = insertionPoint(after: cursor, in: names)
        return i == names.count ? 0 : i
    }

    static func sortedContains(_ names: [String], _ name: String) -> Bool {
        let i = insertionPoint(after: name, in: names)
        return i > 0 && names[i - 1] == name
    }

    /// The index of the first element of sorted `names` greater than `key`.
    static func insertionPoint(after key: String, in names: [String]) -> Int {
        var lo = 0, hi = names.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if names[mid] <= key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Hands this input's actions to the caller and empties the outbox; a view change is reported
    /// last, once per input (never after leaving).
    func takeActions() -> [MembershipAction] {
        roundRequest = nil
        signedThisInput = false
        if viewChanged, !hasLeft {
            viewChanged = false
            outbox.append(.viewChanged)
        }
        defer { outbox.removeAll(keepingCapacity: true) }
        return coalesced(outbox)
    }

    /// One input can send one address several datagrams led by different versions of our heartbeat
    /// (a fresh lead, then a sync request's lead, then the regular one re-signed after it). Datagrams
    /// may arrive in any order, and a receiver drops one whose lead is older than what it holds (6.2):
    /// so all of an input's datagrams to one address are merged behind one lead — the sync request's
    /// if there is one (its kind is signed in it), else our newest heartbeat.
    func coalesced(_ actions: [MembershipAction]) -> [MembershipAction] {
        var count: [WireAddress: Int] = [:]
        for case .send(_, let to) in actions { count[to, default: 0] += 1 }
        guard count.values.contains(where: { $0 > 1 }) else { return actions }
        var out: [MembershipAction] = []
        var merged: Set<WireAddress> = []
        for a in actions {
            guard case .send(_, let to) = a, count[to]! > 1 else { out.append(a); continue }
            guard merged.insert(to).inserted else { continue }
            var datagrams: [Datagram] = []
            for case .send(let d, let t) in actions where t == to { datagrams.append(d) }
            let request = datagrams.filter { $0.kind == .syncRequest }.max { $0.entries[0].heartbeat!.version < $1.entries[0].heartbeat!.version }
            let lead = request?.entries[0] ?? datagrams.map { $0.entries[0] }.max { $0.heartbeat!.version < $1.heartbeat!.version }!
            let kind: DatagramKind = request != nil ? .syncRequest
                : datagrams.allSatisfy { $0.kind == .syncReply } ? .syncReply : .gossip
            var entries: [SignedEntry] = []
            for d in datagrams {
                for e in d.entries.dropFirst() where !entries.contains(where: { $0.sameBytes(as: e) }) { entries.append(e) }
            }
            for d in pack(entries, kind: kind, lead: lead) { out.append(.send(d, to: to)) }
        }
        return out
    }
}

public enum MembershipAction: Sendable {
    case send(Datagram, to: WireAddress)
    /// A "still here" beat (`Beat`), sealed as envelope frame 3 by the shell.
    case beat(Beat, to: WireAddress)
    case event(MeshEvent)
    case persistIncarnation(UInt64)
    case log(String)
    /// Something routing reads changed during this input (at most one per input, always last):
    /// routes may have moved. `RouteWatcher` turns the new view into `role-moved` events.
    case viewChanged
}


extension Heartbeat {
    /// Everything a peer should hear about at once: all but the sequence number and signals.
    func sameIdentity(as o: Heartbeat, ignoringIncarnation: Bool = false) -> Bool {
        status == o.status && draining == o.draining && address == o.address && roles == o.roles
            && backup == o.backup && services == o.services && (ignoringIncarnation || incarnation == o.incarnation)
    }
}

/// A token bucket per source IP (never the port) bounding the signature checks peer input can cost:
/// `capacity` checks at once, refilled at `refillPerSecond` of the injected clock; a failed check
/// costs `failureCost` tokens in all.
struct VerifyBudget {
    static let capacity = 256.0
    static let refillPerSecond = 256.0
    static let failureCost = 8.0
    static let maxSources = 4096

    struct Bucket { var tokens: Double; var at: Millis }
    private var buckets: [[UInt8]: Bucket] = [:]

    /// Forgets the buckets that have refilled: a full bucket says nothing an absent one does not,
    /// and a node that hears from thousands of addresses would otherwise keep one for each.
    mutating func prune(now: Millis) {
        buckets = buckets.filter { _, b in
            let (elapsed, overflow) = now.subtractingReportingOverflow(b.at)
            if overflow || elapsed > 3_600_000 { return false }   // `spend` refills those in full
            return b.tokens + Double(max(0, elapsed)) * Self.refillPerSecond / 1000 < Self.capacity
        }
    }

    /// Takes one token for a check from `ip`; false when none is left.
    mutating func spend(_ ip: [UInt8], now: Millis) -> Bool {
        if buckets[ip] == nil, buckets.count >= Self.maxSources { buckets.removeAll() }
        var b = buckets[ip] ?? Bucket(tokens: Self.capacity, at: now)
        let (elapsed, overflow) = now.subtractingReportingOverflow(b.at)
        if overflow || elapsed > 3_600_000 {
            b.tokens = Self.capacity
        } else if elapsed > 0 {
            b.tokens = min(Self.capacity, b.tokens + Double(elapsed) * Self.refillPerSecond / 1000)
        }
        b.at = max(b.at, now)
        defer { buckets[ip] = b }
        guard b.tokens >= 1 else { return false }
        b.tokens -= 1
        return true
    }

    /// The rest of a failed check's cost. The bucket may go into debt (down to −capacity), so a
    /// failure costs its full price even when it took the last token.
    mutating func penalise(_ ip: [UInt8]) {
        guard var b = buckets[ip] else { return }
        b.tokens = max(-Self.capacity, b.tokens - (Self.failureCost - 1))
        buckets[ip] = b
    }
}
