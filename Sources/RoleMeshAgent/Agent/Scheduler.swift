import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// Schedules, wired into the agent: every second each schedule of this node is planned
/// (`SchedulePlanner`, from the view and the slot records); a slot that is due here starts as a
/// background run submitted to this node itself. Files and the idle probe are read off the queue.
extension Agent {
    func startSchedules() {
        let dir = self.dir, me = name, keys = keyRing.trusted, journal = self.journal
        spawn {
            let (stored, kept) = await offQueue { () -> (Int, [SlotRun]) in
                let all = SlotStore.load(dir)
                return (all.count, SlotStore.cleaned(all, me: me, keys: keys) { journal.record($0) != nil })
            }
            if kept.count < stored { Log.notice("state/slots.json: dropped \(stored - kept.count) records neither signed by the node that ran them nor of a task run here") }
            for r in kept { background.ledger.merge(signedOwn(r)) }
            // Runs of ours that were going on went with the previous agent.
            background.ledger.markLost(node: name, at: wallNow, sign: keyRing.keyPair.sign)
            saveLedger()
        }
        reloadSchedules()
        every(ms: 3_000) { $0.reloadSchedules() }
        every(ms: 1_000) { $0.refreshIdle() }
        every(ms: 1_000) { $0.tickSchedules() }
        every(ms: 2_000) { $0.exchangeWhereDigestsDiffer() }
    }

    /// Seconds since the epoch (wall clock: slots are calendar periods).
    nonisolated var wallNow: Int64 { Int64(Date().timeIntervalSince1970) }

    /// Minutes since local midnight on this node (`TZ` applies).
    nonisolated var localMinute: Int {
        let d = Date()
        let t = Int64(d.timeIntervalSince1970) + Int64(TimeZone.current.secondsFromGMT(for: d))
        return Int((t % 86_400 + 86_400) % 86_400 / 60)
    }

    /// Nothing fires until this node has heard the mesh's slot records, so a slot another node ran
    /// is not run again: as soon as every member up in its view was heard from directly and one
    /// exchange of records with each has ended (usually well under a second), at the latest two
    /// sync intervals after start (40 s on `lan`; a node that hears nobody waits that long).
    var settled: Bool {
        let up = Clock.now() - startedAt
        if up >= settleLimit { return true }
        guard up >= Self.settleAtLeast else { return false }
        let view = core.snapshot(now: Clock.now())
        let peers = view.filter { !$0.isSelf && ($0.state == .alive || $0.state == .suspect) }
        guard !peers.isEmpty, peers.allSatisfy({ !$0.secondHand && background.greeted.contains($0.name) }) else { return false }
        return background.exchanging.isDisjoint(with: background.greeted) && background.again.isEmpty
    }

    /// Two sync intervals: when schedules fire at the latest after a start.
    var settleLimit: Millis { 2 * core.profile.syncInterval }
    static let settleAtLeast: Millis = 1_000

    /// What a due slot waits for before this node has settled, and until when at the latest.
    var settlingReason: String {
        let left = max(0, settleLimit - (Clock.now() - startedAt))
        return "starting on \(name) once it has heard which slots the mesh ran (from every member up, by \(Clock.rfc3339(Date().addingTimeInterval(Double(left) / 1000))) at the latest)"
    }

    func reloadSchedules() {
        guard !background.readingFiles else { return }
        background.readingFiles = true
        let dir = self.dir
        spawn {
            let (schedules, errors) = await offQueue { ScheduleFiles.load(dir) }
            background.readingFiles = false
            for (file, e) in errors where background.fileErrors[file] != e { Log.warn("\(e); its schedules are not run") }
            let changed = schedules != background.schedules
            background.schedules = schedules
            background.fileErrors = errors
            if changed { background.digestDirty = true }
            if changed { shareSlots() }     // others list this node's schedules soon, not at the next exchange
        }
    }

    /// The idle probe reads /proc/stat and, on a machine with a seat, runs `loginctl` twice: every
    /// second only while something here depends on it soon (a background run checking its
    /// conditions, a schedule of this node with an idle condition, no reading yet), otherwise
    /// every `idleSlowMs`. Being idle takes minutes (logind's IdleHint, a schedule's `idle`), so
    /// others see it at most that much later; becoming busy stops a run here within a second.
    static let idleSlowMs: Millis = 10_000

    var idleWanted: Bool {
        background.idle == nil || Clock.now() - background.conditionsAskedAt < 2_000
            || background.schedules.contains { $0.idle != nil }
    }

    func refreshIdle() {
        guard !background.probingIdle, idleWanted || Clock.now() - background.idleReadAt >= Self.idleSlowMs else { return }
        background.probingIdle = true
        background.idleReadAt = Clock.now()
        let probe = idleProbe
        spawn {
            let r = await offQueue { probe.read() }
            background.probingIdle = false
            background.idle = r.idle
            background.idleSeconds = r.seconds
            applySignals()
        }
    }

    func plan(_ s: Schedule, force: Bool = false) -> SlotPlan {
        SchedulePlanner.plan(s, now: wallNow, localMinute: localMinute, me: name, view: viewWithOwnIdle(),
                             ledger: background.ledger, active: background.active, force: force, grants: grants)
    }

    /// The view, with this node's own idle reading to the second: a schedule's `idle = "20s"` is
    /// judged by the node that runs it on what it reads itself, not on the whole minutes it announces.
    func viewWithOwnIdle() -> [MemberSnapshot] {
        var view = core.snapshot(now: Clock.now())
        if let i = view.firstIndex(where: \.isSelf) {
            let own = ownSignals()
            view[i].signals.idle = own.idle
            view[i].signals.idleSeconds = own.idleSeconds
        }
        return view
    }

