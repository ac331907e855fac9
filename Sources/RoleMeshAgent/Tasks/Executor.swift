#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
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
        var pid: pid_t = 0
        var cancelled = false
        var exited = false
        var finished = false
        init(id: String, channel: FrameTransport) { self.id = id; self.channel = channel }
    }

    init(agent: Agent, journal: TaskJournal, maxTasks: Int) {
        self.agent = agent
        self.journal = journal
        slots = DispatchSemaphore(value: maxTasks)
        // Nothing runs across a restart: working directories left by a crash go.
        try? FileManager.default.removeItem(at: agent.dir.stateDir.appendingPathComponent("work"))
    }

    var runningCount: Int { lock.lock(); defer { lock.unlock() }; return running.values.filter { !$0.finished }.count }

    /// GNU env with `--default-signal` (coreutils 8.31+), if this system has it.
    static let signalResetter: String? = {
        #if os(Linux)
        for env in ["/usr/bin/env", "/bin/env"] where FileManager.default.isExecutableFile(atPath: env) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: env)
            p.arguments = ["--default-signal", "true"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            if (try? p.run()) != nil { p.waitUntilExit(); if p.terminationStatus == 0 { return env } }
        }
        #endif
        return nil
    }()

    /// Serves one authenticated connection until its request is done.
    func serve(_ channel: SecureChannel) {
        defer { channel.close() }
        guard let first = try? channel.receive(), first.type == .request, let req = first.json else { return }
        switch req["op"]?.string {
        case "run": run(req, on: channel)
        case "logs": streamLogs(req, on: channel)
        default: fail(channel, MeshError(MeshError.usage, "unknown request"))
        }
    }

    func fail(_ ch: FrameTransport, _ e: MeshError) {
        try? ch.send(.error(e))
    }

    /// The task file, if ROLE/TASK names an executable file inside the role's folder.
    func taskPath(role: String, task: String) -> String? {
        guard NodeName.isValid(role), Submission.isValidTaskName(task) else { return nil }
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

    func run(_ req: JSON, on ch: SecureChannel) {
        let me = agent.name
        guard let id = req["id"]?.string, TaskJournal.isValidID(id), let role = req["role"]?.string,
              let task = req["task"]?.string else {
            return fail(ch, MeshError(MeshError.usage, "a malformed task request"))
        }
        if let why = agent.sync({ $0.refusesTasks }) { return fail(ch, MeshError(MeshError.unavailable, "\(me) \(why)")) }
        guard let path = taskPath(role: role, task: task) else {
            return fail(ch, MeshError(MeshError.noPermission, "\(me) has no task \(role)/\(task) (no executable file roles/\(role)/\(task) inside the role's folder)"))
        }
        let args = (req["args"]?.array ?? []).compactMap(\.string)
        var initial = TaskRecord(id: id, role: role, task: task, node: me, from: ch.peer, state: .queued,
                                 submitted: req["submitted"]?.string ?? Clock.rfc3339())
        initial.args = args
        journal.update(id, initial: initial) { $0.node = me; $0.state = .queued; $0.args = args }

        let r = Running(id: id, channel: ch)
        lock.lock(); running[id] = r; lock.unlock()
        defer { lock.lock(); r.finished = true; running[id] = nil; lock.unlock() }

        // The connection's input: stdin, end of stdin, signals. Started before waiting for a
        // slot, so a Ctrl-C while queued still cancels.
        let stdinPipe = Pipe()
        let stdinWriter = stdinPipe.fileHandleForWriting
        nonisolated(unsafe) var stdinOpen = true
        onWorkerThread {
            while true {
                guard let f = try? ch.receive() else { break }
                switch f.type {
                case .stdin:
                    if stdinOpen, !FD.writeAll(stdinWriter.fileDescriptor, f.payload) { stdinOpen = false; try? stdinWriter.close() }
                case .stdinEOF:
                    if stdinOpen { stdinOpen = false; try? stdinWriter.close() }
                case .signal:
                    self.signal(r, Int32(f.payload.first ?? UInt8(SIGINT)))
                default: break
                }
            }
            if stdinOpen { stdinOpen = false; try? stdinWriter.close() }
            // The submitter vanished without the task ending: hang up on it, as sshd does, so a
            // retry elsewhere never races a copy still running here. Detached runs go on.
            self.lock.lock(); let over = r.finished || r.exited; self.lock.unlock()
            if !over, req["detached"]?.bool != true { self.signal(r, SIGHUP) }
        }

        slots.wait()
        defer { slots.signal() }
        if r.cancelled {
            journal.update(id) { $0.state = .cancelled; $0.finished = Clock.rfc3339(); $0.exitCode = 130 }
            try? ch.send(.exit(code: 130, state: "cancelled"))
            return
        }

        let work = agent.dir.stateDir.appendingPathComponent("work/\(id)")
        try? FileManager.default.removeItem(at: work)
        try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let p = Process()
        if let env = Executor.signalResetter {
            // The agent ignores SIGPIPE (and its service manager may have set more); a task starts
            // with default signal handling, as from a shell, so `producer | head` ends quietly.
            p.executableURL = URL(fileURLWithPath: env)
            p.arguments = ["--default-signal", path] + args
        } else {
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = args
        }
        p.currentDirectoryURL = work
        var env = ProcessInfo.processInfo.environment
        env["ROLEMESH_NODE"] = me
        env["ROLEMESH_FROM"] = ch.peer
        env["ROLEMESH_ROLE"] = role
        env["ROLEMESH_TASK"] = task
        env["ROLEMESH_TASK_ID"] = id
        env["ROLEMESH_DIR"] = nil
        p.environment = env
        let started = Frame(.started, json: .object([("id", .string(id)), ("node", .string(me)), ("state", .string("running"))]))
        let out = Pipe(), err = Pipe()
        p.standardInput = stdinPipe
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch {
            // Like a shell: the file is there but cannot be executed (no #! line, bad interpreter): 126.
            let why = "rolemesh: \(me) could not execute \(role)/\(task) (is it a script without a #! line, or a binary for another system?)\n"
            journal.update(id) { $0.state = .failed; $0.started = Clock.rfc3339(); $0.finished = Clock.rfc3339(); $0.exitCode = 126 }
            try? ch.send(started)
            try? ch.send(Frame(.stderr, Array(why.utf8)))
            try? ch.send(.exit(code: 126, state: "failed"))
            try? FileManager.default.removeItem(at: work)
            return
        }
        lock.lock(); r.pid = p.processIdentifier; let cancelledEarly = r.cancelled; lock.unlock()
        if cancelledEarly { self.signal(r, SIGINT) }
        try? stdinPipe.fileHandleForReading.close()
        try? out.fileHandleForWriting.close()
        try? err.fileHandleForWriting.close()
        journal.update(id) { $0.state = .running; $0.started = Clock.rfc3339() }
        try? ch.send(started)

        // Output: to the journal and, while it listens, to the submitter. A slow reader slows
        // the task down (the pipe fills) instead of growing memory.
        let log = OutputLog(url: journal.outputFile(id))
        let pumps = DispatchGroup()
        for (pipe, type) in [(out, FrameType.stdout), (err, FrameType.stderr)] {
            pumps.enter()
            onWorkerThread {
                defer { pumps.leave() }
                let fd = pipe.fileHandleForReading.fileDescriptor
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
                try? pipe.fileHandleForReading.close()
            }
        }
        p.waitUntilExit()
        lock.lock(); r.exited = true; let cancelledNow = r.cancelled; lock.unlock()
        if cancelledNow { kill(-p.processIdentifier, SIGKILL) }   // nothing of a cancelled task outlives it
        _ = pumps.wait(timeout: .now() + 10)     // output written just before exit still arrives
        log.close()
        let code: Int32 = p.terminationReason == .exit ? p.terminationStatus : 128 + p.terminationStatus
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
            while self.runningCount > 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
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
    func streamLogs(_ req: JSON, on ch: FrameTransport) {
        guard let id = req["id"]?.string, TaskJournal.isValidID(id), journal.record(id) != nil else {
            return fail(ch, MeshError(MeshError.other, "\(agent.name) has no task \(req["id"]?.string ?? "")"))
        }
        let follow = req["follow"]?.bool ?? false
        let reader = OutputLog.Reader(url: journal.outputFile(id))
        let deadline = Date().addingTimeInterval(24 * 3600)
        while Date() < deadline {
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
            if !sent { Thread.sleep(forTimeInterval: 0.1) }
        }
    }
}

/// A task's output as stored: records of [type u8][length u32][bytes], in arrival order.
final class OutputLog: @unchecked Sendable {
    private let handle: FileHandle?
    private let lock = NSLock()
    private var closed = false

    init(url: URL) {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        handle = try? FileHandle(forWritingTo: url)
    }

    func append(_ type: FrameType, _ bytes: [UInt8]) {
        let header = Frame.plainHeader(type, count: bytes.count)
        lock.lock(); defer { lock.unlock() }
        // Never the trapping `write(_:)`: output after close (a lingering grandchild) or a full
        // disk loses log bytes, not the agent.
        guard !closed else { return }
        try? handle?.write(contentsOf: Data(header + bytes))
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
