/// What one node knows about another member.
struct Member {
    /// The newest heartbeat accepted from it, and its signed form for relaying.
    var heartbeat: Heartbeat
    var entry: SignedEntry
    var state: MemberState
    /// When a newer heartbeat last arrived, directly or relayed.
    var lastHeard: Millis
    /// When `state` last changed (dead and left members are forgotten after 24 h).
    var stateSince: Millis
    /// Set while this node itself suspects the member.
    var suspectSince: Millis?
    /// Other nodes that accused it of being suspect at its current incarnation.
    var accusers: Set<String> = []
    /// The signed claim this node holds that the member is dead.
    var deathClaim: SignedEntry?
    var deathIncarnation: UInt64 = 0
    /// When this node last asked it directly because it had gone quiet (protocol.md 7.1).
    var probedAt: Millis?
    /// Since when this node watches it (protocol.md 7.1), while it does.
    var watchedSince: Millis?
    /// A dead claim received while the words against it were not yet enough (protocol.md 6.3).
    var deadWord: SignedEntry?
    /// Source address of its last direct datagram whose heartbeat was fresh (accepted, so signed by
    /// it just now): where it is reached (protocol.md 7.5). Never moved by a duplicate, a replay or a
    /// relayed copy.
    var observed: WireAddress?
    /// Known only second-hand: learned through a relay or a full-state sync and not heard since,
    /// directly or through a newer heartbeat. A death claim at its current incarnation is enough.
    var secondHand = false
    /// The newest version it spoke at while final here (verified), so a replay earns no notice.
    var finalHeard: Version?
    /// The newest beat accepted from it: a beat must be newer to count (protocol.md 6.6).
    var lastBeat: Beat?
    /// When a beat ahead of its heartbeat last made us ask for that heartbeat (not `probedAt`,
    /// which says a silence was already asked about and would hold back the next question).
    var askedForHeartbeat: Millis?

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

    public init(name: String, address: WireAddress, state: MemberState, incarnation: UInt64, roles: [String],
                backup: [String: Int], draining: Bool, signals: Signals, lastHeardMs: Int64, isSelf: Bool,
                secondHand: Bool = false) {
        self.name = name; self.address = address; self.state = state; self.incarnation = incarnation
        self.roles = roles; self.backup = backup; self.draining = draining; self.signals = signals
        self.lastHeardMs = lastHeardMs; self.isSelf = isSelf; self.secondHand = secondHand
    }
}
