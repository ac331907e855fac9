import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// A task someone asked this node to run somewhere: what `submit` sent, and what the
/// queue persists under `DIR/state/queue/ID.json` until a node can take it.
public struct Submission: Codable, Sendable {
    var id: String
    var role: String
    var task: String
    var args: [String]
    var heavy: Bool
    var to: String?
    var retry: Int
    var queue: Bool
    var submitted: String
    /// A background run: `--when idle` (waits for an idle holder), or a schedule's slot.
    var whenIdle = false
    var schedule: String?
    var slot: Int64?
    var runID: String?
    var force = false

    var background: Bool { whenIdle || schedule != nil }

    init(_ r: SubmitRequest) {
        id = TaskJournal.newID()
        role = r.role; task = r.task; args = r.args; heavy = r.heavy; to = r.to
        retry = max(0, r.retry); queue = r.queue || r.whenIdle; submitted = Clock.rfc3339()
        whenIdle = r.whenIdle
    }

    /// The queue file's keys; `to` is written as `null` when unset, as it always was.
    enum CodingKeys: String, CodingKey { case id, role, task, args, heavy, to, retry, queue, submitted, whenIdle = "when_idle" }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(role, forKey: .role); try c.encode(task, forKey: .task)
        try c.encode(args, forKey: .args); try c.encode(heavy, forKey: .heavy); try c.encode(to, forKey: .to)
        try c.encode(retry, forKey: .retry); try c.encode(queue, forKey: .queue); try c.encode(submitted, forKey: .submitted)
        if whenIdle { try c.encode(true, forKey: .whenIdle) }
    }

    /// A task's file name in its role's folder: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 255 bytes.
    public static func isValidTaskName(_ t: String) -> Bool { NodeName.isValid(t, maxLength: 255) }

    /// Whether a task's arguments fit in one request frame (`Frame.maxArgumentBytes` of JSON).
    public static func argumentsFit(_ args: [String]) -> Bool { argumentBytes(args) <= Frame.maxArgumentBytes }
    public static func argumentBytes(_ args: [String]) -> Int { ControlJSON.encode(args).count }

    /// `ROLE/TASK` as a person writes it (submit, schedules run), or nil if either part is not a valid name.
    public static func split(_ name: String) -> (role: String, task: String)? {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, NodeName.isValid(parts[0]), isValidTaskName(parts[1]) else { return nil }
        return (parts[0], parts[1])
    }

    /// A queue file, as any version wrote it: only `role` and `task` are required.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        task = try c.decode(String.self, forKey: .task)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? TaskJournal.newID()
        args = try c.decodeIfPresent([String].self, forKey: .args) ?? []
        heavy = try c.decodeIfPresent(Bool.self, forKey: .heavy) ?? false
        to = try c.decodeIfPresent(String.self, forKey: .to)
        retry = max(0, try c.decodeIfPresent(Int.self, forKey: .retry) ?? 0)
        queue = try c.decodeIfPresent(Bool.self, forKey: .queue) ?? false
        submitted = try c.decodeIfPresent(String.self, forKey: .submitted) ?? Clock.rfc3339()
        whenIdle = try c.decodeIfPresent(Bool.self, forKey: .whenIdle) ?? false
    }
}

