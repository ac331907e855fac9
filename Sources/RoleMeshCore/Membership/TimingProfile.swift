/// Milliseconds of the injected clock. The agent uses a boot-time clock that keeps counting
/// while the machine sleeps; the simulation uses virtual time.
public typealias Millis = Int64

/// How fast a node beats, suspects and gives up. Documented in README.md ("Timing profiles").
public struct TimingProfile: Equatable, Sendable {
    public var name: String
    /// How often the core is ticked; the granularity of every timer below.
    public var tick: Millis
    /// A new signed heartbeat goes out this often.
    public var heartbeat: Millis
    /// Silence after which this node suspects a member and says so.
    public var suspectAfter: Millis
    /// How long a suspicion lasts, with enough confirmations from others, before `dead`.
    public var suspicionTimeout: Millis
    /// Other nodes that must also suspect a member before it is declared dead
    /// (fewer when fewer witnesses are alive).
    public var confirmations: Int
    /// Heartbeats go to every member up to this many; beyond it, to a random subset.
    public var maxFanout: Int
    /// Full-state exchange with one random peer, so partitions heal.
    public var syncInterval: Millis
    /// Dead members are contacted again this often (a healed partition, a returning laptop).
    public var deadRetry: Millis
    /// While alone, seeds and remembered peers are contacted this often.
    public var joinRetry: Millis
    /// A gap between two ticks longer than this means our own process was suspended.
    public var pauseThreshold: Millis

    public static let fast = TimingProfile(
        name: "fast", tick: 50, heartbeat: 100, suspectAfter: 400, suspicionTimeout: 200,
        confirmations: 2, maxFanout: 64, syncInterval: 2_000, deadRetry: 2_000, joinRetry: 500,
        pauseThreshold: 400)
    public static let lan = TimingProfile(
        name: "lan", tick: 100, heartbeat: 400, suspectAfter: 1_600, suspicionTimeout: 400,
        confirmations: 2, maxFanout: 64, syncInterval: 10_000, deadRetry: 10_000, joinRetry: 2_000,
        pauseThreshold: 1_600)
    public static let travel = TimingProfile(
        name: "travel", tick: 500, heartbeat: 2_000, suspectAfter: 8_000, suspicionTimeout: 4_000,
        confirmations: 2, maxFanout: 32, syncInterval: 30_000, deadRetry: 30_000, joinRetry: 10_000,
        pauseThreshold: 8_000)

    /// How long running tasks may finish on leave: ~12 suspect periods, capped at 30 s (fast: 5 s).
    public var leaveGrace: Millis { min(30_000, suspectAfter * 25 / 2) }

    public static let all = [fast, lan, travel]
    public static func named(_ name: String) -> TimingProfile? { all.first { $0.name == name } }

    /// Past `maxFanout` members a node hears each other only through a sample and relays,
    /// so silence is expected to last longer: scale the suspicion threshold with N.
    public func suspectAfter(memberCount n: Int) -> Millis {
        n - 1 <= maxFanout ? suspectAfter : suspectAfter * Millis((n - 1 + maxFanout - 1) / maxFanout)
    }
}
