#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import RoleMeshControl
import RoleMeshCore

/// Runs tasks that peers submit over the task channel: `DIR/roles/ROLE/TASK`, with their
/// arguments, in a fresh working directory, in its own process group, at most `max_tasks`
/// at once (more wait in line). Output streams back live and is kept in the journal.
///
/// Threads: each connection has its own blocking threads (Dispatch global queues); they
/// reach agent state only through `Agent.sync`.
final class Executor: @unchecked Sendable {
    unowned let agent: Agent
    let journal: TaskJournal
    let slots: DispatchSemaphore
    private let lock = NSLock()
    private var running: [String: Running] = [:]

    final class Running: @unchecked Sendable {
        let id: String
        let channel: FrameTransport
        /// The node that submitted it (the authenticated peer of its channel).
        let peer: String
        var pid: pid_t = 0
        var cancelled = false
        var revoked = false
        var exited = false
        var finished = false
        init(id: String, channel: FrameTransport, peer: String) { self.id = id; self.channel = channel; self.peer = peer }
    }

    /// A `logs` stream served to a peer over the task channel.
    final class Follower: @unchecked Sendable {
        let peer: String
        let channel: FrameTransport
        var revoked = false
        init(peer: String, channel: FrameTransport) { self.peer = peer; self.channel = channel }
    }
    private var followers: [ObjectIdentifier: Follower] = [:]

    init(agent: Agent, journal: TaskJournal, maxTasks: Int) {
        self.agent = agent
        self.journal = journal
        slots = DispatchSemaphore(value: maxTasks)
        // Nothing runs across a restart: working directories left by a crash go.
        try? FileManager.default.removeItem(at: agent.dir.stateDir.appendingPathComponent("work"))
    }

    var runningCount: Int { lock.lock(); defer { lock.unlock() }; return running.values.filter { !$0.finished }.count }

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

    /// Serves one authenticated connection until its request is done.
    func serve(_ channel: SecureChannel) {
        defer { channel.close() }
        guard let first = try? channel.receive(), first.type == .request, let req = first.decode(TaskRequest.self) else { return }
        // Trust may have been revoked while the handshake ran.
        guard agent.sync({ $0.keyRing.trusted[channel.peer] != nil }) else {
            return fail(channel, revokedError(channel.peer))
        }
        switch req.op {
        case "run": run(req, on: channel)
        case "logs": streamLogs(req, on: channel, asker: channel.peer)
        default: fail(channel, MeshError(MeshError.usage, "unknown request"))
        }
    }

    func fail(_ ch: FrameTransport, _ e: MeshError) {
        try? ch.send(.error(e))
    }

    func revokedError(_ peer: String) -> MeshError {
        MeshError(MeshError.noPermission, "trust in \(peer) was revoked on \(agent.name)")
    }

    /// `peer`'s key was removed or changed: its running and waiting tasks end (SIGTERM to the
    /// process group, SIGKILL 3 s later; journaled `cancelled`), its channels get an `error`
    /// (77) and close, and `logs` streams served to it end. Called off the agent queue.
    func revoke(_ peer: String) {
        let why = revokedError(peer)
        lock.lock()
        let runs = running.values.filter { $0.peer == peer && !$0.finished }
        for r in runs { r.revoked = true }
        let streams = followers.values.filter { $0.peer == peer }
        for f in streams { f.revoked = true }
        lock.unlock()
        for r in runs {
            Log.info("ending task \(r.id) from \(peer): trust in \(peer) was revoked")
            fail(r.channel, why)
            r.channel.close()
            signal(r, SIGTERM)
        }
        for f in streams {
            fail(f.channel, why)
            f.channel.close()
        }
        journal.noteChange()    // wakes the revoked streams now, not at their next re-check
    }

    /// ROLE and TASK as the contract allows them: `[A-Za-z0-9][A-Za-z0-9._-]*`, role ≤ 63 bytes, task ≤ 255.
    static func isValidName(role: String, task: String) -> Bool {
        NodeName.isValid(role) && Submission.isValidTaskName(task)
    }

