import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// What makes a run a background run (a schedule's slot, or `submit --when idle`): its lowest
/// priority (`BackgroundPriority`), its pause rule and its `run-*` events.
struct BackgroundRun: Sendable {
    let role: String
    let task: String
    /// `ROLE/TASK` of the schedule; nil for `--when idle`.
    let schedule: String?
    let slot: Int64?
    let runID: String?
    /// `schedules run`: conditions are ignored, so it is never paused.
    let force: Bool

    init?(_ req: RunRequest) {
        guard let bg = req.background else { return nil }
        role = req.role; task = req.task
        schedule = bg.schedule.flatMap { $0.isEmpty ? nil : $0 }
        slot = schedule == nil ? nil : bg.slot.map { max(0, $0) }
        runID = schedule == nil ? nil : bg.runID.flatMap { NodeName.isValid($0, maxLength: 64) ? $0 : nil }
        force = bg.force
    }

    var slotText: String? { slot.map(Slots.rfc3339) }

    var environment: [(String, String)] {
        guard let runID, let slotText else { return [] }
        return [("ROLEMESH_RUN_ID", runID), ("ROLEMESH_SLOT", slotText)]
    }

    func mark(_ r: inout TaskRecord) {
        guard let schedule else { return }
        r.schedule = schedule; r.slot = slotText; r.runID = runID
    }
}

extension Executor {
    /// How often a background run's conditions are looked at: well inside the 2 s the contract allows.
    static let conditionCheck: Duration = .milliseconds(250)

    /// While `r` runs: SIGSTOP to its process group as soon as its conditions stop holding on
    /// this node, SIGCONT once they hold again; the journal shows `paused` and why.
    func keepToConditions(_ r: Running, _ bg: BackgroundRun) async {
        guard !bg.force else { return }
        while !r.exited, !r.finished {
            let why = await link.agent?.backgroundBlocker(schedule: bg.schedule)
            if r.exited || r.finished || r.cancelled { break }
            if let why, !r.paused {
                kill(-r.pid, SIGSTOP)
                r.pausedWhy = why
                journal.update(r.id) { $0.state = .paused; $0.reason = why }
                Log.info("background run paused: \(why)", context: ["task": r.id, "role": bg.role, "name": bg.task])
                await announce("run-paused", bg, id: r.id, reason: why)
            } else if let why, r.pausedWhy != why {
                r.pausedWhy = why      // still paused, for another reason now
                journal.update(r.id) { $0.reason = why }
            } else if why == nil, r.paused {
                kill(-r.pid, SIGCONT)
                r.pausedWhy = nil
                journal.update(r.id) { $0.state = .running; $0.reason = nil }
                Log.info("background run resumed", context: ["task": r.id, "role": bg.role, "name": bg.task])
                await announce("run-resumed", bg, id: r.id)
            }
            try? await Task.sleep(for: Self.conditionCheck)
        }
    }

    func announce(_ event: String, _ bg: BackgroundRun, id: String, reason: String? = nil, exitCode: Int? = nil) async {
        let e = WatchEvent.run(event, node: me, time: Clock.rfc3339(), role: bg.role, task: bg.task, slot: bg.slotText,
                               id: id, reason: reason, exitCode: exitCode)
        await link.agent?.publish(e)
        // A slot's run here, whoever sent it: this node records it and signs the record.
        if bg.schedule != nil, event == "run-started" || event == "run-finished" {
            await link.agent?.noteSlotRunHere(role: bg.role, task: bg.task, slot: bg.slot, runID: bg.runID, id: id,
                                              exitCode: event == "run-finished" ? exitCode ?? 1 : nil)
        }
    }

    /// `slots`: the peer's records and schedules in, ours back (protocol.md, "Slot records").
    func exchangeSlots(_ theirs: SlotsPayload, on ch: SecureChannel) async {
        guard let agent = link.agent else { return }
        let ours = await agent.mergeSlots(theirs, from: ch.peer)
        try? await ch.send(Frame(.slots, encoding: ours))
    }
}

/// A `slots` frame: `{"records": [...], "schedules": [...], "trust": [...]}` (also `state/slots.json`,
/// with records only).
struct SlotsPayload: Codable, Sendable {
    var records: [SlotRun]
    /// The sender's own schedules (from its files).
    var schedules: [ScheduleDefinition]?
    /// Every trust statement the sender holds (Trust/TrustRelay.swift).
    var trust: [TrustStatement]?

    init(records: [SlotRun], schedules: [ScheduleDefinition]? = nil, trust: [TrustStatement]? = nil) {
        self.records = records; self.schedules = schedules; self.trust = trust
    }

    enum CodingKeys: String, CodingKey { case records, schedules, trust }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        records = try c.decode([SlotRun].self, forKey: .records)
        schedules = try c.decodeIfPresent([ScheduleDefinition].self, forKey: .schedules)
        // A peer's malformed statement is dropped alone; the rest of the exchange stands.
        trust = (try? c.decodeIfPresent([Lenient<TrustStatement>].self, forKey: .trust))?.compactMap(\.value)
    }
}
