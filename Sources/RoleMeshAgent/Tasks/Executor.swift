import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// Runs tasks that peers submit over the task channel: `DIR/roles/ROLE/TASK`, with their
/// arguments, in a fresh working directory, in its own process group, at most `max_tasks`
/// at once (more wait in line). Output streams back live and is kept in the journal.
///
/// An actor: each connection is a task that awaits its frames, its pipes and its child's exit;
/// no thread waits on any of them. The agent's state is asked for through `link`.
actor Executor {
    let me: String
    let dir: NodeDirectory
    let journal: TaskJournal
    let link: AgentLink
    let envPassthrough: [String]
    /// `max_log` in bytes: the output kept per task.
    let maxLogBytes: Int
    private var freeSlots: Int
    private var slotWaiters: [(id: String, c: CheckedContinuation<Bool, Never>)] = []
    private var running: [String: Running] = [:]

    final class Running {
        let id: String
        let channel: SecureChannel
        /// The node that submitted it (the authenticated peer of its channel).
        let peer: String
        var pid: pid_t = 0
        var cancelled = false
        var revoked = false
        var exited = false
        var finished = false
        /// Why a background run is stopped (SIGSTOP) now: the condition that does not hold.
        var pausedWhy: String?
        var paused: Bool { pausedWhy != nil }
        init(id: String, channel: SecureChannel, peer: String) { self.id = id; self.channel = channel; self.peer = peer }
    }

    /// A `logs` stream served to a peer over the task channel.
    final class Follower {
        let peer: String
        let channel: FrameTransport
        var revoked = false
        init(peer: String, channel: FrameTransport) { self.peer = peer; self.channel = channel }
    }
    private var followers: [ObjectIdentifier: Follower] = [:]

    /// The agent's background work, which this executor's own is part of.
    private let children: ChildTasks

    init(me: String, dir: NodeDirectory, journal: TaskJournal, link: AgentLink, children: ChildTasks, maxTasks: Int, envPassthrough: [String],
         maxLogBytes: Int = NodeConfig(name: "").maxLogBytes) {
        self.me = me
        self.children = children
        self.maxLogBytes = maxLogBytes
        self.dir = dir
        self.journal = journal
        self.link = link
        self.envPassthrough = envPassthrough
        freeSlots = maxTasks
        // Nothing runs across a restart: working directories left by a crash go.
        try? FileManager.default.removeItem(at: dir.stateDir.appendingPathComponent("work"))
    }

    var runningCount: Int { running.values.filter { !$0.finished }.count }

    /// What a task's environment holds of the agent's own: nothing else passes.
    static let inheritedNames: Set<String> = ["PATH", "HOME", "USER", "LANG", "TZ"]

    /// The task's whole environment: a few of the agent's variables, `env_passthrough`, and ours.
    static func environment(agent: [String: String], passthrough: [String], own: [(String, String)]) -> [String] {
        var env: [String: String] = [:]
        for (k, v) in agent where inheritedNames.contains(k) || k.hasPrefix("LC_") { env[k] = v }
        for k in passthrough where !k.hasPrefix("ROLEMESH_") { if let v = agent[k] { env[k] = v } }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        for (k, v) in own { env[k] = v }
        return env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    func trusts(_ peer: String) async -> Bool { await link.agent?.trustedKey(peer) != nil }

    /// A connection whose handshake is done must send its request within this many seconds (an
    /// idle one holds a descriptor for nothing).
    static let firstRequestSeconds: Double = 5

    /// Serves one authenticated connection until its request is done; a `run` whose submitter
    /// then sends `next` keeps the channel for its next `run` (up to `serverIdleSeconds` idle).
    func serve(_ channel: SecureChannel) async {
        defer { channel.close() }
        var first = true
        while true {
            if first {
                channel.io.setDeadline(Self.firstRequestSeconds)
            } else {
                // Idle between runs: closed when it stays idle, or when its peer is revoked.
                channel.io.setDeadline(SecureChannel.serverIdleSeconds)
                idle[ObjectIdentifier(channel)] = channel
            }
            let frame = try? await channel.receive()
            idle[ObjectIdentifier(channel)] = nil
            channel.io.setDeadline(nil)
            guard let frame, frame.type == .request else { return }
            let request = TaskRequest.parse(frame.payload)
            if case .failure(.notAnObject) = request { return }
            // Trust may have been revoked while the handshake ran, or while the channel was idle.
            let (trusted, refusal) = await link.agent?.admission(channel.peer) ?? (false, nil)
            guard trusted else { return await fail(channel, revokedError(channel.peer)) }
            switch request {
            case .success(.run(let req)):
                if !first { Log.debug("a run on a kept channel", context: ["peer": channel.peer]) }
                guard await run(req, on: channel, refusal: refusal) else { return }
            case .failure(.malformed(op: .run, _)):
                // Refused as a run is: the channel then waits for the submitter's `next`.
                await fail(channel, malformed(.run))
                guard await skipToNext(channel) else { return }
            case .success(.logs(let id, let follow)) where first: return await streamLogs(id: id, follow: follow, on: channel, asker: channel.peer)
            case .success(.slots(let records, let schedules, let trust)) where first:
                return await exchangeSlots(SlotsPayload(records: records, schedules: schedules, trust: trust), on: channel)
            case .success(.relay(let to)) where first:
                await link.agent?.carry(to: to, for: channel)
                return
            case .success(.carry(let from)) where first:
                await link.agent?.carried(from: from, on: channel)
                return
            case .success(.connect(let service)) where first:
                await link.agent?.serveConnect(service, on: channel)
                return
            case .failure(.malformed(let op, _)) where first: return await fail(channel, malformed(op))
            default: return await fail(channel, MeshError(MeshError.usage, "unknown request"))
            }
            first = false
        }
    }

    /// Kept channels waiting for their next run: a revoked peer's are closed (`revoke`).
    private var idle: [ObjectIdentifier: SecureChannel] = [:]

    /// What the submitter sends for one run after the request, read by one task from the start
    /// of the run until `next` (true: the channel goes on) or the end of the channel (false).
    final class Input {
        var reader: Later<Bool>?
    }

    /// Runs one `run` request, then waits for the submitter's `next`: true if it came.
    /// `refusal`: why this node takes no new task, asked with the request's trust.
    func run(_ req: RunRequest, on ch: SecureChannel, refusal: String?) async -> Bool {
        let input = Input()
        await run(req, on: ch, input: input, refusal: refusal)
        if let reader = input.reader { return await reader.value }
        return await skipToNext(ch)
    }

    /// A run refused before its input was read: what the submitter sends for it is skipped up to
    /// its `next` (true: the channel goes on).
    func skipToNext(_ ch: SecureChannel) async -> Bool {
        while let f = try? await ch.receive() {
            if f.type == .next { return true }
            if f.type == .request { return false }
        }
        return false
    }

    /// The answer to a request without a field its operation needs: the one each operation gave
    /// when that field reached it as missing, before requests were typed, so peers see no change.
    nonisolated func malformed(_ op: TaskRequest.Op) -> MeshError {
        switch op {
        case .run, .slots: MeshError(MeshError.usage, "a malformed task request")
        case .logs: MeshError(MeshError.other, "\(me) has no task ")
        case .relay: MeshError(MeshError.unavailable, "\(me) cannot carry a channel to that node")
        case .carry: MeshError(MeshError.unavailable, "\(me) takes no channel from that node")
        case .connect: MeshError(MeshError.noPermission, "\(me) does not offer that service")
        }
    }

    nonisolated func fail(_ ch: FrameTransport, _ e: MeshError) async {
        try? await ch.send(.error(e))
    }

    nonisolated func revokedError(_ peer: String) -> MeshError {
        MeshError(MeshError.noPermission, "trust in \(peer) was revoked on \(me)")
    }

    /// `peer`'s key was removed or changed: its running and waiting tasks end (SIGTERM to the
    /// process group, SIGKILL 3 s later; journaled `cancelled`), its channels get an `error`
    /// (77) and close, and `logs` streams served to it end.
    func revoke(_ peer: String) async {
        let why = revokedError(peer)
        let runs = running.values.filter { $0.peer == peer && !$0.finished }
        for r in runs { r.revoked = true }
        let streams = followers.values.filter { $0.peer == peer }
        for f in streams { f.revoked = true }
        for r in runs {
            Log.info("ending the task: trust in its submitter was revoked", context: ["task": r.id, "peer": peer])
            signal(r, SIGTERM)
            await fail(r.channel, why)
            r.channel.close()
        }
        for f in streams {
            await fail(f.channel, why)
            f.channel.close()
        }
        for ch in idle.values where ch.peer == peer {
            await fail(ch, why)
            ch.close()
        }
        journal.noteChange()    // wakes the revoked streams now
    }

    /// The exit status of a task file that cannot be executed, as a shell gives it.
    static let notExecutable: Int32 = 126

    /// ROLE and TASK as the contract allows them: `[A-Za-z0-9][A-Za-z0-9._-]*`, role ≤ 63 bytes, task ≤ 255.
    static func isValidName(role: String, task: String) -> Bool {
        NodeName.isValid(role) && Submission.isValidTaskName(task)
    }

    /// What ROLE/TASK names here: an executable file inside the role's folder, a file there that
    /// cannot be executed (a shell says 126 for it, and so does the executor), or nothing.
    enum TaskFile: Equatable { case ready(String), notExecutable, missing }

    func taskFile(role: String, task: String) -> TaskFile {
        guard Self.isValidName(role: role, task: task) else { return .missing }
        let roleDir = dir.rolesDir.appendingPathComponent(role).path
        let path = roleDir + "/" + task
        // Resolve links: the file must really live inside the role's folder.
        guard let realRole = realpath(roleDir, nil), let realTask = realpath(path, nil) else { return .missing }
        defer { free(realRole); free(realTask) }
        let r = String(cString: realRole), t = String(cString: realTask)
        var st = stat()
        guard t.hasPrefix(r + "/"), stat(t, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .missing }
        return access(t, X_OK) == 0 ? .ready(t) : .notExecutable
    }

    private func run(_ req: RunRequest, on ch: SecureChannel, input: Input, refusal: String?) async {
        let me = self.me
        let id = req.id, role = req.role, task = req.task
        guard TaskJournal.isValidID(id) else { return await fail(ch, malformed(.run)) }
        guard Self.isValidName(role: role, task: task) else {
            return await fail(ch, MeshError(MeshError.usage, "not a valid task name: ROLE and TASK are letters, digits, '.', '_' or '-', starting with a letter or digit"))
        }
        // A peer picks the id: it may never reuse one this node knows, except our own
        // submission to ourselves that has not started yet.
        if let existing = journal.record(id),
           !(ch.peer == me && existing.from == me && !existing.isFinal && existing.started == nil) {
            return await fail(ch, MeshError(MeshError.usage, "task id already used"))
        }
        if let why = refusal { return await fail(ch, MeshError(MeshError.unavailable, "\(me) \(why)")) }
        let path: String
        switch taskFile(role: role, task: task) {
        case .ready(let p): path = p
        case .notExecutable:
            return await fail(ch, MeshError(Self.notExecutable, "\(me): roles/\(role)/\(task) is not executable (chmod +x \(dir.rolesDir.path)/\(role)/\(task) there)"))
        case .missing:
            return await fail(ch, MeshError(MeshError.noPermission, "\(me) has no task \(role)/\(task) (no executable file roles/\(role)/\(task) inside the role's folder)"))
        }
        let args = req.args
        let bg = BackgroundRun(req)
        var initial = TaskRecord(id: id, role: role, task: task, node: me, from: ch.peer, state: .queued,
                                 submitted: req.submitted ?? Clock.rfc3339())
        initial.args = args
        journal.update(id, initial: initial) { $0.node = me; $0.state = .queued; $0.args = args; bg?.mark(&$0) }

        let r = Running(id: id, channel: ch, peer: ch.peer)
        running[id] = r
        defer { r.finished = true; running[id] = nil; journal.noteChange() }

        // The task's standard input: a pipe whose read end the task gets.
        guard let (stdinRead, stdinWrite) = Spawn.pipe() else { return await fail(ch, MeshError(MeshError.other, "\(me) cannot create pipes for the task")) }
        let stdin = AsyncFD(stdinWrite)
        defer { stdin.close() }
        var stdinReader: Int32 = stdinRead
        defer { if stdinReader >= 0 { close(stdinReader) } }

        // The connection's input: stdin, end of stdin, signals. Started before waiting for a
        // slot, so a Ctrl-C while queued still cancels.
        let detached = req.detached
        let reader = Later<Bool>()
        children.spawn { reader.resolve(await self.forwardInput(from: ch, to: stdin, for: r, detached: detached)) }
        input.reader = reader

        // Wait for a slot, but give up as soon as the run is cancelled (Ctrl-C, revocation).
        let (gotSlot, waited) = await acquireSlot(for: r)
        defer { if gotSlot { releaseSlot() } }
        // Trust is checked again when a slot came after a wait: a revoked peer's task never starts.
        if gotSlot, waited, await !trusts(ch.peer) {
            r.revoked = true; r.cancelled = true
            await fail(ch, revokedError(ch.peer))
        }
        if r.cancelled {
            let revoked = r.revoked
            journal.update(id) { $0.state = .cancelled; $0.finished = Clock.rfc3339(); $0.exitCode = revoked ? 77 : 130 }
            if !revoked { try? await ch.send(.exit(code: 130, state: "cancelled")) }
            return
        }

        let work = dir.stateDir.appendingPathComponent("work/\(id)")
        // mkdir and rmdir first: FileManager's walk costs a short task a tenth of a millisecond.
        if mkdir(work.path, 0o700) != 0 {
            try? FileManager.default.removeItem(at: work)
            try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        }
        defer { if rmdir(work.path) != 0 { try? FileManager.default.removeItem(at: work) } }
        let env = Self.environment(agent: ProcessInfo.processInfo.environment, passthrough: envPassthrough,
                                   own: [("ROLEMESH_NODE", me), ("ROLEMESH_FROM", ch.peer), ("ROLEMESH_ROLE", role),
                                         ("ROLEMESH_TASK", task), ("ROLEMESH_TASK_ID", id)] + (bg?.environment ?? []))
        let started = Frame(.started, encoding: StartedInfo(id: id, node: me, state: "running"))
        let searchPath = env.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? ""
        if let program = Spawn.missingEnvProgram(of: path, searchPath: searchPath) {
            // As env itself would end (127), but saying which program and where it was looked for.
            let why = "rolemesh: \(me) could not run \(role)/\(task): its interpreter \(program) (named on its #! line through env) is not installed or not on the task's PATH (\(searchPath))\n"
            journal.update(id) { $0.state = .failed; $0.started = Clock.rfc3339(); $0.finished = Clock.rfc3339(); $0.exitCode = 127 }
            try? await ch.send(started)
            try? await ch.send(Frame(.stderr, Array(why.utf8)))
            try? await ch.send(.exit(code: 127, state: "failed"))
            return
        }
        guard let (outRead, outWrite) = Spawn.pipe() else { return await fail(ch, MeshError(MeshError.other, "\(me) cannot create pipes for the task")) }
        guard let (errRead, errWrite) = Spawn.pipe() else {
            close(outRead); close(outWrite)
            return await fail(ch, MeshError(MeshError.other, "\(me) cannot create pipes for the task"))
        }
        let spawned = bg == nil
            ? Spawn.start(path: path, args: args, environment: env, directory: work.path, stdin: stdinReader, stdout: outWrite, stderr: errWrite)
            : await BackgroundPriority.spawn(path: path, args: args, environment: env, directory: work.path,
                                             stdin: stdinReader, stdout: outWrite, stderr: errWrite)
        close(stdinReader); stdinReader = -1
        close(outWrite); close(errWrite)
        let stdout = AsyncFD(outRead), stderr = AsyncFD(errRead)
        let pid: pid_t
        switch spawned {
        case .success(let p): pid = p
        case .failure(let e):
            stdout.abort(); stderr.abort()
            var code = 126
            // Like a shell: the file is there but cannot be executed (no #! line, bad interpreter): 126.
            var why = "rolemesh: \(me) could not execute \(role)/\(task) (is it a script without a #! line, or a binary for another system?)\n"
            if e.code == ENOENT, let interpreter = Spawn.interpreter(of: path) {
                code = 127
                why = "rolemesh: \(me) could not execute \(role)/\(task): its interpreter \(interpreter) (named on its #! line) was not found\n"
            }
            journal.update(id) { $0.state = .failed; $0.started = Clock.rfc3339(); $0.finished = Clock.rfc3339(); $0.exitCode = code }
            try? await ch.send(started)
            try? await ch.send(Frame(.stderr, Array(why.utf8)))
            try? await ch.send(.exit(code: code, state: "failed"))
            return
        }
        r.pid = pid
        Log.info("task started", context: ["task": id, "role": role, "name": task, "peer": ch.peer])
        if r.cancelled { signal(r, r.revoked ? SIGTERM : SIGINT) }
        journal.update(id) { $0.state = .running; $0.started = Clock.rfc3339() }
        try? await ch.send(started)
        if let bg {
            await announce("run-started", bg, id: id)
            children.spawn { await self.keepToConditions(r, bg) }
        }

        // Output: to the journal and, while it listens, to the submitter. A slow reader slows
        // the task down (the pipe fills) instead of growing memory.
        let log = OutputLog(url: journal.outputFile(id), limit: maxLogBytes, onAppend: { [journal] in journal.noteChange() })
        let code = await withTaskGroup(of: Void.self) { pumps -> Int32 in
            pumps.addTask { await Self.pump(stdout, .stdout, to: ch, log: log) }
            pumps.addTask { await Self.pump(stderr, .stderr, to: ch, log: log) }
            let code = await Spawn.exit(of: pid)
            r.exited = true
            if r.cancelled { kill(-pid, SIGKILL) }   // nothing of a cancelled task outlives it
            // Output written just before exit still arrives; a grandchild holding the pipes
            // open does not hold the task's end for more than 10 s.
            stdout.setDeadline(10); stderr.setDeadline(10)
            await pumps.waitForAll()
            return code
        }
        log.close()
        journal.noteOutput(id)
        journal.trimOutputs(toAtMost: maxLogBytes * NodeConfig.totalLogFactor, keeping: Set(running.keys))
        let state: TaskRecord.State = r.cancelled ? .cancelled : (code == 0 ? .done : .failed)
        journal.update(id) { $0.state = state; $0.exitCode = Int(code); $0.finished = Clock.rfc3339(); $0.reason = nil }
        Log.info("task \(state.rawValue), exit \(code)", context: ["task": id, "role": role, "name": task, "peer": ch.peer])
        if let bg { await announce("run-finished", bg, id: id, exitCode: Int(code)) }
        try? await ch.send(.exit(code: Int(code), state: state.rawValue))
    }

    /// One of a task's output pipes, to its log and (while it listens) to the submitter.
    static func pump(_ pipe: AsyncFD, _ type: FrameType, to ch: SecureChannel, log: OutputLog) async {
        var listening = true
        while let chunk = await pipe.read(max: Frame.maxPayload) {
            log.append(type, chunk)
            if listening { do { try await ch.send(Frame(type, chunk)) } catch { listening = false } }
        }
        pipe.abort()
    }

    /// The submitter's frames to the task: stdin, end of stdin, signals; until `next` (true: the
    /// submitter is done with this run, which has ended) or the end of the channel (false).
    func forwardInput(from ch: SecureChannel, to stdin: AsyncFD, for r: Running, detached: Bool) async -> Bool {
        while let f = try? await ch.receive() {
            switch f.type {
            case .stdin:
                // A failed write (the task closed its stdin or ended) drops later input.
                if !(await stdin.write(f.payload)) { stdin.abort() }
            case .stdinEOF: stdin.close()
            case .signal: signal(r, Int32(f.payload.first ?? UInt8(SIGINT)))
            case .next:
                stdin.close()
                return true
            default: break
            }
        }
        stdin.close()
        // The submitter vanished without the task ending: hang up on it, as sshd does, so a
        // retry elsewhere never races a copy still running here. Detached runs go on.
        if !r.finished, !r.exited, !detached { signal(r, SIGHUP) }
        return false
    }

    /// `cancel ID` on the node running it: SIGINT to its process group, as a Ctrl-C at the
    /// submitter would (a paused run is continued to see it; SIGKILL follows). False if no run of
    /// that id is here.
    func cancel(_ id: String) -> Bool {
        guard let r = running[id], !r.finished else { return false }
        signal(r, SIGINT)
        return true
    }

    /// A place among `max_tasks`; false if the run is cancelled while it waits.
    /// `waited`: the slot came later (trust may have changed meanwhile).
    private func acquireSlot(for r: Running) async -> (got: Bool, waited: Bool) {
        if r.cancelled { return (false, false) }
        if freeSlots > 0 { freeSlots -= 1; return (true, false) }
        return (await withCheckedContinuation { slotWaiters.append((r.id, $0)) }, true)
    }

    private func releaseSlot() {
        if slotWaiters.isEmpty { freeSlots += 1 } else { slotWaiters.removeFirst().c.resume(returning: true) }
    }

    /// Delivers a signal to the task's whole process group; SIGKILL follows if it lingers,
    /// so a Ctrl-C at the submitter leaves no process behind. A run still waiting for a slot
    /// stops waiting.
    func signal(_ r: Running, _ sig: Int32) {
        r.cancelled = true
        if let i = slotWaiters.firstIndex(where: { $0.id == r.id }) { slotWaiters.remove(at: i).c.resume(returning: false) }
        let pid = r.pid
        guard pid > 0, !r.exited else { return }
        kill(-pid, sig)
        // A paused run must run again to see the signal (and to die of SIGINT or SIGTERM).
        if r.paused { kill(-pid, SIGCONT) }
        children.spawn {
            try? await Task.sleep(for: .seconds(3))      // cancelled: the agent stops, and kills it now
            self.killIfLingering(r, pid)
        }
    }

    private func killIfLingering(_ r: Running, _ pid: pid_t) {
        if !r.finished || kill(-pid, 0) == 0 { kill(-pid, SIGKILL) }
    }

    /// On leave: let running tasks finish for a while, then end them and tell their submitters.
    func finishAll(within seconds: Double) async {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            let seen = journal.changes.count
            guard runningCount > 0, ContinuousClock.now < deadline else { break }
            await journal.changes.wait(after: seen, timeout: deadline - ContinuousClock.now)
        }
        for r in running.values {
            await fail(r.channel, MeshError(MeshError.tempFail, "\(me) left the mesh before task \(r.id) finished"))
            r.cancelled = true
            if r.pid > 0 { kill(-r.pid, SIGKILL) }
            journal.update(r.id) { $0.state = .lost; $0.finished = Clock.rfc3339() }
        }
    }

    /// `logs`: the stored output, and with `follow` whatever comes until the task ends.
    /// `asker`: the peer asking over the task channel (nil for this node's own `logs`); it must
    /// have submitted or run the task.
    func streamLogs(id: String, follow: Bool, on ch: FrameTransport, asker: String? = nil) async {
        guard TaskJournal.isValidID(id), let record = journal.record(id) else {
            return await fail(ch, MeshError(MeshError.other, "\(me) has no task \(id)"))
        }
        if let asker, record.from != asker, record.node != asker {
            return await fail(ch, MeshError(MeshError.noPermission, "\(asker) neither submitted nor ran task \(id)"))
        }
        var follower: Follower?
        if let asker {
            let f = Follower(peer: asker, channel: ch)
            followers[ObjectIdentifier(f)] = f
            follower = f
        }
        defer { if let f = follower { followers[ObjectIdentifier(f)] = nil } }
        let reader = OutputLog.Reader(url: journal.outputFile(id))
        let deadline = ContinuousClock.now + .seconds(24 * 3600)
        while ContinuousClock.now < deadline, follower?.revoked != true {
            let seen = journal.changes.count
            var sent = false
            while let (type, bytes) = reader.next() {
                guard (try? await ch.send(Frame(type, bytes))) != nil else { return }
                sent = true
            }
            let r = journal.record(id)
            if !follow || r?.isFinal == true {
                // Drain anything written between the last read and the final state.
                while let (type, bytes) = reader.next() { guard (try? await ch.send(Frame(type, bytes))) != nil else { return } }
                try? await ch.send(.exit(code: r?.exitCode ?? 0, state: r?.state.rawValue ?? "unknown"))
                return
            }
            // Nothing new: wait for the next output, record change or revocation.
            if !sent { await journal.changes.wait(after: seen, timeout: deadline - ContinuousClock.now) }
        }
    }
}

