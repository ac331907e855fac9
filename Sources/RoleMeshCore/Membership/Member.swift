/// What one node knows about another member.
///
/// Every node holds one of these per member, so a mesh of N holds N² of them: the fields every
/// member has are inline and small (the signed record is a shared pointer, and the heartbeat is read
/// out of it), and what only members under watch or under suspicion need lives in `Rare`, allocated
/// while one of its fields is set. (48 bytes a record instead of ~840: a simulated 10,000-node mesh
/// then fits in memory.)
struct Member {
    // (Declared in this order so the struct packs into 48 bytes: Swift lays fields out as declared.)
    /// The newest heartbeat accepted from it, in its signed form for relaying.
    var entry: SignedEntry
    /// When a newer heartbeat last arrived, directly or relayed.
    var lastHeard: Millis
    /// When `state` last changed (dead and left members are forgotten after 24 h).
    var stateSince: Millis
    /// Source address of its last direct datagram whose heartbeat was fresh (accepted, so signed by
    /// it just now): where it is reached (protocol.md 7.5). Never moved by a duplicate, a replay or a
    /// relayed copy.
    var observed: WireAddress?
    var state: MemberState
    /// Known only second-hand: learned through a relay or a full-state sync and not heard since,
    /// directly or through a newer heartbeat. A death claim at its current incarnation is enough.
    var secondHand = false
    private var rare: RareBox?

    init(entry: SignedEntry, state: MemberState, lastHeard: Millis, stateSince: Millis) {
        precondition(entry.heartbeat != nil, "a member's record is a heartbeat")
        self.entry = entry; self.state = state; self.lastHeard = lastHeard; self.stateSince = stateSince
    }

    /// The newest heartbeat accepted from it (`entry`'s statement).
    var heartbeat: Heartbeat { entry.heartbeat! }

    /// What a member needs only while it is watched, suspected, accused, checked or dead.
    struct Rare {
        /// Set while this node itself suspects the member.
        var suspectSince: Millis?
        /// Signed claims of other nodes against it at its current incarnation (suspect or dead), by
        /// accuser: the words a death needs (protocol.md 6.3), passed on with a death.
        var words: [String: SignedEntry] = [:]
        /// The signed claim this node holds that the member is dead.
        var deathClaim: SignedEntry?
        var deathIncarnation: UInt64 = 0
        /// When this node last asked it directly because it had gone quiet (protocol.md 7.1).
        var probedAt: Millis?
        /// Since when this node watches it (protocol.md 7.1), while it does.
        var watchedSince: Millis?
        /// A dead claim received while the words against it were not yet enough (protocol.md 6.3).
        var deadWord: SignedEntry?
        /// The newest version it spoke at while final here (verified), so a replay earns no notice.
        var finalHeard: Version?
        /// The newest beat accepted from it: a beat must be newer to count (protocol.md 6.6).
        var lastBeat: Beat?
        /// When a beat ahead of its heartbeat last made us ask for that heartbeat (not `probedAt`,
        /// which says a silence was already asked about and would hold back the next question).
        var askedForHeartbeat: Millis?
        /// A check of it under way here (protocol.md 7.1, checks).
        var check: Membership.Check?
        /// Alive, but heard only through this member, not directly: not watched from here (7.1).
        var indirectVia: String?
        /// When an indirect member is checked again.
        var recheckAt: Millis?
        /// Nodes that asked us to check it (with the request, echoed in the answer), answered while
        /// `answerUntil` lasts; when we last asked it.
        var answerTo: [(asker: String, request: SignedEntry)] = []
        var answerUntil: Millis = 0
        var probeSentAt: Millis?

        var isEmpty: Bool {
            suspectSince == nil && words.isEmpty && deathClaim == nil && deathIncarnation == 0 && probedAt == nil
                && watchedSince == nil && deadWord == nil && finalHeard == nil && lastBeat == nil && askedForHeartbeat == nil
                && check == nil && indirectVia == nil && recheckAt == nil && answerTo.isEmpty && probeSentAt == nil
        }
    }
    final class RareBox {
        var fields: Rare
        init(_ fields: Rare) { self.fields = fields }
    }

    /// Copy-on-write for the rare fields; the box goes when they are all back at their defaults.
    private mutating func setRare(_ change: (inout Rare) -> Void) {
        var fields = rare?.fields ?? Rare()
        change(&fields)
        if fields.isEmpty {
            rare = nil
        } else if rare != nil, isKnownUniquelyReferenced(&rare!) {
            rare!.fields = fields
        } else {
            rare = RareBox(fields)
        }
    }