    /// The task file, if ROLE/TASK names an executable file inside the role's folder.
    func taskPath(role: String, task: String) -> String? {
        guard Self.isValidName(role: role, task: task) else { return nil }
        let roleDir = agent.dir.rolesDir.appendingPathComponent(role).path
        let path = roleDir + "/" + task
        // Resolve links: the file must really live inside the role's folder.
        guard let realRole = realpath(roleDir, nil), let realTask = realpath(path, nil) else { return nil }
        defer { free(realRole); free(realTask) }
        let r = String(cString: realRole), t = String(cString: realTask)
        var st = stat()
        guard t.hasPrefix(r + "/"), stat(t, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(t, X_OK) == 0 else { return nil }
        return t
    }

    func run(_ req: TaskRequest, on ch: SecureChannel) {
        let me = agent.name
        guard let id = req.id, TaskJournal.isValidID(id), let role = req.role,
              let task = req.task else {
            return fail(ch, MeshError(MeshError.usage, "a malformed task request"))
        }
        guard Self.isValidName(role: role, task: task) else {
            return fail(ch, MeshError(MeshError.usage, "not a valid task name: ROLE and TASK are letters, digits, '.', '_' or '-', starting with a letter or digit"))
        }
        // A peer picks the id: it may never reuse one this node knows, except our own
        // submission to ourselves that has not started yet.
        if let existing = journal.record(id),
           !(ch.peer == me && existing.from == me && !existing.isFinal && existing.started == nil) {
            return fail(ch, MeshError(MeshError.usage, "task id already used"))
        }
        if let why = agent.sync({ $0.refusesTasks }) { return fail(ch, MeshError(MeshError.unavailable, "\(me) \(why)")) }
        guard let path = taskPath(role: role, task: task) else {
            return fail(ch, MeshError(MeshError.noPermission, "\(me) has no task \(role)/\(task) (no executable file roles/\(role)/\(task) inside the role's folder)"))
        }
        let args = req.args ?? []
        var initial = TaskRecord(id: id, role: role, task: task, node: me, from: ch.peer, state: .queued,
                                 submitted: req.submitted ?? Clock.rfc3339())
        initial.args = args
        journal.update(id, initial: initial) { $0.node = me; $0.state = .queued; $0.args = args }

        let r = Running(id: id, channel: ch, peer: ch.peer)
        lock.lock(); running[id] = r; lock.unlock()
        defer { lock.lock(); r.finished = true; running[id] = nil; lock.unlock(); journal.noteChange() }

        // The task's standard input: a pipe whose read end the task gets.
        guard let (stdinRead, stdinWrite) = Spawn.pipe() else { return fail(ch, MeshError(MeshError.other, "\(me) cannot create pipes for the task")) }
        let stdinWriter = PipeEnd(stdinWrite)
        var stdinReader: Int32 = stdinRead
        defer { if stdinReader >= 0 { close(stdinReader) } }

        // The connection's input: stdin, end of stdin, signals. Started before waiting for a
        // slot, so a Ctrl-C while queued still cancels.
        onWorkerThread {
            while true {
                guard let f = try? ch.receive() else { break }
                switch f.type {
                case .stdin: stdinWriter.write(f.payload)
                case .stdinEOF: stdinWriter.close()
                case .signal: self.signal(r, Int32(f.payload.first ?? UInt8(SIGINT)))
                default: break
                }
            }
            stdinWriter.close()
            // The submitter vanished without the task ending: hang up on it, as sshd does, so a
            // retry elsewhere never races a copy still running here. Detached runs go on.
            self.lock.lock(); let over = r.finished || r.exited; self.lock.unlock()
            if !over, req.detached != true { self.signal(r, SIGHUP) }
        }

        // Wait for a slot, but give up as soon as the run is cancelled (Ctrl-C, revocation).
        var gotSlot = true
        while slots.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            lock.lock(); let c = r.cancelled; lock.unlock()
            if c { gotSlot = false; break }
        }
        defer { if gotSlot { slots.signal() } }
        // Trust is checked again when the slot comes: a revoked peer's task never starts.
        if gotSlot, !agent.sync({ $0.keyRing.trusted[ch.peer] != nil }) {
            lock.lock(); r.revoked = true; r.cancelled = true; lock.unlock()
            fail(ch, revokedError(ch.peer))
        }
        lock.lock(); let cancelledBefore = r.cancelled, revokedBefore = r.revoked; lock.unlock()
        if cancelledBefore {
            journal.update(id) { $0.state = .cancelled; $0.finished = Clock.rfc3339(); $0.exitCode = revokedBefore ? 77 : 130 }
            if !revokedBefore { try? ch.send(.exit(code: 130, state: "cancelled")) }
            return
        }

        let work = agent.dir.stateDir.appendingPathComponent("work/\(id)")
        try? FileManager.default.removeItem(at: work)
        try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let env = Self.environment(agent: ProcessInfo.processInfo.environment, passthrough: agent.config.envPassthrough,
                                   own: [("ROLEMESH_NODE", me), ("ROLEMESH_FROM", ch.peer), ("ROLEMESH_ROLE", role),
                                         ("ROLEMESH_TASK", task), ("ROLEMESH_TASK_ID", id)])
        let started = Frame(.started, encoding: StartedInfo(id: id, node: me, state: "running"))
        guard let (outRead, outWrite) = Spawn.pipe() else { return fail(ch, MeshError(MeshError.other, "\(me) cannot create pipes for the task")) }
        guard let (errRead, errWrite) = Spawn.pipe() else {
            close(outRead); close(outWrite)
            return fail(ch, MeshError(MeshError.other, "\(me) cannot create pipes for the task"))
        }
        let outFDs = [outRead, outWrite], errFDs = [errRead, errWrite]
        let spawned = Spawn.start(path: path, args: args, environment: env, directory: work.path,
                                  stdin: stdinReader, stdout: outFDs[1], stderr: errFDs[1])
        close(stdinReader); stdinReader = -1
        close(outFDs[1]); close(errFDs[1])
        let pid: pid_t
        switch spawned {
        case .success(let p): pid = p
        case .failure(let e):
            close(outFDs[0]); close(errFDs[0])
            var code = 126
            // Like a shell: the file is there but cannot be executed (no #! line, bad interpreter): 126.
            var why = "rolemesh: \(me) could not execute \(role)/\(task) (is it a script without a #! line, or a binary for another system?)\n"
            if e.code == ENOENT, let interpreter = Spawn.interpreter(of: path) {
                code = 127
                why = "rolemesh: \(me) could not execute \(role)/\(task): its interpreter \(interpreter) (named on its #! line) was not found\n"
            }
            journal.update(id) { $0.state = .failed; $0.started = Clock.rfc3339(); $0.finished = Clock.rfc3339(); $0.exitCode = code }
            try? ch.send(started)
            try? ch.send(Frame(.stderr, Array(why.utf8)))
            try? ch.send(.exit(code: code, state: "failed"))
            try? FileManager.default.removeItem(at: work)
            return
        }
        lock.lock(); r.pid = pid; let cancelledEarly = r.cancelled, revokedEarly = r.revoked; lock.unlock()
        if cancelledEarly { self.signal(r, revokedEarly ? SIGTERM : SIGINT) }
        journal.update(id) { $0.state = .running; $0.started = Clock.rfc3339() }
        try? ch.send(started)

        // Output: to the journal and, while it listens, to the submitter. A slow reader slows
        // the task down (the pipe fills) instead of growing memory.
        let log = OutputLog(url: journal.outputFile(id), onAppend: { [journal] in journal.noteChange() })
        let pumps = DispatchGroup()
        for (fd, type) in [(outFDs[0], FrameType.stdout), (errFDs[0], FrameType.stderr)] {
            pumps.enter()
            onWorkerThread {
                defer { close(fd); pumps.leave() }
                var buf = [UInt8](repeating: 0, count: Frame.maxPayload)
                var listening = true
                while true {
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    let chunk = Array(buf[0..<n])
                    log.append(type, chunk)
                    if listening { do { try ch.send(Frame(type, chunk)) } catch { listening = false } }
                }
            }
        }
        let code = Spawn.wait(pid)
        lock.lock(); r.exited = true; let cancelledNow = r.cancelled; lock.unlock()
        if cancelledNow { kill(-pid, SIGKILL) }   // nothing of a cancelled task outlives it
        _ = pumps.wait(timeout: .now() + 10)     // output written just before exit still arrives
        log.close()
        lock.lock(); let wasCancelled = r.cancelled; lock.unlock()
        let state: TaskRecord.State = wasCancelled ? .cancelled : (code == 0 ? .done : .failed)
        journal.update(id) { $0.state = state; $0.exitCode = Int(code); $0.finished = Clock.rfc3339() }
        try? ch.send(.exit(code: Int(code), state: state.rawValue))
        try? FileManager.default.removeItem(at: work)
    }

