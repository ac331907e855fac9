import RoleMeshPlatform
import RoleMeshCore

/// Every timer of the agent, in one place. An idle agent's CPU goes on waking up, not on work
/// (issue 9: ≤ 0.3 % of a core), so it wakes only when something is due:
/// - the core is ticked at its own `nextDeadline()` (a heartbeat, a silence limit, a sync), asked
///   again after every input, instead of every `tick` ms; on `lan` that is about one wakeup per
///   heartbeat instead of 4.5;
/// - the slow chores (keys/, schedules, peers, slot exchange, address look, idle probe) share that
///   same timer: one that falls due close to a core tick runs on it (a little early or late), so on
///   `lan` they cost no wakeup of their own (they had their own one-second round: 1 wakeup in 11).
/// One timer also means one place that decides when the agent next wakes.
extension Agent {
    /// How far from its period a chore may run to share a wakeup: a quarter of its period, at most
    /// this. On `lan` (a core tick at least every 450 ms) a one-second chore always finds a tick
    /// within its ±250 ms.
    public static let choreSlackMs: Millis = 250
    /// The least time between two probes of the signals (see `tickCore`).
    static let signalProbeMs: Millis = 1_000

    // MARK: - The core

    /// Ticks the core now, runs the chores that are due, then sleeps until the next deadline of either.
    func tickCore() {
        coreTickAt = .max
        lastCoreTick = Clock.now()
        if !cutOff {     // see FollowAddresses.swift
            let now = Clock.now()
            // Signals are probed on a tick that beats (ticks come at least that often), so a change
            // rides on the next heartbeat without a wakeup of its own; at most about once a second
            // (every second beat on `lan`): a probe reads a dozen /proc and /sys files, and figures
            // are announced at most every few seconds anyway (protocol.md 7.2).
            let every = max(core.profile.heartbeat, Self.signalProbeMs)
            if now - lastSignalProbe >= every - core.profile.heartbeat / 4 {
                lastSignalProbe = now
                refreshSignals()
            }
            perform(node.tick(now: now))
            unknownKeyLog.logStrangers(now: now)
        }
        runChores()
        armCoreTick()
    }

    /// (Re)arms the timer for the core's deadline or the latest a chore may run, whichever is
    /// sooner, if that is sooner than the one armed. Called after every input to the core
    /// (`perform`), since an input can bring a deadline forward; a deadline that moved later just
    /// costs one tick that finds nothing to do.
    func armCoreTick() {
        guard !core.hasLeft, let timer = coreTimer else { return }
        let now = Clock.now()
        // Cut off, the core is not ticked (its deadlines stay past): look again a heartbeat later.
        // Never twice within half a `tick`: a deadline that stayed in the past must not spin.
        var at = cutOff ? now + core.profile.heartbeat : core.nextDeadline()
        at = min(at, choresLatest)
        at = max(at, lastCoreTick + core.profile.tick / 2, now)
        guard at < coreTickAt else { return }
        coreTickAt = at
        timer.schedule(deadline: .now() + .milliseconds(Int(at - now)), repeating: .never,
                       leeway: .milliseconds(Int(max(1, core.profile.tick / 10))))
    }

    func startCoreTicks() {
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.setEventHandler { [unowned self] in self.assumeIsolated { $0.tickCore() } }
        coreTimer = t
        timers.append(t)
        t.resume()
        armCoreTick()
    }

    // MARK: - Chores

    /// Runs `body` about every `ms` on the core's timer, the first time after `first` ms (default `ms`).
    func every(ms: Int, first: Int? = nil, _ body: @escaping @Sendable (isolated Agent) -> Void) {
        chores.append(Chore(timing: ChoreTiming(every: Millis(ms), due: Clock.now() + Millis(first ?? ms)), run: body))
        armCoreTick()
    }

    /// The latest time the next chore may run: its due time plus its slack.
    var choresLatest: Millis { chores.map(\.timing.latest).min() ?? .max }

    func runChores() {
        // Within its slack before its due time counts: it shares this wakeup. Its next due time
        // stays on its own grid (early or late runs do not drift it), and a late one does not bunch up.
        let now = Clock.now()
        for i in chores.indices where chores[i].timing.isDue(at: now) {
            chores[i].timing.ran(at: now)
            chores[i].run(self)
        }
    }
}

/// One chore on the core's timer: when it runs, and what.
struct Chore {
    var timing: ChoreTiming
    var run: @Sendable (isolated Agent) -> Void
}

/// When a chore runs: about every `every` ms, anywhere within `slack` of its due time, so that it
/// can share a wakeup with a core tick.
public struct ChoreTiming: Equatable, Sendable {
    public let every: Millis
    public private(set) var due: Millis
    public var slack: Millis { min(every / 4, Agent.choreSlackMs) }

    public init(every: Millis, due: Millis) { self.every = every; self.due = due }

    /// The latest it may run.
    public var latest: Millis { due + slack }

    public func isDue(at now: Millis) -> Bool { now + slack >= due }

    /// The next due time stays on the chore's own grid whether this run was early or late (no
    /// drift); after a long stop (a suspended laptop) it runs once, then a period later.
    public mutating func ran(at now: Millis) {
        due = max(due + every, now + every - slack)
    }
}
