import Foundation
import XCTest
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// `submit`, `tasks`, `logs` between real agents over the encrypted task channel.
final class TaskIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    /// laptop submits; server holds role "job"; backup stands by for it.
    @discardableResult
    func makeMesh(backup: Bool = true) throws -> [String] {
        let extra: [String: [String]] = ["node1": [], "node2": ["--role", "job"], "node3": backup ? ["--backup", "job=1"] : []]
        let nodes = try cluster.create(3, extra: { extra[$0] ?? [] })
        for n in nodes {
            addTask(n, "echo", "#!/bin/sh\nprintf '%s|' \"$@\"; echo; echo \"node=$ROLEMESH_NODE from=$ROLEMESH_FROM role=$ROLEMESH_ROLE task=$ROLEMESH_TASK id=$ROLEMESH_TASK_ID pwd=$(pwd)\"\n")
            addTask(n, "exit7", "#!/bin/sh\necho out; echo err >&2; exit 7\n")
            addTask(n, "cat", "#!/bin/sh\nexec cat\n")
            addTask(n, "big", "#!/bin/sh\nhead -c 52428800 /dev/zero | tr '\\0' x\n")
            addTask(n, "slow", "#!/bin/sh\necho first; sleep 4; echo second\n")
            // Durations unique to this cluster, so counting them never meets another test run's sleeps.
            addTask(n, "sleepy", "#!/bin/sh\necho started; sleep 3\(cluster.port)0 & sleep 3\(cluster.port)1\n")
            addTask(n, "tag", "#!/bin/sh\necho \"$ROLEMESH_NODE\" >> \"\(cluster.root.path)/runs.$ROLEMESH_TASK_ID\"; sleep 1; echo ran on $ROLEMESH_NODE\n")
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return nodes
    }

    func addTask(_ node: String, _ name: String, _ script: String, role: String = "job") {
        let d = cluster.dir(node) + "/roles/\(role)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/" + name, contents: Data(script.utf8), attributes: [.posixPermissions: 0o755]))
    }

    func submit(_ args: [String], from node: String = "node1", stdin: Data? = nil, timeout: Double = 60) throws -> Cluster.Result {
        // `--dir` before the arguments: everything after `--` belongs to the task.
        try cluster.cli(["submit", "--dir", cluster.dir(node)] + args, stdin: stdin, timeout: timeout)
    }

    func testExitCodesArgumentsAndEnvironment() throws {
        try makeMesh()
        let r = try submit(["job/echo", "--", "a b", "", "it's \"quoted\"", "--not-an-option"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        guard lines.count == 2 else { return XCTFail("unexpected output: \(r.stdout)") }
        XCTAssertEqual(lines.first, "a b||it's \"quoted\"|--not-an-option|")
        XCTAssertTrue(lines[1].hasPrefix("node=node2 from=node1 role=job task=echo id="), lines[1])
        XCTAssertTrue(lines[1].contains("/state/work/"), "a fresh working directory: \(lines[1])")
        let seven = try submit(["job/exit7"])
        XCTAssertEqual(seven.status, 7)
        XCTAssertEqual(seven.stdout, "out\n")
        XCTAssertEqual(seven.stderr, "err\n")
        let none = try submit(["nobody/echo"])
        XCTAssertEqual(none.status, 69)
        XCTAssertTrue(none.stderr.contains("no node holds or backs up role nobody"), none.stderr)
        let missing = try submit(["job/nope"])
        XCTAssertEqual(missing.status, 77)
        XCTAssertTrue(missing.stderr.contains("has no task job/nope"), missing.stderr)
        XCTAssertEqual(try submit(["job/..", "--to", "node2"]).status, 64, "not a file name in the role's folder")
        // A link leading out of the role's folder is refused by the executing node.
        try FileManager.default.createSymbolicLink(atPath: cluster.dir("node2") + "/roles/job/outside", withDestinationPath: "/bin/echo")
        let escape = try submit(["job/outside", "--to", "node2"])
        XCTAssertEqual(escape.status, 77, escape.stderr)
        XCTAssertEqual(try submit(["job/echo", "--to", "ghost"]).status, 69)
    }

    func testStdinRoundTripsAndFiftyMegabytesStreamWithBoundedMemory() throws {
        try makeMesh()
        var rng = SystemRandomNumberGenerator()
        let input = Data((0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let echoed = try submit(["job/cat"], stdin: input)
        XCTAssertEqual(echoed.status, 0, echoed.stderr)
        XCTAssertEqual(Data(echoed.stdout.utf8).count == input.count || echoed.stdout.utf8.count >= 0, true)
        // Compare bytes exactly (stdout decoded as UTF-8 above would mangle binary): run through the raw path.
        let raw = try rawSubmit(["job/cat"], stdin: input)
        XCTAssertEqual(raw.status, 0)
        XCTAssertEqual(raw.stdout, input, "1 MiB of stdin must come back byte-identical")

        let big = try rawSubmit(["job/big"], stdin: nil)
        XCTAssertEqual(big.status, 0)
        XCTAssertEqual(big.stdout.count, 52_428_800)
        XCTAssertTrue(big.stdout.allSatisfy { $0 == UInt8(ascii: "x") })
        for n in ["node1", "node2"] {
            let hwm = peakRSS(cluster.processes[n]!.processIdentifier)
            XCTAssertLessThan(hwm, 80 * 1024, "\(n) peak RSS \(hwm) KiB: output must stream, not pile up")
        }
    }

    /// A `submit` from node1 left running, with its output pipes, for tests that act mid-task.
    func startSubmit(_ args: [String], stdin: Data? = nil) throws -> (process: Process, out: Pipe, err: Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Cluster.binary)
        p.arguments = ["submit", "--dir", cluster.dir("node1")] + args
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = stdin == nil ? FileHandle.nullDevice : inp
        try p.run()
        if let stdin { feed(inp, stdin) }
        return (p, out, err)
    }

    func peakRSS(_ pid: Int32) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "0") ?? 0
    }

    func rawSubmit(_ args: [String], stdin: Data?) throws -> (status: Int32, stdout: Data) {
        let (p, out, _) = try startSubmit(args, stdin: stdin)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, data)
    }

    func testFirstLineArrivesBeforeTheSlowTaskEnds() throws {
        try makeMesh()
        let start = Date()
        let (p, out, _) = try startSubmit(["job/slow"])
        let first = out.fileHandleForReading.availableData      // blocks until the first bytes
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertEqual(String(decoding: first, as: UTF8.self), "first\n")
        XCTAssertLessThan(elapsed, 3, "the first line must stream before the task (4 s) ends")
        XCTAssertTrue(p.isRunning)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }

    func testCtrlCCancelsAndLeavesNoRemoteProcess() throws {
        try makeMesh()
        let (p, out, _) = try startSubmit(["job/sleepy"])
        XCTAssertEqual(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self), "started\n")
        XCTAssertTrue(waitUntil(timeout: 5) { self.processes(matching: "sleep 3\(self.cluster.port)[01]") == 2 })
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertTrue(waitUntil(timeout: 5) { self.processes(matching: "sleep 3\(self.cluster.port)[01]") == 0 }, "a remote process survived Ctrl-C")
        let tasks = try cluster.cli(["tasks", "--json", "--dir", cluster.dir("node1")])
        XCTAssertTrue(JSON.parse(tasks.stdout)?["tasks"]?.array?.contains { $0["state"]?.string == "cancelled" } == true, tasks.stdout)
    }

    /// The first Ctrl-C goes to the task; one that ignores it keeps running, and a second Ctrl-C
    /// ends the command at once with 130, not when the executor kills the task after its grace.
    func testASecondCtrlCGivesUpAtOnce() throws {
        try makeMesh()
        addTask("node2", "stubborn", "#!/bin/sh\ntrap '' INT TERM HUP\necho started\nsleep 3\(cluster.port)2\n")
        let (p, out, _) = try startSubmit(["job/stubborn"])
        XCTAssertEqual(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self), "started\n")
        kill(p.processIdentifier, SIGINT)
        // Nothing to wait for that can be seen from here, and two signals close together reach
        // Dispatch's handler as one: a pause between them.
        Thread.sleep(forTimeInterval: 0.5)
        let second = Date()
        kill(p.processIdentifier, SIGINT)
        XCTAssertTrue(waitUntil(timeout: 10) { !p.isRunning })
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        XCTAssertLessThan(Date().timeIntervalSince(second), 1.5, "the second Ctrl-C must not wait for the task to end")
    }

    func processes(matching pattern: String) -> Int {
        let r = try? Cluster.run("/usr/bin/pgrep", ["-f", "-c", pattern])
        return Int(r?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
    }

    func testDetachThenTasksAndLogsFromTheExecutor() throws {
        try makeMesh()
        let r = try submit(["job/exit7", "--detach"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let id = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(id.count, 32, "--detach prints the id alone: \(r.stdout)")
        XCTAssertTrue(waitUntil(timeout: 10) { self.taskState(id, on: "node1") == "failed" })
        let t = taskJSON(id, on: "node1")!
        XCTAssertEqual(t["node"]?.string, "node2")
        XCTAssertEqual(t["from"]?.string, "node1")
        XCTAssertEqual(t["exit_code"]?.int, 7)
        for key in ["submitted", "started", "finished"] { XCTAssertNotNil(t[key]?.string, key) }
        XCTAssertEqual(taskState(id, on: "node2"), "failed", "the executor keeps a journal too")
        let logs = try cluster.cli(["logs", id, "--dir", cluster.dir("node1")])
        XCTAssertEqual(logs.status, 0, logs.stderr)
        XCTAssertEqual(logs.stdout, "out\n")
        XCTAssertEqual(logs.stderr, "err\n")
        let follow = try submit(["job/slow", "--detach"])
        let fid = follow.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let followed = try cluster.cli(["logs", fid, "--follow", "--dir", cluster.dir("node1")])
        XCTAssertEqual(followed.stdout, "first\nsecond\n", "--follow waits for the end")
        XCTAssertNotEqual(try cluster.cli(["logs", "0123456789abcdef", "--dir", cluster.dir("node1")]).status, 0)
    }

    func taskJSON(_ id: String, on node: String) -> JSON? {
        guard let r = try? cluster.cli(["tasks", "--json", "--dir", cluster.dir(node)]) else { return nil }
        return JSON.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))?["tasks"]?.array?.first { $0["id"]?.string == id }
    }

    func taskState(_ id: String, on node: String) -> String? { taskJSON(id, on: node)?["state"]?.string }

    func testRetryCompletesOnTheBackupWhenThePrimaryDiesMidTask() throws {
        try makeMesh()
        let (p, out, err) = try startSubmit(["job/slow", "--retry", "1"])
        XCTAssertEqual(String(decoding: out.fileHandleForReading.availableData, as: UTF8.self), "first\n")
        cluster.crash("node2")
        let rest = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertEqual(String(decoding: rest, as: UTF8.self), "first\nsecond\n", "ran again, to the end, on the backup")
        let note = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(note.contains("node2 was lost mid-run"), note)
        let t = try cluster.cli(["tasks", "--json", "--dir", cluster.dir("node1")])
        XCTAssertTrue(JSON.parse(t.stdout)?["tasks"]?.array?.contains { $0["node"]?.string == "node3" && $0["state"]?.string == "done" } == true,
                      t.stdout)
    }

    func testLostWithoutRetryExits75() throws {
        try makeMesh(backup: false)
        let (p, out, err) = try startSubmit(["job/slow"])
        _ = out.fileHandleForReading.availableData
        cluster.crash("node2")
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 75)
        XCTAssertTrue(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("no retry was left"))
    }

    func testQueuedTaskSurvivesASubmitterRestartAndRunsOnceWhenAHolderAppears() throws {
        let nodes = try cluster.create(2)
        addTask("node2", "tag", "#!/bin/sh\necho \"$ROLEMESH_NODE\" >> \"\(cluster.root.path)/runs.$ROLEMESH_TASK_ID\"\n", role: "later")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        XCTAssertEqual(try submit(["later/tag"]).status, 69, "without --queue: no node can take it")
        let r = try submit(["later/tag", "--queue", "--detach"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let id = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(taskState(id, on: "node1"), "queued")
        XCTAssertNil(taskJSON(id, on: "node1")?["node"]?.string, "node is null while queued")
        // The submitter's agent restarts; the queue is on disk.
        cluster.signal("node1", SIGTERM)
        XCTAssertEqual(cluster.waitForExit("node1"), 0)
        try cluster.startOne("node1")
        XCTAssertEqual(taskState(id, on: "node1"), "queued")
        XCTAssertEqual(try cluster.cli(["roles", "add", "later", "--dir", cluster.dir("node2")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 15) { self.taskState(id, on: "node1") == "done" }, "state: \(self.taskState(id, on: "node1") ?? "nil")")
        Thread.sleep(forTimeInterval: 1)
        let runs = try String(contentsOfFile: cluster.root.path + "/runs.\(id)", encoding: .utf8)
        XCTAssertEqual(runs, "node2\n", "the queued task must run exactly once")
    }

    func testUntrustedNodeCannotRunAnythingAnywhere() throws {
        try makeMesh()
        let stranger = try cluster.create(1, prefix: "stranger", firstHost: 60, trustAll: false)[0]
        cluster.trust("node2", by: stranger)       // it trusts node2; node2 does not trust it
        try cluster.startOne(stranger)
        let r = try submit(["job/echo", "--to", "node2"], from: stranger)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.stdout.contains("node="), "an untrusted node ran a task")
        // Straight at node2's task channel with the stranger's own key: refused (77) at the handshake.
        let secret = try String(contentsOfFile: cluster.dir(stranger) + "/keys/\(stranger).secret", encoding: .utf8)
        let seed = [UInt8](Data(base64Encoded: secret.trimmingCharacters(in: .whitespacesAndNewlines))!)
        let node2Key = [UInt8](Data(base64Encoded: try String(contentsOfFile: cluster.dir("node2") + "/keys/node2.pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))!)
        let address = WireAddress(host: cluster.hosts["node2"]!, port: cluster.port)!
        XCTAssertThrowsError(try blocking { try await SecureChannel.connect(to: address, expected: "node2", me: stranger, keyPair: Ed25519.KeyPair(seed: seed),
                                                       trusted: ["node2": node2Key], from: nil) }) { error in
            XCTAssertEqual((error as? MeshError)?.code, 77, "\(error)")
        }
        // Pretending to be a trusted node without its key fails too.
        XCTAssertThrowsError(try blocking { try await SecureChannel.connect(to: address, expected: "node2", me: "node1", keyPair: Ed25519.KeyPair(seed: seed),
                                                       trusted: ["node2": node2Key], from: nil) })
        // And the stranger cannot run anything on node2 from its own agent either.
        XCTAssertEqual(try submit(["job/echo", "--to", "node2"], from: stranger).status, 69, "node2 is not even in its view")
    }

    /// Calm under loss (issue 9): a suspected holder keeps its role, so the submitter is the one
    /// that must not wait for the verdict. On `lan` a crashed holder stays alive or suspect in the
    /// view for about 2 s; a submit right after the crash reaches it, is refused by the kernel and
    /// runs on the backup at once.
    func testASubmitToACrashedHolderFallsOverBeforeTheMeshDeclaresItDead() throws {
        cluster.shutdown()      // the fast cluster of setUp: its folder goes too
        cluster = Cluster(profile: "lan")
        _ = try makeMesh()
        cluster.crash("node2")
        let r = try submit(["job/echo"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("node=node3"), r.stdout)
        XCTAssertTrue(r.stderr.contains("trying another node"), "the run should have gone to node2 first: \(r.stderr)")
        XCTAssertNotEqual(cluster.member("node2", seenBy: "node1")?["state"]?.string, "dead", "too late to show the fall-over")
    }

    func testAtMostMaxTasksRunAtOnceAndTheRestWaitInLine() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        let toml = cluster.dir("node2") + "/node.toml"
        try (try String(contentsOfFile: toml, encoding: .utf8)).replacingOccurrences(of: "max_tasks = 2", with: "max_tasks = 1")
            .write(toFile: toml, atomically: true, encoding: .utf8)
        addTask("node2", "slow", "#!/bin/sh\necho first; sleep 2; echo second\n")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let a = try submit(["job/slow", "--detach"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(waitUntil(timeout: 5) { self.taskState(a, on: "node2") == "running" })
        let b = try submit(["job/slow", "--detach"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(waitUntil(timeout: 3) { self.taskState(b, on: "node2") == "queued" }, "the second task waits for the only slot")
        XCTAssertEqual(taskState(a, on: "node2"), "running")
        XCTAssertTrue(waitUntil(timeout: 10) { self.taskState(b, on: "node1") == "done" })
        guard let finished = taskJSON(a, on: "node2")?["finished"]?.string, let started = taskJSON(b, on: "node2")?["started"]?.string else {
            return XCTFail("both tasks should have run on node2: \(cluster.log("node2"))")
        }
        XCTAssertLessThanOrEqual(finished, started, "they ran one after the other")
    }

    func testDrainingNodeRefusesAndLeaveFinishesRunningTasks() throws {
        try makeMesh(backup: false)
        XCTAssertEqual(try cluster.cli(["drain", "--dir", cluster.dir("node2")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.submit(["job/echo"]).status) == 69 })
        let forced = try submit(["job/echo", "--to", "node2"])
        XCTAssertEqual(forced.status, 69)
        XCTAssertTrue(forced.stderr.contains("draining"), forced.stderr)
        XCTAssertEqual(try cluster.cli(["undrain", "--dir", cluster.dir("node2")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.submit(["job/echo"]).status) == 0 })
        // A leave lets the running task finish first.
        let (p, out, _) = try startSubmit(["job/slow"])
        _ = out.fileHandleForReading.availableData
        cluster.signal("node2", SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "the running task finished before node2 left")
        XCTAssertEqual(cluster.waitForExit("node2", timeout: 10), 0)
    }
}
