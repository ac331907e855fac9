import RoleMeshPlatform
import Foundation
import RoleMeshAgent
import RoleMeshStorage
import RoleMeshTaskChannel

/// `tasks`: how fast commands answer, and `rolemesh submit ROLE/true` to another local agent
/// against `ssh 127.0.0.1 true` with key authentication (a private sshd started here on a
/// loopback port), and the MB/s of a large stdout stream through each. Side by side, in one run.
///
/// Every command is a new process timed from here (posix_spawn to waitpid), as a script running
/// it in a loop would see it. Both journals hold `--journal` finished tasks first, so the figures
/// are those of a node with a month of history. `ROLEMESH_BENCH_BINARY` names the `rolemesh`
/// measured (the packaged one, with the Swift runtime linked in); the default is the one built
/// next to this bench.
enum TasksBench {
    static func main(_ args: [String]) throws(BenchExit) {
        let o = try Options(args, allowed: ["runs", "megabytes", "journal"])
        let runs = try o.int("runs", 30, min: 3, max: 500)
        let megabytes = try o.int("megabytes", 50, min: 1, max: 1000)
        let journal = try o.int("journal", 10_000, min: 0, max: 200_000)
        do {
            try body(runs: runs, bytes: megabytes * 1_048_576, journal: journal)
        } catch {
            throw .failed("tasks: \(error)")
        }
    }

    static func time(_ f: () throws -> Void) rethrows -> Double {
        let t0 = monoNow()
        try f()
        return monoNow() - t0
    }

