/// Where a schedule stands now, as every node can work it out from its own view and ledger: a
/// pure function, so the agent, `rolemesh schedules` and the simulator all use this one.
public struct SlotPlan: Equatable, Sendable {
    public enum Status: Equatable, Sendable {
        /// Nothing runs now; the one condition it waits for.
        case waiting(String)
        /// This node is the route and every condition holds: start the slot's run here now.
        case due
        /// An attempt is going on (as far as this node knows) on `node`.
        case running(node: String)
        /// The slot ran; it does not run again.
        case done
    }
    public var status: Status
    /// Where the slot runs now (the role's route, `--heavy` if heavy); nil when no node can take it.
    public var node: String?
    public var slot: Int64
    public var nextSlot: Int64
    public var runID: String
}

public enum SchedulePlanner {
    /// `now`: seconds since the epoch; `localMinute`: minutes since this node's local midnight (the
    /// window of a remote route is judged by this clock too). `active`: attempt ids this node is
    /// running now. `force`: `schedules run`, conditions are ignored. `grants`: schedules follow
    /// them — the route skips a member not granted the role, and that member's records of the
    /// schedule's runs count for nothing (a device that may not hold the role cannot say it ran).
    public static func plan(_ s: Schedule, now: Int64, localMinute: Int, me: String, view: [MemberSnapshot],
                            ledger: SlotLedger, active: Set<String>, force: Bool = false, grants: GrantTable = [:]) -> SlotPlan {
        let slot = Slots.start(of: now, every: s.every)
        let route = Routing.route(s.role, heavy: s.heavy, members: view, grants: grants)
        var plan = SlotPlan(status: .done, node: route.node, slot: slot, nextSlot: slot + s.every, runID: Slots.runID(s, slot: slot))
        func granted(_ r: SlotRun) -> Bool { grants.allows(r.node, s.role, backup: true) }
        let runs = ledger.runs(of: s.id, slot: slot).filter(granted)
        if runs.contains(where: { $0.state.completed }) { return plan }
        let up = Set(view.filter { $0.state == .alive || $0.state == .suspect }.map(\.name))
        // An attempt counts as going on while its node is up; ours only while we really run it
        // (a record of ours from before a restart is a lost attempt).
        func going(_ r: SlotRun) -> Bool { r.state == .running && up.contains(r.node) && (r.node != me || active.contains(r.id)) }
        if let r = runs.last(where: going) {
            plan.status = .running(node: r.node)
            return plan
        }
        // One run of a schedule at a time: a slot that starts while the last one still runs waits for it.
        if let r = ledger.runs.values.first(where: { $0.schedule == s.id && $0.slot < slot && granted($0) && going($0) }) {
            plan.status = .waiting("the slot of \(Slots.rfc3339(r.slot)) is still running on \(r.node)")
            return plan
        }
        guard let node = route.node, let holder = view.first(where: { $0.name == node }) else {
            plan.status = .waiting(route.failureSentence)
            return plan
        }
        if !force, let why = blocker(s, signals: holder.signals, localMinute: localMinute, node: node) {
            plan.status = .waiting(why)
            return plan
        }
        plan.status = node == me ? .due : .waiting("starting on \(node)")
        return plan
    }

    /// The first of the schedule's conditions that does not hold on `node` now, as a phrase
    /// (`outside window 01:00-06:00`, `on battery`, `desk busy (idle 3m of 15m)`); nil if all hold.
    /// Also what pauses a run that is going on.
    public static func blocker(_ s: Schedule, signals: Signals, localMinute: Int, node: String) -> String? {
        if let w = s.window, !w.contains(minuteOfDay: localMinute) { return "outside window \(w)" }
        // Unknown power counts as mains, as in the score.
        if s.mains, signals.onBattery == true { return "on battery" }
        if let need = s.idle { return idleBlocker(need: need, signals: signals, node: node) }
        return nil
    }

    /// `signals.idle` with no `idle_s` (pinned, or a device that says idle without saying since
    /// when) meets any idle duration: the device vouches that it is idle.
    public static func idleBlocker(need: Int64, signals: Signals, node: String) -> String? {
        switch signals.idle {
        case nil: return "\(node) busy (idle unknown)"
        case false?: return "\(node) busy (not idle)"
        case true?:
            if let s = signals.idleSeconds, Int64(s) < need {
                return "\(node) busy (idle \(DurationText.describe(Int64(s))) of \(DurationText.describe(need)))"
            }
            return nil
        }
    }
}
