import RoleMeshCore

/// Background work on a `SimulatedMesh`, in virtual time: every node plans one schedule with the
/// real `SchedulePlanner` over its own view and its own slot records, as the agent does; a run
/// takes `runTime`; slot records travel as the agent's exchange sends them (to every reachable
/// node when a run starts or ends, and between every pair of nodes that reach each other every
/// `exchangeEvery`), and only over links that would carry them.
public final class SimulatedSchedules {
    public let mesh: SimulatedMesh
    public let schedule: Schedule
    /// Wall-clock seconds at virtual time 0; local time is UTC.
    public let epoch: Int64
    public var runTime: Millis
    public var exchangeEvery: Millis = 10_000
    /// Every node's slot records.
    public private(set) var ledgers: [String: SlotLedger] = [:]
    /// Runs going on: node → the record of its attempt and when it ends.
    public private(set) var running: [String: (run: SlotRun, ends: Millis)] = [:]
    /// Every attempt that finished (ran to its end), in order.
    public private(set) var finished: [SlotRun] = []
    private var lastExchange: Millis = 0
    private var attempts = 0

    public init(mesh: SimulatedMesh, schedule: Schedule, epoch: Int64, runTime: Millis) {
        self.mesh = mesh; self.schedule = schedule; self.epoch = epoch; self.runTime = runTime
    }

    public var wallNow: Int64 { epoch + mesh.now / 1000 }

    /// Advances `duration` in steps of `step`: the mesh, then runs ending, then each node's plan.
    public func run(for duration: Millis, step: Millis = 1000) {
        let end = mesh.now + duration
        while mesh.now < end {
            mesh.run(for: min(step, end - mesh.now))
            self.step()
        }
    }

    func step() {
        let live = mesh.liveNodes
        // A killed node's run dies with it (its record stays `running` until others see it dead).
        for node in running.keys.sorted() where !live.contains(node) { running[node] = nil }
        for node in running.keys.sorted() {
            guard let (r, ends) = running[node], ends <= mesh.now else { continue }
            var done = r
            done.state = .done
            done.finished = wallNow
            record(done, on: node)
            finished.append(done)
            running[node] = nil
            share(from: node)
        }
        for node in live {
            let view = mesh.nodes[node]!.core.snapshot(now: mesh.now)
            let active: Set<String> = running[node].map { [$0.run.id] } ?? []
            let minute = Int((wallNow % 86_400) / 60)
            let p = SchedulePlanner.plan(schedule, now: wallNow, localMinute: minute, me: node, view: view,
                                         ledger: ledgers[node] ?? SlotLedger(), active: active)
            guard p.status == .due else { continue }
            attempts += 1
            let id = String(attempts, radix: 16).leftPadded(to: 8)
            let r = SlotRun(role: schedule.role, task: schedule.task, slot: p.slot, id: id, runID: p.runID, node: node,
                            state: .running, started: wallNow)
            record(r, on: node)
            running[node] = (r, mesh.now + runTime)
            share(from: node)
        }
        if mesh.now - lastExchange >= exchangeEvery {
            lastExchange = mesh.now
            for a in live { for b in live where a < b && mesh.canReach(a, b) { exchange(a, b) } }
        }
    }

    func record(_ r: SlotRun, on node: String) { ledgers[node, default: SlotLedger()].merge(r) }

    func share(from node: String) {
        for peer in mesh.liveNodes where peer != node && mesh.canReach(node, peer) { exchange(node, peer) }
    }

    func exchange(_ a: String, _ b: String) {
        let union = Array((ledgers[a]?.runs ?? [:]).values) + Array((ledgers[b]?.runs ?? [:]).values)
        for r in union.sorted(by: { $0.id < $1.id }) { record(r, on: a); record(r, on: b) }
    }

    /// Finished runs of one slot.
    public func completed(slot: Int64) -> [SlotRun] { finished.filter { $0.slot == slot } }
}

private extension String {
    func leftPadded(to n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