    var suspectSince: Millis? { get { rare?.fields.suspectSince } set { setRare { $0.suspectSince = newValue } } }
    var words: [String: SignedEntry] { get { rare?.fields.words ?? [:] } set { setRare { $0.words = newValue } } }
    var deathClaim: SignedEntry? { get { rare?.fields.deathClaim } set { setRare { $0.deathClaim = newValue } } }
    var deathIncarnation: UInt64 { get { rare?.fields.deathIncarnation ?? 0 } set { setRare { $0.deathIncarnation = newValue } } }
    var probedAt: Millis? { get { rare?.fields.probedAt } set { setRare { $0.probedAt = newValue } } }
    var watchedSince: Millis? { get { rare?.fields.watchedSince } set { setRare { $0.watchedSince = newValue } } }
    var deadWord: SignedEntry? { get { rare?.fields.deadWord } set { setRare { $0.deadWord = newValue } } }
    var finalHeard: Version? { get { rare?.fields.finalHeard } set { setRare { $0.finalHeard = newValue } } }
    var lastBeat: Beat? { get { rare?.fields.lastBeat } set { setRare { $0.lastBeat = newValue } } }
    var askedForHeartbeat: Millis? { get { rare?.fields.askedForHeartbeat } set { setRare { $0.askedForHeartbeat = newValue } } }
    var check: Membership.Check? { get { rare?.fields.check } set { setRare { $0.check = newValue } } }
    var indirectVia: String? { get { rare?.fields.indirectVia } set { setRare { $0.indirectVia = newValue } } }
    var recheckAt: Millis? { get { rare?.fields.recheckAt } set { setRare { $0.recheckAt = newValue } } }
    var answerTo: [(asker: String, request: SignedEntry)] { get { rare?.fields.answerTo ?? [] } set { setRare { $0.answerTo = newValue } } }
    var answerUntil: Millis { get { rare?.fields.answerUntil ?? 0 } set { setRare { $0.answerUntil = newValue } } }
    var probeSentAt: Millis? { get { rare?.fields.probeSentAt } set { setRare { $0.probeSentAt = newValue } } }

    /// Addresses follow devices: the newest authenticated direct source wins; the announced address
    /// is used only until something arrived from the member directly.
    var address: WireAddress { observed ?? heartbeat.address }

    /// Dead and left are final for an incarnation: only a higher incarnation revives.
    var finalIncarnation: UInt64? {
        switch state {
        case .dead: return deathIncarnation
        case .left: return heartbeat.incarnation
        default: return nil
        }
    }

    var isReachable: Bool { state == .alive || state == .suspect }
}

/// A member as `status` shows it.
public struct MemberSnapshot: Equatable, Sendable {
    public var name: String
    public var address: WireAddress
    public var state: MemberState
    public var incarnation: UInt64
    public var roles: [String]
    public var backup: [String: Int]
    public var draining: Bool
    public var signals: Signals
    public var lastHeardMs: Int64
    public var isSelf: Bool
    /// Known only through others (a relay, a full-state sync) and not heard since: its record may
    /// be old news (a restarted node learning a dead member), so routing does not send work to it yet.
    public var secondHand: Bool
    /// Alive, but this node hears it only through this other member (connectivity that is not
    /// transitive): `status` shows `"reach": "via NODE"`.
    public var via: String?
    /// Its heartbeat's digest (field 24); nil from a node of the release before it (0.1.0).
    public var digest: [UInt8]?
    /// The services it offers and their health (heartbeat field 25).
    public var services: [OfferedService] = []

    public init(name: String, address: WireAddress, state: MemberState, incarnation: UInt64, roles: [String],
                backup: [String: Int], draining: Bool, signals: Signals, lastHeardMs: Int64, isSelf: Bool,
                secondHand: Bool = false, via: String? = nil, digest: [UInt8]? = nil, services: [OfferedService] = []) {
        self.name = name; self.address = address; self.state = state; self.incarnation = incarnation
        self.roles = roles; self.backup = backup; self.draining = draining; self.signals = signals
        self.lastHeardMs = lastHeardMs; self.isSelf = isSelf; self.secondHand = secondHand; self.via = via
        self.digest = digest
        self.services = services
    }

    /// A member of the release before this one (its heartbeat has no digest): the task channel
    /// speaks that release's handshake with it (protocol.md, "Task channel", version rule).
    public var runsPreviousRelease: Bool { !isSelf && digest == nil && !secondHand && (state == .alive || state == .suspect) }
}
