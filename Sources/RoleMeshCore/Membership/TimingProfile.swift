/// Milliseconds of the injected clock. The agent uses a boot-time clock that keeps counting
/// while the machine sleeps; the simulation uses virtual time.
public typealias Millis = Int64

/// How fast a node beats, suspects and gives up. Documented in README.md ("Timing profiles").
public struct TimingProfile: Equatable, Sendable {
    public var name: String
    /// How often the core is ticked, at most (the agent skips ticks that would find nothing due:
    /// `nextDeadline()`); the granularity of every timer below.
    public var tick: Millis
    /// A new signed heartbeat goes out this often.
    public var heartbeat: Millis
    /// Silence after which this node suspects a member and says so.
    public var suspectAfter: Millis
    /// How long a suspicion lasts, with enough confirmations from others, before `dead`.
    public var suspicionTimeout: Millis
    /// Other watchers of a member that must also suspect it before this node declares it dead
    /// (fewer when it has fewer watchers).
    public var confirmations: Int
    /// K: how many nodes watch each node. A node sends its heartbeat to its K watchers only, so
    /// steady-state traffic per node is K datagrams per `heartbeat` whatever N is (protocol.md 7).
    public var watchers: Int
    /// News (a state change, an accusation, new roles) is pushed at once to this many random members
    /// besides riding on heartbeats, so it spreads in O(log N) hops instead of along the rings.
    public var pushFanout: Int
    /// Full-state exchange with one random peer, so partitions heal; scaled with N (`syncEvery`).
    public var syncInterval: Millis
    /// Dead members are contacted again this often (a healed partition, a returning laptop).
    public var deadRetry: Millis
    /// While alone, seeds and remembered peers are contacted this often.
    public var joinRetry: Millis
    /// A gap between two ticks longer than this means our own process was suspended.
    public var pauseThreshold: Millis
    /// Signals that drift without a meaningful change are announced at the latest after this,
    /// scaled with N (`signalFloor(memberCount:)`); meaningful changes go out at the next beat.
    public var signalFloor: Millis

    public static let fast = TimingProfile(
        name: "fast", tick: 50, heartbeat: 100, suspectAfter: 400, suspicionTimeout: 200,
        confirmations: 2, watchers: 2, pushFanout: 3, syncInterval: 2_000, deadRetry: 2_000, joinRetry: 500,
        pauseThreshold: 400, signalFloor: 10_000)
    public static let lan = TimingProfile(
        name: "lan", tick: 100, heartbeat: 450, suspectAfter: 1_400, suspicionTimeout: 300,
        confirmations: 2, watchers: 2, pushFanout: 3, syncInterval: 20_000, deadRetry: 10_000, joinRetry: 2_000,
        pauseThreshold: 1_400, signalFloor: 60_000)
    public static let travel = TimingProfile(
        name: "travel", tick: 500, heartbeat: 2_000, suspectAfter: 8_000, suspicionTimeout: 4_000,
        confirmations: 2, watchers: 2, pushFanout: 3, syncInterval: 60_000, deadRetry: 30_000, joinRetry: 10_000,
        pauseThreshold: 8_000, signalFloor: 300_000)

    /// Between signed heartbeats a node sends its watchers small unsigned beats (`Beat`); a round of
    /// signed ones goes out at least this often anyway (20 beats: `lan` 9 s), so an address behind a
    /// NAT that rebinds is followed within it (protocol.md 7.5).
    public var refreshEvery: Millis { heartbeat * 20 }

    /// How long running tasks may finish on leave: ~12 suspect periods, capped at 30 s (fast: 5 s).
    public var leaveGrace: Millis { min(30_000, suspectAfter * 25 / 2) }

    public static let all = [fast, lan, travel]
    public static func named(_ name: String) -> TimingProfile? { all.first { $0.name == name } }

    /// Constant cost per node: a full-state sync costs about N/8 datagrams each way, so with more
    /// members each node syncs less often (the mesh as a whole still syncs N times per interval).
    public func syncEvery(memberCount n: Int) -> Millis { syncInterval * Millis(max(1, (n + 9) / 10)) }
    /// The same for the signal floor: every node's re-announcement reaches every other node.
    public func signalFloor(memberCount n: Int) -> Millis { signalFloor * Millis(max(1, (n + 9) / 10)) }
    /// Meaningful changes of figures (not flags) are announced at most this often, for the same
    /// reason: each announcement costs every node K forwards.
    public func signalMinInterval(memberCount n: Int) -> Millis { signalFloor(memberCount: n) / 6 }
}
