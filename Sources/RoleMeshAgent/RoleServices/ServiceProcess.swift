import RoleMeshPlatform
import RoleMeshCore
import RoleMeshStorage

/// A service's `run` executable, kept running while this node offers the service: restarted on
/// exit after 1 s, doubling to 60 s (back to 1 s after a run of a minute), in its own process
/// group; stopped with SIGTERM to the group, SIGKILL 10 s later. Its output (both streams) goes to
/// `DIR/state/services/ROLE/NAME.log`, capped at `max_log`: a full log moves to `NAME.log.1` (the one
/// before is removed), so at most twice the cap is kept. Thread-safe; its loop and its output's
/// pump are children of the agent's (`children`).
final class ServiceProcess: Sendable {
    struct Exit: Sendable { var status: Int32; var seconds: Double }
    private struct State {
        var pid: pid_t = 0
        var stopping = false
    }
    private let state = Locked(State())
    /// Bumped by `stop()` (it ends a backoff at once); `ended` once the loop is over.
    private let stopRequested = ChangeSignal(), ended = ChangeSignal()
    private let children: ChildTasks
    let definition: ServiceDefinition
    private let path: String, folder: String, environment: [String], log: URL, cap: Int
    /// Runs this many times in a row that ended within a minute: the service keeps dying.
    static let dyingAfter = 3
    static let stopGraceSeconds = 10

    init(_ d: ServiceDefinition, dir: NodeDirectory, environment: [String], cap: Int, children: ChildTasks) {
        self.children = children
        definition = d
        folder = dir.rolesDir.appendingPathComponent(d.role).path
        path = folder + "/" + (d.run ?? "")
        self.environment = environment
        log = dir.stateDir.appendingPathComponent("services").appendingPathComponent(d.role).appendingPathComponent(d.name + ".log")
        self.cap = cap
    }

    /// Starts the loop; `exited(status, keepsDying)` after each run, `started()` at each start.
    func start(started: @escaping @Sendable (pid_t) -> Void, exited: @escaping @Sendable (Exit, Bool) -> Void) {
        children.spawn { [self] in
            defer { ended.bump() }
            var backoff = 1.0, quickExits = 0
            while !state.withLock({ $0.stopping }), !Task.isCancelled {     // cancelled: the agent has stopped
                let t0 = Date()
                guard let pid = spawn() else {
                    quickExits += 1
                    exited(Exit(status: 126, seconds: 0), quickExits >= Self.dyingAfter)
                    await stopRequested.wait(after: 0, timeout: .seconds(backoff)); backoff = min(backoff * 2, 60)
                    continue
                }
                let stopped = state.withLock { s -> Bool in s.pid = pid; return s.stopping }
                if stopped { kill(-pid, SIGTERM) }
                started(pid)
                let status = await Spawn.exit(of: pid)
                state.withLock { $0.pid = 0 }
                let ran = Date().timeIntervalSince(t0)
                if ran >= 60 { backoff = 1; quickExits = 0 } else { quickExits += 1 }
                if state.withLock({ $0.stopping }) { break }
                exited(Exit(status: status, seconds: ran), quickExits >= Self.dyingAfter)
                await stopRequested.wait(after: 0, timeout: .seconds(backoff))
                backoff = min(backoff * 2, 60)
            }
        }
    }

    /// SIGTERM to its process group, SIGKILL 10 s later if it is still there; returns once it ended.
    func stop() async {
        let pid = state.withLock { s -> pid_t in s.stopping = true; return s.pid }
        stopRequested.bump()      // ends a backoff at once
        if pid > 0 { kill(-pid, SIGTERM) }
        if await ended.wait(after: 0, timeout: .seconds(Self.stopGraceSeconds)) == 0, pid > 0 {
            kill(-pid, SIGKILL)
            await ended.wait(after: 0)
        }
    }

    var pid: pid_t { state.withLock { $0.pid } }

    /// One start: stdin from /dev/null, output into a pipe that `pump` writes into the log.
    private func spawn() -> pid_t? {
        try? FileManager.default.createDirectory(at: log.deletingLastPathComponent(), withIntermediateDirectories: true)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard null >= 0, let (readEnd, writeEnd) = Spawn.pipe() else {
            if null >= 0 { sysClose(null) }
            return nil
        }
        let r = Spawn.start(path: path, args: [], environment: environment, directory: folder, stdin: null, stdout: writeEnd, stderr: writeEnd)
        sysClose(null); sysClose(writeEnd)
        guard case .success(let pid) = r else { sysClose(readEnd); return nil }
        let io = AsyncFD(readEnd)
        let log = self.log, cap = self.cap
        children.spawn { await Self.pump(io, to: log, cap: cap) }
        return pid
    }

    /// The process's output appended to its log; a log at `cap` moves to `.log.1` first.
    static func pump(_ io: AsyncFD, to log: URL, cap: Int) async {
        var fd = open(log.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        var size = Int(lseek(fd, 0, SEEK_END))
        while let bytes = await io.read() {
            if size + bytes.count > cap {
                sysClose(fd)
                _ = rename(log.path, log.path + ".1")
                fd = open(log.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                size = 0
            }
            if fd >= 0, FD.writeAll(fd, bytes) { size += bytes.count }
        }
        if fd >= 0 { sysClose(fd) }
        io.close()
    }
}