    /// One new process, stdin and output on /dev/null, from posix_spawn to its exit (a blocking
    /// waitpid: `run`'s polling would add up to 5 ms); milliseconds, or a failure naming the status.
    static func timedRun(_ path: String, _ args: [String]) throws -> Double {
        let t0 = monoNow()
        let pid = try spawn(path, args, label: "timed \(args.first ?? path)")
        let killer = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: killer)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let dt = (monoNow() - t0) * 1000
        killer.cancel()
        Cleanup.shared.untrack(pid)
        guard status == 0 else { throw BenchError("\(path) \(args.joined(separator: " ")) ended with status \(status)") }
        return dt
    }

    static func measure(_ runs: Int, _ path: String, _ args: [String]) throws -> Summary {
        for _ in 0..<3 { _ = try timedRun(path, args) }       // warm the page cache, as a loop's later runs are
        return Summary(values: try (0..<runs).map { _ in try timedRun(path, args) })
    }

    /// `count` finished tasks from node1 run on node2, in both journals (node2 also keeps a
    /// small output for each), submitted over the last `count` minutes.
    static func fillJournals(_ mesh: Mesh, count: Int) {
        guard count > 0 else { return }
        let submitter = TaskJournal(dir: NodeDirectory(root: URL(fileURLWithPath: mesh.dir("node1"))))
        let executor = TaskJournal(dir: NodeDirectory(root: URL(fileURLWithPath: mesh.dir("node2"))))
        let start = Date().addingTimeInterval(-Double(count) * 60)
        for i in 0..<count {
            let t = Clock.rfc3339(start.addingTimeInterval(Double(i) * 60))
            var r = TaskRecord(id: TaskJournal.newID(), role: "bench", task: "true", node: "node2", from: "node1", state: .done,
                               submitted: t)
            r.started = t; r.finished = t; r.exitCode = 0
            submitter.save(r)
            executor.save(r)
            let log = OutputLog(url: executor.outputFile(r.id))
            log.append(.stdout, Array("output of task \(i)\n".utf8))
            log.close()
        }
        submitter.flush()
        executor.flush()
    }

    /// Whether the binary has the Swift runtime linked in (no libswiftCore.so among its libraries).
    static func linkage(_ path: String) -> String {
        guard let ldd = findTool("ldd") else { return "unknown" }
        return run(ldd, [path], timeout: 10).stdout.contains("libswiftCore") ? "dynamic Swift runtime" : "Swift runtime linked in"
    }

    static func body(runs: Int, bytes: Int, journal: Int) throws {
        say("tasks: \(machineDescription())")
        let load = (readFile("/proc/loadavg") ?? "").split(separator: " ").prefix(3).joined(separator: " ")
        say("binary: \(rolemeshBinary) (\(linkage(rolemeshBinary))); load average at start: \(load); \(journal) tasks in each journal")
        // RoleMesh: node1 submits, node2 holds role "bench".
        let mesh = try Mesh(label: "tasks", count: 2, profile: "lan", octet: 150, extra: { $0 == 2 ? ["--role", "bench"] : [] })
        defer { mesh.shutdown() }
        let roleDir = mesh.dir("node2") + "/roles/bench"
        try FileManager.default.createDirectory(atPath: roleDir, withIntermediateDirectories: true)
        precondition(FileManager.default.createFile(atPath: roleDir + "/true", contents: Data("#!/bin/sh\nexit 0\n".utf8), attributes: [.posixPermissions: 0o755]), "cannot write a task file")
        precondition(FileManager.default.createFile(atPath: roleDir + "/stream", contents: Data("#!/bin/sh\nexec head -c \"$1\" /dev/zero\n".utf8),
                                       attributes: [.posixPermissions: 0o755]), "cannot write a task file")
        let t0 = monoNow()
        fillJournals(mesh, count: journal)
        if journal > 0 { note("wrote \(journal) tasks into each journal in \(fmt(monoNow() - t0, 1)) s") }
        try mesh.start()
        try mesh.waitConverged(timeout: 60, role: "bench", route: "node2")
        settle(mesh)
        let dir = ["--dir", mesh.dir("node1")]

        // Each command a new process, timed from here.
        let trueRun = try measure(runs, "/bin/true", [])
        let version = try measure(runs, rolemeshBinary, ["--version"])
        let status = try measure(runs, rolemeshBinary, ["status"] + dir)
        let submitRun = try measure(runs, rolemeshBinary, ["submit", "bench/true"] + dir)
        // The same submission without a command-line process: what the agents and the task take.
        let node1 = NodeDirectory(root: URL(fileURLWithPath: mesh.dir("node1")))
        let statusOnly = Summary(values: try (0..<(runs + 3)).map { _ in
            try time { _ = try ControlClient.callLine(node1, .status) } * 1000 }.dropFirst(3).map { $0 })
        let agentsOnly = Summary(values: try (0..<(runs + 3)).map { _ in try time { try submitThroughSocket(node1) } * 1000 }.dropFirst(3).map { $0 })
        let taskScript = Summary(values: try (0..<runs).map { _ in try timedRun(roleDir + "/true", []) })
        let tasksList = try measure(min(runs, 10), rolemeshBinary, ["tasks"] + dir)
        let lastID = try ControlClient.call(node1, .tasks, as: TasksReply.self).tasks.last?.id ?? ""
        let logsRun = try measure(min(runs, 10), rolemeshBinary, ["logs", String(lastID.prefix(8))] + dir)
        let rl = submitRun

        var rmRate: [Double] = []
        for _ in 0..<3 {
            var r: RunResult?
            let dt = time { r = run(rolemeshBinary, ["submit", "bench/stream"] + dir + ["--", String(bytes)], timeout: 120, label: "submit") }
            guard r?.status == 0, r?.stdout.utf8.count == bytes else { throw BenchError("submit bench/stream returned \(r?.stdout.utf8.count ?? 0) bytes") }
            rmRate.append(Double(bytes) / 1_048_576 / dt)
        }

        // ssh with key authentication against a private sshd on a loopback port.
        var sshLatency: [Double] = [], sshRate: [Double] = []
        var sshNote = ""
        let (sshd, why) = try PrivateSSHD.start(port: freshPort() + 500)
        sshNote = why
        if let sshd {
            defer { sshd.stop() }
            let ssh = sshd.ssh, base = sshd.base
            for _ in 0..<3 { _ = run(ssh, base + ["true"], timeout: 10) }
            for _ in 0..<runs {
                var r: RunResult?
                let dt = time { r = run(ssh, base + ["true"], timeout: 30, label: "ssh") }
                guard r?.status == 0 else { throw BenchError("ssh true failed: \(r?.stderr ?? "")") }
                sshLatency.append(dt * 1000)
            }
            for _ in 0..<3 {
                var r: RunResult?
                let dt = time { r = run(ssh, base + ["head -c \(bytes) /dev/zero"], timeout: 120, label: "ssh") }
                guard r?.status == 0, r?.stdout.utf8.count == bytes else { throw BenchError("ssh stream returned \(r?.stdout.utf8.count ?? 0) bytes") }
                sshRate.append(Double(bytes) / 1_048_576 / dt)
            }
        }
        if !sshNote.isEmpty { note(sshNote) }

        let sl = Summary(values: sshLatency)
        let rr = Summary(values: rmRate), sr = Summary(values: sshRate)
        let ratio = rl.median.flatMap { r in sl.median.map { r / $0 } }
        let met = ratio.map { $0 <= 0.2 }
        func row(_ label: String, _ s: Summary, _ target: Double?) -> [String] {
            let verdict = target.map { t in "≤ \(fmt(t, 1)): \(metText(s.median.map { $0 <= t }))" } ?? ""
            return [label, fmt(s.median, 2), "\(fmt(s.min, 2))–\(fmt(s.max, 2))", verdict]
        }
        say(table([
            ["each a new process, ms", "median", "range", "target"],
            row("/bin/true", trueRun, nil),
            row("rolemesh --version", version, 2.5),
            row("rolemesh status", status, 3.5),
            row("  the same through the control socket, no CLI process", statusOnly, nil),
            row("rolemesh submit bench/true (runs on node2)", submitRun, 6),
            row("  the same through the control socket, no CLI process", agentsOnly, nil),
            row("  roles/bench/true run directly", taskScript, nil),
            row("rolemesh tasks (\(journal + runs * 2 + 6) tasks)", tasksList, nil),
            row("rolemesh logs ID", logsRun, nil),
        ]))
        say(table([
            ["", "rolemesh submit", "ssh (key auth)", "ratio", "target"],
            ["ROLE/true, median ms", fmt(rl.median, 1), fmt(sl.median, 1), fmt(ratio, 3), "≤ 0.2 × ssh: \(metText(met))"],
            ["\(bytes / 1_048_576) MB stdout, median MB/s", fmt(rr.median, 0), fmt(sr.median, 0),
             fmt(rr.median.flatMap { r in sr.median.map { r / $0 } }, 2), "≥ 150: \(metText(rr.median.map { $0 >= 150 }))"],
        ]))
        printResult("tasks", [("binary", .string(linkage(rolemeshBinary))), ("load", .string(load)), ("journal", .int(journal)),
                              ("true_ms", trueRun.json), ("version_ms", version.json), ("status_ms", status.json), ("status_socket_ms", statusOnly.json),
                              ("submit_true_ms", rl.json), ("submit_socket_ms", agentsOnly.json), ("task_script_ms", taskScript.json),
                              ("tasks_ms", tasksList.json), ("logs_ms", logsRun.json),
                              ("ssh_true_ms", sl.json), ("ratio", .optional(ratio)),
                              ("target_met", .optional(met)), ("stream_mb_s", rr.json), ("ssh_stream_mb_s", sr.json),
                              ("bytes", .int(bytes)), ("note", .string(sshNote))])
    }

    /// Waits (bounded, 20 s) until both agents are idle (under 2 % of a core over half a second):
    /// an agent reads its journal when it starts, and that must not be timed as the commands.
    static func settle(_ mesh: Mesh) {
        let pids = mesh.names.compactMap { mesh.pids[$0] }
        _ = waitUntil(timeout: 20, interval: 0.01) {
            let before = pids.map { ProcFS.cpuSeconds($0) ?? 0 }
            sleepSeconds(0.5)
            let after = pids.map { ProcFS.cpuSeconds($0) ?? 0 }
            return zip(before, after).allSatisfy { $1 - $0 < 0.01 }
        }
    }

    /// `submit bench/true` as the command line sends it, from this process: the agents' part alone.
    static func submitThroughSocket(_ node: NodeDirectory) throws {
        let c = try ControlClient(dir: node)
        try c.send(.submit(SubmitRequest(role: "bench", task: "true", args: [], heavy: false, to: nil, detach: false,
                                         queue: false, retry: 0, whenIdle: false)))
        try c.awaitAnswer()
        c.frameWriter.send(Frame(.stdinEOF))
        while let f = try c.receiveFrame() {
            if f.type == .error { throw BenchError("submit through the socket: \(f.meshError.message)") }
            if f.type == .exit { return }
        }
        throw BenchError("submit through the socket: the agent closed the stream")
    }
}