    /// Delivers a signal to the task's whole process group; SIGKILL follows if it lingers,
    /// so a Ctrl-C at the submitter leaves no process behind.
    func signal(_ r: Running, _ sig: Int32) {
        lock.lock()
        r.cancelled = true
        let pid = r.pid, exited = r.exited
        lock.unlock()
        guard pid > 0, !exited else { return }
        kill(-pid, sig)
        DispatchQueue.global().asyncAfter(deadline: .now() + 3) {
            self.lock.lock(); let done = r.finished; self.lock.unlock()
            if !done || kill(-pid, 0) == 0 { kill(-pid, SIGKILL) }
        }
    }

    /// On leave: let running tasks finish for a while, then end them and tell their submitters.
    func finishAll(within seconds: Double, then done: @escaping @Sendable () -> Void) {
        onWorkerThread {
            let deadline = Date().addingTimeInterval(seconds)
            var seen = self.journal.changeCount
            while self.runningCount > 0, Date() < deadline { seen = self.journal.waitForChange(after: seen, until: deadline) }
            self.lock.lock(); let left = Array(self.running.values); self.lock.unlock()
            for r in left {
                self.fail(r.channel, MeshError(MeshError.tempFail, "\(self.agent.name) left the mesh before task \(r.id) finished"))
                self.lock.lock(); r.cancelled = true; let pid = r.pid; self.lock.unlock()
                if pid > 0 { kill(-pid, SIGKILL) }
                self.journal.update(r.id) { $0.state = .lost; $0.finished = Clock.rfc3339() }
            }
            done()
        }
    }