/// A task's output as stored: records of [type u8][length u32][bytes], in arrival order.
/// At most `limit` bytes of output are kept (`max_log`): the first ones, then one line saying
/// the rest was cut (the submitter still saw all of it live).
public final class OutputLog: Sendable {
    private struct State {
        var fd: Int32               // the file, until closed (-1); both output pumps append to it
        var kept = 0
        var cut = false
    }
    private let state: Locked<State>
    private let limit: Int
    private let onAppend: @Sendable () -> Void

    public init(url: URL, limit: Int = Int.max, onAppend: @escaping @Sendable () -> Void = {}) {
        var fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        // The task's folder may not be on disk yet: the journal makes it with the record's first
        // write, on the disk queue.
        if fd < 0, errno == ENOENT, mkdir(url.deletingLastPathComponent().path, 0o700) == 0 || errno == EEXIST {
            fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        }
        state = Locked(State(fd: fd))
        self.limit = limit
        self.onAppend = onAppend
    }

    /// The line that ends a log cut at `max_log`.
    public static func cutNote(limit: Int) -> String {
        "\nrolemesh: output past max_log (\(limit >> 20) MB per task) was not kept here; it was only streamed live\n"
    }

    public func append(_ type: FrameType, _ bytes: [UInt8]) {
        // Output after close (a lingering grandchild) or a full disk loses log bytes, not the agent.
        let written = state.withLock { s -> Bool in
            guard s.fd >= 0, !s.cut else { return false }
            var record = Frame.plainHeader(type, count: bytes.count) + bytes
            if s.kept + bytes.count > limit {
                s.cut = true
                let room = max(0, limit - s.kept)
                let note = Array(Self.cutNote(limit: limit).utf8)
                record = room > 0 ? Frame.plainHeader(type, count: room) + bytes[0..<room] : []
                record += Frame.plainHeader(.stderr, count: note.count) + note
            }
            s.kept += bytes.count
            _ = FD.writeAll(s.fd, record)
            return true
        }
        if written { onAppend() }
    }

    public func close() { state.withLock { s in if s.fd >= 0 { sysClose(s.fd) }; s.fd = -1 } }

    /// Reads records as they are appended; a partly written record waits for the rest.
    public final class Reader {
        let fd: Int32
        var buffer = [UInt8]()
        public init(url: URL) { fd = open(url.path, O_RDONLY | O_CLOEXEC) }
        deinit { if fd >= 0 { sysClose(fd) } }

        public func next() -> (FrameType, [UInt8])? {
            while true {
                if buffer.count >= 5, let (t, n) = Frame.parsePlainHeader(buffer) {
                    if buffer.count >= 5 + n {
                        let type = FrameType(rawValue: t) ?? .stdout
                        let bytes = Array(buffer[5..<5 + n])
                        buffer.removeFirst(5 + n)
                        return (type, bytes)
                    }
                }
                guard fd >= 0 else { return nil }
                var chunk = [UInt8](repeating: 0, count: 1 << 16)
                let n = chunk.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { return nil }
                buffer += chunk[0..<n]
            }
        }
    }
}
