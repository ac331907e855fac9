import Dispatch
import RoleMeshCore

/// Every timer of the agent, in one place. An idle agent's CPU goes on waking up, not on work
/// (issue 9: ≤ 0.3 % of a core), so it wakes only when something is due:
/// - the core is ticked at its own `nextDeadline()` (a heartbeat, a silence limit, a sync), asked
///   again after every input, instead of every `tick` ms; on `lan` that is about one wakeup per
///   heartbeat instead of 4.5;
/// - the slow chores (keys/, schedules, peers, slot exchange, address look, idle probe) share one
///   one-second round instead of a timer each; a chore runs on the first round after its period.
extension Agent {
    /// The chores' round: the finest cadence any of them needs (the idle probe while a background
    /// run depends on it, and planning schedules).
    static let choreRoundMs = 1_000
    /// The least time between two probes of the signals (see `tickCore`).
    static let signalProbeMs: Millis = 1_000

    // MARK: - The core

    /// Ticks the core now, then sleeps until its next deadline.
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
            perform(core.tick(now: now))
            logStrangers()
        }
        armCoreTick()
    }

    /// (Re)arms the core's timer for its deadline, if that is sooner than the one armed. Called after
    /// every input to the core (`perform`), since an input can bring a deadline forward; a deadline
    /// that moved later just costs one tick that finds nothing to do.
    func armCoreTick() {
        guard !core.hasLeft, let timer = coreTimer else { return }
        let now = Clock.now()
        // Cut off, the core is not ticked (its deadlines stay past): look again a heartbeat later.
        // Never twice within half a `tick`: a deadline that stayed in the past must not spin.
        var at = cutOff ? now + core.profile.heartbeat : core.nextDeadline()
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

    /// Runs `body` about every `ms` (rounded up to whole rounds) on the chores' round, the first
    /// time after `first` ms (default `ms`).
    func every(ms: Int, first: Int? = nil, _ body: @escaping @Sendable (isolated Agent) -> Void) {
        chores.append(Chore(every: Millis(ms), due: Clock.now() + Millis(first ?? ms), run: body))
        guard choreTimer == nil else { return }
        let t = DispatchSource.makeTimerSource(queue: queue)
        let round = Self.choreRoundMs
        // Leeway: the chores tolerate a late round, and a wide one lets the kernel batch wakeups.
        t.schedule(deadline: .now() + .milliseconds(round), repeating: .milliseconds(round), leeway: .milliseconds(round / 10))
        t.setEventHandler { [unowned self] in self.assumeIsolated { $0.runChores() } }
        choreTimer = t
        timers.append(t)
        t.resume()
    }

    func runChores() {
        // Due a little early counts: a round that fires within its leeway before a period ends
        // would otherwise push the chore a whole round later. A late round does not bunch up.
        let now = Clock.now(), slack = Millis(Self.choreRoundMs / 10)
        for i in chores.indices where now + slack >= chores[i].due {
            chores[i].due = max(chores[i].due, now) + chores[i].every
            chores[i].run(self)
        }
    }
}

/// One chore on the round: what to run, how often, and when next.
struct Chore {
    var every: Millis
    var due: Millis
    var run: @Sendable (isolated Agent) -> Void
}