    /// `logs`: the stored output, and with `follow` whatever comes until the task ends.
    /// `asker`: the peer asking over the task channel (nil for this node's own `logs`); it must
    /// have submitted or run the task.
    func streamLogs(_ req: TaskRequest, on ch: FrameTransport, asker: String? = nil) {
        guard let id = req.id, TaskJournal.isValidID(id), let record = journal.record(id) else {
            return fail(ch, MeshError(MeshError.other, "\(agent.name) has no task \(req.id ?? "")"))
        }
        if let asker, record.from != asker, record.node != asker {
            return fail(ch, MeshError(MeshError.noPermission, "\(asker) neither submitted nor ran task \(id)"))
        }
        var follower: Follower?
        if let asker {
            let f = Follower(peer: asker, channel: ch)
            lock.lock(); followers[ObjectIdentifier(f)] = f; lock.unlock()
            follower = f
        }
        defer { if let f = follower { lock.lock(); followers[ObjectIdentifier(f)] = nil; lock.unlock() } }
        func revoked() -> Bool {
            guard let f = follower else { return false }
            lock.lock(); defer { lock.unlock() }
            return f.revoked
        }
        let follow = req.follow ?? false
        let reader = OutputLog.Reader(url: journal.outputFile(id))
        let deadline = Date().addingTimeInterval(24 * 3600)
        var seen = journal.changeCount
        while Date() < deadline, !revoked() {
            var sent = false
            while let (type, bytes) = reader.next() {
                guard (try? ch.send(Frame(type, bytes))) != nil else { return }
                sent = true
            }
            let r = journal.record(id)
            if !follow || r?.isFinal == true {
                // Drain anything written between the last read and the final state.
                while let (type, bytes) = reader.next() { guard (try? ch.send(Frame(type, bytes))) != nil else { return } }
                let code = r?.exitCode ?? 0
                try? ch.send(.exit(code: code, state: r?.state.rawValue ?? "unknown"))
                return
            }
            // Nothing new: wait for the next output, record change or revocation.
            if !sent { seen = journal.waitForChange(after: seen, until: deadline) }
        }
    }
}

/// A task's output as stored: records of [type u8][length u32][bytes], in arrival order.
final class OutputLog: @unchecked Sendable {
    private let handle: FileHandle?
    private let lock = NSLock()
    private var closed = false
    private let onAppend: @Sendable () -> Void

    init(url: URL, onAppend: @escaping @Sendable () -> Void = {}) {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        handle = try? FileHandle(forWritingTo: url)
        self.onAppend = onAppend
    }

    func append(_ type: FrameType, _ bytes: [UInt8]) {
        let header = Frame.plainHeader(type, count: bytes.count)
        lock.lock(); defer { lock.unlock() }
        // Never the trapping `write(_:)`: output after close (a lingering grandchild) or a full
        // disk loses log bytes, not the agent.
        guard !closed else { return }
        try? handle?.write(contentsOf: Data(header + bytes))
        onAppend()
    }

    func close() { lock.lock(); closed = true; try? handle?.close(); lock.unlock() }

    /// Reads records as they are appended; a partly written record waits for the rest.
    final class Reader {
        let handle: FileHandle?
        var buffer = [UInt8]()
        init(url: URL) { handle = try? FileHandle(forReadingFrom: url) }
        deinit { try? handle?.close() }

        func next() -> (FrameType, [UInt8])? {
            while true {
                if buffer.count >= 5, let (t, n) = Frame.parsePlainHeader(buffer) {
                    if buffer.count >= 5 + n {
                        let type = FrameType(rawValue: t) ?? .stdout
                        let bytes = Array(buffer[5..<5 + n])
                        buffer.removeFirst(5 + n)
                        return (type, bytes)
                    }
                }
                guard let data = try? handle?.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
                buffer += data
            }
        }
    }
}