/// Runs submissions from this node: picks the node (routing or `--to`), drives the task over
/// the task channel, re-routes on loss while retries last, waits in the persisted queue when
/// asked to, and relays the stream to the `submit` command (the sink) when one is attached.
/// An actor: each submission is a task awaiting its channel; the agent is asked through `link`.
actor Submitter {
    let me: String
    let journal: TaskJournal
    let link: AgentLink
    let executor: Executor
    let queueDir: URL
    private var active: [String: (node: String, channel: SecureChannel)] = [:]
    /// Every submission in progress here, queued or running: what `cancel` reaches.
    private var relays: [String: Relay] = [:]
    /// Runs whose node this node stopped trusting: they end with 77, never retried.
    private var revokedRuns: Set<String> = []

    /// The agent's background work, which the submissions are part of.
    private let children: ChildTasks

    init(me: String, dir: NodeDirectory, journal: TaskJournal, link: AgentLink, children: ChildTasks, executor: Executor) {
        self.me = me
        self.children = children
        self.journal = journal
        self.link = link
        self.executor = executor
        queueDir = dir.stateDir.appendingPathComponent("queue")
        try? FileManager.default.createDirectory(at: queueDir, withIntermediateDirectories: true)
    }

    /// After a restart: queued submissions wait again; runs that were in flight here, as
    /// submitter or as executor, are lost (their processes went with the old agent).
    func resume() {
        journal.prune(olderThan: TaskJournal.retentionDays)
        // `ID.json` only: a temporary left by a crash mid-write is not a submission.
        let queued = ((try? FileManager.default.contentsOfDirectory(atPath: queueDir.path)) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
            .compactMap { try? String(contentsOf: queueDir.appendingPathComponent($0), encoding: .utf8) }
            .compactMap { ControlJSON.decode(Submission.self, from: $0) }
        let queuedIDs = Set(queued.map(\.id))
        for r in journal.unfinished() where !queuedIDs.contains(r.id) {
            journal.update(r.id) { $0.state = .lost; $0.finished = $0.finished ?? Clock.rfc3339() }
        }
        for s in queued { children.spawn { await self.run(s, sink: nil) } }
    }

    /// Trust in `node` was revoked here: our channels to it close and their runs report 77.
    func nodeRevoked(_ node: String) {
        let victims = active.filter { $0.value.node == node }
        revokedRuns.formUnion(victims.keys)
        for v in victims.values { v.channel.abort() }
        dropKept(node)
    }

    /// Membership declared `node` dead or gone: end runs waiting on it so they can re-route.
    func nodeLost(_ node: String) {
        for v in active.values where v.node == node { v.channel.abort() }
        dropKept(node)
    }

    /// This device's address changed (it moved to another network): a connection whose local
    /// address is gone is dead, though the kernel keeps it and says nothing, so a run waiting on it
    /// would wait until TCP gives up (a quarter of an hour). Such runs re-route as if their node
    /// was lost; such kept channels close.
    func ownAddressChanged(to here: WireAddress) {
        let stale = { (ch: SecureChannel) in ch.ends.map { $0.local.ip != here.ip } ?? true }
        for v in active.values where stale(v.channel) { v.channel.abort() }
        for (node, chs) in kept { for ch in chs where stale(ch) { ch.abort() }; kept[node] = chs.filter { !stale($0) } }
    }

    /// `node` is reached at another address now (it moved): a direct connection to the old one is
    /// dead for the same reason. Relayed channels (their remote end is the relay) stay.
    func memberMoved(_ node: String, from old: WireAddress, to new: WireAddress) {
        guard old.ip != new.ip else { return }
        for v in active.values where v.node == node && v.channel.ends.map({ $0.remote.ip == old.ip }) ?? true { v.channel.abort() }
        dropKept(node)
    }

    // MARK: Kept channels

    /// Channels whose last run ended cleanly, by node, newest last: the next run to that node
    /// takes one instead of a new connection and handshake (as ssh's ControlMaster does).
    private var kept: [String: [SecureChannel]] = [:]
    /// Idle channels kept per node at most; more are closed.
    static let keptPerNode = 4
    /// An idle kept channel is closed after this long (the server waits `serverIdleSeconds`).
    static let keepIdleSeconds: Double = 30

    /// An idle kept channel to `node` that is still open, if there is one.
    private func takeKept(_ node: String) -> SecureChannel? {
        while let ch = kept[node]?.popLast() {
            if ch.isIdleAndOpen {
                ch.io.setDeadline(nil)
                // The deadline may have fired just before it was lifted.
                if ch.isIdleAndOpen { return ch }
            }
            ch.abort()
        }
        return nil
    }

    /// After a run that ended with its last frame: tells the server we are done with it and keeps
    /// the channel for the next run to `node`, if the server keeps channels.
    private func keep(_ ch: SecureChannel, for node: String) {
        guard ch.keeps, ch.enqueue(Frame(.next)) else { return ch.close() }
        ch.io.setDeadline(Self.keepIdleSeconds)
        var list = (kept[node] ?? []).filter { $0.isIdleAndOpen }
        list.append(ch)
        while list.count > Self.keptPerNode { list.removeFirst().close() }
        kept[node] = list
    }

    private func dropKept(_ node: String) {
        for ch in kept.removeValue(forKey: node) ?? [] { ch.abort() }
    }

    /// How long a node that could not be reached is skipped before it is tried again.
    static let unreachableBackoff: TimeInterval = 2

    nonisolated func queueFile(_ id: String) -> URL { queueDir.appendingPathComponent("\(id).json") }

    /// Runs until the task is over.
    func run(_ sub: Submission, sink: PlainFrames?) async {
        let relay = Relay(sink: sink, children: children)
        relays[sub.id] = relay
        // Whatever the outcome, it is final: a queued submission must never run again after it.
        defer {
            relays[sub.id] = nil; relay.finish()
            // Cancelled: the agent stopped; a queued submission stays on disk for the next start.
            if !Task.isCancelled { try? FileManager.default.removeItem(at: queueFile(sub.id)) }
        }
        guard let agent = link.agent else { return }
        func end(_ frame: Frame) async { if let sink { try? await sink.send(frame) } }
        func fail(_ e: MeshError) async { await end(.error(e)) }
        let me = self.me
        var record = TaskRecord(id: sub.id, role: sub.role, task: sub.task, node: nil, from: me, state: .queued, submitted: sub.submitted)
        record.args = sub.args
        var retriesLeft = sub.retry
        /// Nodes this run was lost on: never tried again for this submission.
        var excluded: Set<String> = []
        /// Nodes a dispatch could not reach (refused connection, handshake failure, draining): the
        /// task never started there, so it is not lost; they are skipped for a short while.
        var unreachable: [String: (until: Date, why: String)] = [:]
        var toldUnreachable: Set<String> = []
        var announcedQueue = false
        var waitingWhy: String?
        /// A kept channel that broke before the run started there: the next try opens a new one.
        var freshOnly = false
        /// Gives up on `node` and goes back to routing, if a retry is left.
        func retry(elsewhereThan node: String, _ message: String) async -> Bool {
            guard retriesLeft > 0 else { return false }
            retriesLeft -= 1
            excluded.insert(node)
            // Not started anywhere now: the executor accepts this id again only from a record like this.
            journal.update(sub.id) { $0.state = .queued; $0.node = nil; $0.started = nil }
            await end(.info(message))
            return true
        }
        /// A dispatch to `node` failed before the task started there.
        func notStarted(on node: String, _ why: String) async {
            unreachable[node] = (Date().addingTimeInterval(Self.unreachableBackoff), "could not be reached (\(why))")
            journal.update(sub.id) { $0.state = .queued; $0.node = nil }
            if toldUnreachable.insert(node).inserted { await end(.info("\(why); trying another node")) }
        }
        /// The mesh failed this run on `node`: journaled (`lost` for 75, else `failed`), then reported.
        func failed(on node: String, _ e: MeshError) async {
            journal.update(sub.id) {
                $0.state = e.code == MeshError.tempFail ? .lost : .failed
                $0.exitCode = Int(e.code); $0.node = node; $0.finished = Clock.rfc3339()
            }
            await fail(e)
        }
        func cancelled() async {
            try? FileManager.default.removeItem(at: queueFile(sub.id))
            if journal.record(sub.id) != nil { journal.update(sub.id) { $0.state = .cancelled; $0.exitCode = 130; $0.finished = Clock.rfc3339() } }
            await end(.exit(code: 130, state: "cancelled"))
        }

        while true {
            if Task.isCancelled { return }       // the agent stopped: the journal stays as it is
            if relay.cancelled { return await cancelled() }
            let viewSeen = agent.viewChanges.count
            let target: (name: String, address: WireAddress)
            let now = Date()
            unreachable = unreachable.filter { $0.value.until > now }
            var skip: [String: String] = unreachable.mapValues(\.why)
            for node in excluded { skip[node] = "was lost mid-run" }
            switch await agent.target(for: sub, excluding: skip) {
            case .success(let t): target = t
            case .failure(let e):
                guard sub.queue, e.code == MeshError.unavailable else {
                    if journal.record(sub.id) != nil {
                        journal.update(sub.id) { $0.state = .failed; $0.exitCode = Int(e.code); $0.finished = Clock.rfc3339() }
                    }
                    return await fail(e)
                }
                // `tasks` says why it waits; the record is written again only when the reason changes.
                if waitingWhy != e.message {
                    waitingWhy = e.message
                    journal.update(sub.id, initial: record) { $0.state = .queued; $0.node = nil; $0.reason = e.message }
                }
                if !announcedQueue {
                    announcedQueue = true
                    do { try AtomicFile.replace(queueFile(sub.id), with: [UInt8](ControlJSON.line(sub))) } catch { Log.warn(error.message) }
                    await end(.info("queued: \(e.message); waiting for a node"))
                }
                // Until the view changes, a node set aside comes back, or the submitter cancels.
                let wakeUp = unreachable.values.map { $0.until.timeIntervalSinceNow }.min() ?? 60
                await relay.waitForCancel(orChangeOf: agent.viewChanges, after: viewSeen, timeout: .milliseconds(Int(max(0.05, wakeUp) * 1000)))
                continue
            }

            waitingWhy = nil
            journal.update(sub.id, initial: record) { $0.state = .queued; $0.node = nil; $0.reason = nil }
            let channel: SecureChannel
            let reused: Bool
            do {
                if !freshOnly, let ch = takeKept(target.name) {
                    channel = ch; reused = true
                } else {
                    channel = try await agent.channel(to: target.name, address: target.address); reused = false
                }
            } catch {
                // The task never reached the node: it is not lost. Back to routing (or the queue),
                // with that node set aside for a moment; no retry is used up.
                if error.code == MeshError.noPermission { return await failed(on: target.name, error) }
                await notStarted(on: target.name, error.message)
                continue
            }
            active[sub.id] = (target.name, channel)
            // Through a relay: said to the person waiting, and kept in the journal (`tasks`).
            let via = await agent.via(target.name)
            journal.update(sub.id) { $0.via = via }
            if let via { await relay.forward(.info("\(sub.role)/\(sub.task) goes to \(target.name) via \(via): no direct path from here")) }

            let background = sub.background ? RunRequest.Background(schedule: sub.schedule, slot: sub.slot, runID: sub.runID, force: sub.force) : nil
            let request = TaskRequest.run(RunRequest(id: sub.id, role: sub.role, task: sub.task, args: sub.args,
                                                     submitted: sub.submitted, detached: sink == nil, background: background))
            var outcome: Frame?
            var started = false
            do {
                try await channel.send(Frame(.request, encoding: request))
                await relay.attach(channel)
                while let f = try await channel.receive() {
                    switch f.type {
                    case .started:
                        started = true
                        // From here it is running, not waiting: a restart must not start it again.
                        try? FileManager.default.removeItem(at: queueFile(sub.id))
                        journal.update(sub.id) { $0.state = .running; $0.node = target.name; $0.started = Clock.rfc3339() }
                        await relay.forward(f)
                    case .stdout, .stderr, .info:
                        await relay.forward(f)
                    case .exit, .error:
                        outcome = f
                    default: break
                    }
                    if outcome != nil { break }
                }
            } catch {}
            relay.detach()
            active[sub.id] = nil
            if Task.isCancelled { return }       // the agent stopped, not the node: nothing was lost
            if revokedRuns.remove(sub.id) != nil {
                channel.abort()
                return await failed(on: target.name, MeshError(MeshError.noPermission, "trust in \(target.name) was revoked on \(me)"))
            }
            if outcome != nil { keep(channel, for: target.name) } else { channel.close() }
            // A kept channel the server had just closed (idle, restarting) carried nothing: the
            // task never started there. Once more on a new connection, which decides.
            if outcome == nil, reused, !started, !relay.cancelled {
                freshOnly = true
                continue
            }
            freshOnly = false

            if let f = outcome, f.type == .exit, let j = f.decode(ExitInfo.self) {
                let code = j.code ?? 1
                let state = j.state.flatMap(TaskRecord.State.init(rawValue:)) ?? (code == 0 ? .done : .failed)
                journal.update(sub.id) { $0.state = state; $0.exitCode = code; $0.node = target.name; $0.finished = Clock.rfc3339() }
                return await end(f)
            }
            if let f = outcome, f.type == .error {
                let e = f.meshError
                // Refused before it started (draining, leaving): not lost, try elsewhere or wait.
                if !started, e.code == MeshError.unavailable {
                    await notStarted(on: target.name, e.message)
                    continue
                }
                if e.code == MeshError.tempFail || e.code == MeshError.unavailable,
                   await retry(elsewhereThan: target.name, "\(e.message); retrying elsewhere") { continue }
                return await failed(on: target.name, e)
            }
            // The connection ended without an answer: the node was lost mid-run.
            if relay.cancelled { return await cancelled() }
            if await retry(elsewhereThan: target.name, "\(target.name) was lost mid-run; retrying on the next route (\(retriesLeft - 1) retries left)") {
                continue
            }
            journal.update(sub.id) { $0.state = .lost; $0.node = target.name; $0.finished = Clock.rfc3339() }
            return await fail(MeshError(MeshError.tempFail, "\(target.name) was lost mid-run and no retry was left"))
        }
    }

    /// `cancel ID` on this node as the submitter: as Ctrl-C would. False if no submission of
    /// that id is in progress here.
    func cancel(_ id: String) async -> Bool {
        guard let relay = relays[id] else { return false }
        await relay.cancel()
        return true
    }

    /// `logs`: from our own journal when the task ran here, else from the node that ran it.
    func logs(id: String, follow: Bool, sink: PlainFrames) async {
        defer { sink.close() }
        func fail(_ e: MeshError) async { try? await sink.send(.error(e)) }
        guard TaskJournal.isValidID(id), var r = journal.record(id) else {
            return await fail(MeshError(MeshError.other, "no task \(id) is known to \(me)"))
        }
        // Following a task that waits in the queue: wait (bounded, like the follow itself) for it to start.
        let deadline = ContinuousClock.now + .seconds(24 * 3600)
        while follow, ContinuousClock.now < deadline {
            let seen = journal.changes.count
            guard let next = journal.record(id) else { break }
            r = next
            guard r.node == nil, !r.isFinal else { break }
            await journal.changes.wait(after: seen, timeout: deadline - ContinuousClock.now)
        }
        let req = TaskRequest.logs(id: id, follow: follow)
        if r.node == me || FileManager.default.fileExists(atPath: journal.outputFile(id).path) {
            return await executor.streamLogs(id: id, follow: follow, on: sink)
        }
        guard let node = r.node else { return await fail(MeshError(MeshError.other, "task \(id) has not run yet (it is \(r.state.rawValue))")) }
        guard let agent = link.agent else { return }
        guard let address = await agent.address(of: node) else {
            return await fail(MeshError(MeshError.unavailable, "\(node), which ran task \(id), is not reachable now"))
        }
        do {
            let ch = try await agent.channel(to: node, address: address)
            defer { ch.close() }
            if let via = await agent.via(node) { try? await sink.send(.info("fetching the output from \(node) via \(via): no direct path from here")) }
            try await ch.send(Frame(.request, encoding: req))
            while let f = try await ch.receive() {
                try await sink.send(f)
                if f.type == .exit || f.type == .error { return }
            }
            await fail(MeshError(MeshError.tempFail, "the connection to \(node) was lost"))
        } catch {
            await fail(error)
        }
    }
}

/// Carries the submitter's input (stdin, end of stdin, Ctrl-C) to whichever task connection
/// is current, across retries; and output back to the submitter while it listens.
final class Relay: Sendable {
    let sink: PlainFrames?
    private struct State {
        var channel: SecureChannel?
        var cancelled = false
        var sawEOF = false
        var sinkGone = false
        var finished = false
    }
    private let state = Locked(State())
    /// Bumped on attach, cancel, the sink going away and the end: what input and a queued run wait on.
    private let events = ChangeSignal()

    init(sink: PlainFrames?, children: ChildTasks) {
        self.sink = sink
        guard let sink else { return }
        children.spawn { [self] in await readInput(from: sink) }
    }

    var cancelled: Bool { state.withLock { $0.cancelled } }

    /// Frames go to the attached channel under this relay's lock: once `detach` has run, nothing
    /// of this run can follow on the channel (it may carry the next run). Then waits, outside
    /// the lock, while the peer is far behind.
    private func sendToRun(_ f: Frame, _ s: inout State) -> SecureChannel? {
        guard let ch = s.channel, ch.enqueue(f) else { return nil }
        return ch
    }

    private func readInput(from sink: PlainFrames) async {
        while let f = try? await sink.receive() {
            switch f.type {
            case .signal:
                let ch = state.withLock { s in s.cancelled = true; return sendToRun(f, &s) }
                events.bump()
                _ = await ch?.drained()
            case .stdin, .stdinEOF:
                if f.type == .stdinEOF { state.withLock { $0.sawEOF = true } }
                // Wait for a connection to hand the input to (bounded by the run's life).
                var ch: SecureChannel?
                while true {
                    let seen = events.count
                    let (sent, over) = state.withLock { s -> (SecureChannel?, Bool) in
                        (s.channel != nil ? sendToRun(f, &s) : nil, s.channel != nil || s.finished || s.cancelled)
                    }
                    if over { ch = sent; break }
                    await events.wait(after: seen)
                }
                _ = await ch?.drained()
            default: break
            }
        }
        // The submit command went away without Ctrl-C (closed, killed): hang up on the task,
        // as sshd does when its client vanishes.
        state.withLock { s in
            s.sinkGone = true
            s.sawEOF = true
            if !s.finished { _ = sendToRun(Frame(.signal, [UInt8(SIGHUP)]), &s) }
        }
        events.bump()
    }

    func attach(_ ch: SecureChannel) async {
        state.withLock { s in
            s.channel = ch
            if s.cancelled { _ = sendToRun(Frame(.signal, [UInt8(SIGINT)]), &s) }
            if s.sawEOF || sink == nil || s.sinkGone { _ = sendToRun(Frame(.stdinEOF), &s) }
        }
        events.bump()
    }

    func detach() { state.withLock { $0.channel = nil } }

    /// `rolemesh cancel`: the same as a Ctrl-C from the submit command, for any run (detached too).
    func cancel() async {
        let ch = state.withLock { s in s.cancelled = true; return sendToRun(Frame(.signal, [UInt8(SIGINT)]), &s) }
        events.bump()
        _ = await ch?.drained()
    }

    func forward(_ f: Frame) async {
        guard let sink, !state.withLock({ $0.sinkGone }) else { return }
        if (try? await sink.send(f)) == nil { state.withLock { $0.sinkGone = true } }
    }

    /// A queued run waits here: until `view` changes after `seen`, the submitter cancels or goes
    /// away (which cancels a queued submission), or `timeout` passes.
    func waitForCancel(orChangeOf view: ChangeSignal, after seen: UInt64, timeout: Duration) async {
        let mine = events.count
        if !isCancelledOrGone() {
            await ChangeSignal.first(of: [(view, seen), (events, mine)], timeout: timeout)
        }
        _ = isCancelledOrGone()
    }

    /// A `submit` command that went away cancels its run.
    private func isCancelledOrGone() -> Bool {
        state.withLock { s in
            if sink != nil && s.sinkGone { s.cancelled = true }
            return s.cancelled
        }
    }

    func finish() {
        state.withLock { s in s.finished = true; s.channel = nil }
        events.bump()
        sink?.close()
    }
}

/// The agent, for the parts of the task plane created before it (a weak link: the agent owns them).
final class AgentLink: Sendable {
    private struct Ref { weak var agent: Agent? }
    private let ref = Locked(Ref())
    var agent: Agent? { ref.withLock { $0.agent } }
    func set(_ agent: Agent) { ref.withLock { $0.agent = agent } }
}