    /// Slots this node starts by itself are spaced this far apart, so a laptop waking with several
    /// schedules due does not start them all at once.
    static let fireSpacing: Millis = 2_000

    func tickSchedules() {
        guard !leaving, settled, Clock.now() - background.lastFire >= Self.fireSpacing else { return }
        for s in background.schedules {
            let p = plan(s)
            if p.status == .due {
                background.lastFire = Clock.now()
                _ = fire(s, p, on: name, force: false)
                return
            }
        }
    }

    /// Starts the slot's run on `node` (this node, or the route for `schedules run`); returns its task id.
    func fire(_ s: Schedule, _ p: SlotPlan, on node: String, force: Bool) -> String {
        var sub = Submission(SubmitRequest(role: s.role, task: s.task, args: s.args, heavy: s.heavy, to: node, detach: true))
        sub.schedule = s.id; sub.slot = p.slot; sub.runID = p.runID; sub.force = force
        background.ledger.merge(signedOwn(SlotRun(role: s.role, task: s.task, slot: p.slot, id: sub.id, runID: p.runID, node: node,
                                                  state: .running, started: wallNow)))
        background.active.insert(sub.id)
        Log.info("schedule \(s.id): slot \(Slots.rfc3339(p.slot)) starts on \(node) (run \(p.runID))",
                 context: ["task": sub.id, "role": s.role])
        saveLedger()
        shareSlots()
        let submitter = self.submitter, journal = self.journal, id = sub.id, run = sub
        spawn {
            await submitter.run(run, sink: nil)
            let record = await offQueue { journal.record(id) }
            runEnded(id, record)
        }
        return sub.id
    }

    /// A slot's attempt ended: it ran (done or failed, whatever its exit code) or it did not
    /// (lost, or refused before it started), which lets the slot run again.
    func runEnded(_ id: String, _ r: TaskRecord?) {
        background.active.remove(id)
        background.paused[id] = nil
        guard var run = background.ledger.runs[id] else { return }
        let ran = r?.started != nil && [.done, .failed, .cancelled].contains(r?.state)
        run.state = !ran ? .lost : (r?.state == .done ? .done : .failed)
        run.exitCode = r?.exitCode
        run.finished = wallNow
        run.signature = nil
        background.ledger.merge(signedOwn(run))
        saveLedger()
        shareSlots()
    }

    /// Why a background run here must pause now, or nil: its schedule's conditions, or for
    /// `submit --when idle` (no schedule) being idle; judged on this node's own signals.
    func backgroundBlocker(schedule: String?) -> String? {
        background.conditionsAskedAt = Clock.now()     // a run here reads idle: probe it often
        let signals = ownSignals()
        if let id = schedule, let s = background.schedules.first(where: { $0.id == id }) {
            return SchedulePlanner.blocker(s, signals: signals, localMinute: localMinute, node: name)
        }
        return SchedulePlanner.idleBlocker(need: 0, signals: signals, node: name)
    }

    func schedulesReply() -> SchedulesReply {
        let rows = background.known.map { s -> ScheduleStatus in
            let p = plan(s)
            var state = "waiting", reason: String?
            switch p.status {
            case .waiting(let why): reason = why
            case .due: reason = settled ? "starting on \(name)" : settlingReason
            case .done: state = "done"
            case .running(let node):
                state = "running"
                let mine = background.ledger.runs(of: s.id, slot: p.slot).last { $0.node == node && $0.state == .running }
                if node == name, let id = mine?.id, let why = background.paused[id] { state = "paused"; reason = why }
                // Only the node running it knows whether the run is paused now: say whose view this is.
                if node != name { reason = "on \(node), as its slot record says; whether it is paused now, `rolemesh schedules` on \(node) says" }
            }
            let last = background.ledger.last(of: s.id).map {
                ScheduleStatus.LastRun(id: $0.id, node: $0.node, exitCode: $0.exitCode, finished: $0.finished.map(Slots.rfc3339))
            }
            return ScheduleStatus(role: s.role, task: s.task, every: DurationText.describe(s.every), state: state, reason: reason,
                                  node: p.node, slot: Slots.rfc3339(p.slot), nextSlot: Slots.rfc3339(p.nextSlot), last: last)
        }
        let errors = background.fileErrors.sorted { $0.key < $1.key }.map { ScheduleFileError(file: $0.key, error: $0.value) }
        return SchedulesReply(schedules: rows, errors: errors)
    }

    /// `schedules run ROLE/TASK`: the current slot now, on its route, whatever its conditions.
    func runScheduleNow(role: String, task: String, _ conn: ControlConnection) {
        guard let s = background.known.first(where: { $0.role == role && $0.task == task }) else {
            let bad = background.fileErrors["roles/\(role)/schedule.toml"].map { " (\($0))" } ?? ""
            return conn.fail(MeshError(MeshError.usage, "no schedule \(role)/\(task) is known here: no [\(task)] in roles/\(role)/schedule.toml on this node or the nodes it has heard from\(bad)"))
        }
        let p = plan(s, force: true)
        if case .running(let node) = p.status, let r = background.ledger.runs(of: s.id, slot: p.slot).last(where: { $0.state == .running }) {
            Log.info("schedules run \(s.id): the slot is already running on \(node)")
            return conn.reply(SubmittedReply(id: r.id))
        }
        guard let node = p.node else {
            return conn.fail(MeshError(MeshError.unavailable, Routing.route(s.role, heavy: s.heavy, members: core.snapshot(now: Clock.now()), grants: grants).failureSentence))
        }
        conn.reply(SubmittedReply(id: fire(s, p, on: node, force: true)))
    }
}
