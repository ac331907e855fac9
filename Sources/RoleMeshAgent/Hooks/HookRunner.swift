import RoleMeshPlatform

/// `DIR/hooks/`: every executable there runs once per `watch` event, with the event's JSON line
/// on stdin, `ROLEMESH_EVENT`, `ROLEMESH_NODE` (the member the event is about) and
/// `ROLEMESH_SELF` (this node) in its environment (and `PATH`, `HOME`, `USER`, `LANG`, `LC_*`,
/// `TZ`). Unlike Serf's handlers, nothing waits on a hook: each hook has its own line of at most
/// 4 runs at once (so a slow hook delays only its own later runs), a run is killed (its process
/// group) after 30 s, and a line longer than 64 drops its oldest event, logged. A failing hook is
/// logged, nothing more. An actor: runs are children of the agent's (`children`) awaiting their child's exit.
actor HookRunner {
    let dir: URL
    let me: String
    static let perHook = 4
    static let backlog = 64
    static let timeLimit: Duration = .seconds(30)

    private struct Line {
        var running = 0
        var waiting: [(event: String, node: String, line: [UInt8])] = []
    }
    private var lines: [String: Line] = [:]
    private let children: ChildTasks

    init(dir: URL, me: String, children: ChildTasks) { self.dir = dir; self.me = me; self.children = children }

    /// Executable regular files of the folder, by name; dot files and editor backups (`~`) are not hooks.
    nonisolated func hooks() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().filter { name in
            guard !name.hasPrefix("."), !name.hasSuffix("~") else { return false }
            var st = stat()
            let path = dir.path + "/" + name
            return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
        }
    }

    /// One event, for every hook there is now (the folder is listed here, off the agent queue).
    func fire(event: String, node: String, line: [UInt8]) {
        for hook in hooks() {
            var l = lines[hook, default: Line()]
            l.waiting.append((event, node, line))
            if l.waiting.count > Self.backlog {
                l.waiting.removeFirst()
                Log.warn("hook \(hook) is \(Self.backlog) events behind; dropping its oldest")
            }
            lines[hook] = l
            startWaiting(hook)
        }
    }

    private func startWaiting(_ hook: String) {
        while var l = lines[hook], l.running < Self.perHook, !l.waiting.isEmpty {
            let next = l.waiting.removeFirst()
            l.running += 1
            lines[hook] = l
            children.spawn { await self.run(hook, event: next.event, node: next.node, line: next.line) }
        }
    }

    private func run(_ hook: String, event: String, node: String, line: [UInt8]) async {
        defer {
            lines[hook]?.running -= 1
            startWaiting(hook)
        }
        let env = Executor.environment(agent: ProcessInfo.processInfo.environment, passthrough: [],
                                       own: [("ROLEMESH_EVENT", event), ("ROLEMESH_NODE", node), ("ROLEMESH_SELF", me)])
        guard let (inRead, inWrite) = Spawn.pipe() else { return Log.warn("hook \(hook): cannot create a pipe") }
        let devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { if devnull >= 0 { close(devnull) } }
        let spawned = Spawn.start(path: dir.path + "/" + hook, args: [], environment: env, directory: dir.path,
                                  stdin: inRead, stdout: devnull, stderr: devnull)
        close(inRead)
        let stdin = AsyncFD(inWrite)
        guard case .success(let pid) = spawned else {
            stdin.abort()
            return Log.warn("hook \(hook) could not be started for \(event)")
        }
        // The line, then end of input (a hook that does not read it just gets a closed pipe), beside
        // the 30-s limit; both end with the process.
        let code = await withTaskGroup(of: Int32?.self) { group in
            group.addTask { _ = await stdin.write(line); stdin.close(); return nil }
            group.addTask {
                guard (try? await Task.sleep(for: Self.timeLimit)) != nil else { return nil }
                kill(-pid, SIGKILL)
                return nil
            }
            group.addTask { await Spawn.exit(of: pid) }
            var code: Int32 = 0
            for await r in group {
                guard let r else { continue }
                code = r
                stdin.abort()
                group.cancelAll()
            }
            return code
        }
        if code != 0 { Log.warn("hook \(hook) for \(event) \(code == 128 + SIGKILL ? "was killed (30 s limit)" : "exited \(code)")") }
    }
}
