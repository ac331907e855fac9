import Foundation
import XCTest
import RoleMeshAgent
import Glibc

/// What a first-time user tripped over (issue 12, item 7), each against real agents.
final class FirstUseIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    /// node1 submits; node2 holds role "job".
    @discardableResult
    func makeMesh(maxLog: Int? = nil) throws -> [String] {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        if let maxLog {
            let toml = cluster.dir("node2") + "/node.toml"
            let text = try String(contentsOfFile: toml, encoding: .utf8)
            XCTAssertTrue(text.contains("max_log = 10 "), "init writes the default")
            try text.replacingOccurrences(of: "max_log = 10 ", with: "max_log = \(maxLog)  ").write(toFile: toml, atomically: true, encoding: .utf8)
        }
        // Durations unique to this cluster, so counting them never meets another test's sleeps.
        addTask("node2", "sleepy", "#!/bin/sh\necho started; sleep 4\(cluster.port)0\n")
        addTask("node2", "py9", "#!/usr/bin/env python9\nprint('hi')\n")
        addTask("node2", "chatty", "#!/bin/sh\nhead -c 3145728 /dev/zero | tr '\\0' x; echo; echo done\n")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return nodes
    }

    func addTask(_ node: String, _ name: String, _ script: String, role: String = "job") {
        let d = cluster.dir(node) + "/roles/\(role)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/" + name, contents: Data(script.utf8), attributes: [.posixPermissions: 0o755]))
    }

    func cli(_ node: String, _ args: [String]) -> Cluster.Result {
        (try? cluster.cli(args + ["--dir", cluster.dir(node)])) ?? Cluster.Result(status: -1, stdout: "", stderr: "could not run")
    }

    func task(_ id: String, on node: String) -> JSON? {
        JSON.parse(cli(node, ["tasks", "--json"]).stdout)?["tasks"]?.array?.first { $0["id"]?.string == id }
    }

    func sleepers() -> Int {
        let r = try? Cluster.run("/usr/bin/pgrep", ["-f", "-c", "sleep 4\(cluster.port)0"])
        return Int(r?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
    }

    func detach(_ target: String, _ extra: [String] = []) -> String {
        let r = cli("node1", ["submit", target, "--detach"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: cancel

    func testCancelARunningTaskFromTheSubmitterOrTheRunningNode() throws {
        try makeMesh()
        // From the submitter, by a short prefix as `tasks` shows it.
        let a = detach("job/sleepy")
        XCTAssertTrue(waitUntil(timeout: 10) { self.task(a, on: "node1")?["state"]?.string == "running" && self.sleepers() == 1 })
        let r = cli("node1", ["cancel", String(a.prefix(8))])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "cancelled \(a)\n")
        XCTAssertEqual(task(a, on: "node1")?["state"]?.string, "cancelled")
        XCTAssertTrue(waitUntil(timeout: 5) { self.task(a, on: "node2")?["state"]?.string == "cancelled" })
        XCTAssertTrue(waitUntil(timeout: 5) { self.sleepers() == 0 }, "the task's process outlived cancel")

        // From the node running it: the submitter's journal says cancelled too.
        let b = detach("job/sleepy")
        XCTAssertTrue(waitUntil(timeout: 10) { self.sleepers() == 1 })
        let r2 = cli("node2", ["cancel", b])
        XCTAssertEqual(r2.status, 0, r2.stderr)
        XCTAssertTrue(waitUntil(timeout: 5) { self.task(b, on: "node1")?["state"]?.string == "cancelled" })
        XCTAssertTrue(waitUntil(timeout: 5) { self.sleepers() == 0 })

        // Nothing to cancel: ended, or unknown. Exit 1 with one sentence.
        let again = cli("node1", ["cancel", a])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("already ended (cancelled)"), again.stderr)
        let unknown = cli("node1", ["cancel", "0123456789abcdef"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("no task 0123456789abcdef is known to node1"), unknown.stderr)
    }

    func testAPausedBackgroundRunCanBeCancelled() throws {
        try makeMesh()
        XCTAssertEqual(cli("node2", ["signal", "set", "idle=true"]).status, 0)
        let id = detach("job/sleepy", ["--when", "idle"])
        XCTAssertTrue(waitUntil(timeout: 10) { self.task(id, on: "node2")?["state"]?.string == "running" && self.sleepers() == 1 })
        XCTAssertEqual(cli("node2", ["signal", "set", "idle=false"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.task(id, on: "node2")?["state"]?.string == "paused" })
        let r = cli("node1", ["cancel", id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "cancelled \(id)\n", "a stopped process group is continued to see the signal")
        XCTAssertTrue(waitUntil(timeout: 5) { self.sleepers() == 0 })
        XCTAssertTrue(waitUntil(timeout: 5) { self.task(id, on: "node2")?["state"]?.string == "cancelled" })
    }

    func testAQueuedTaskSaysWhyItWaitsAndCanBeCancelled() throws {
        try makeMesh()
        let id = detach("gpu/train", ["--queue"])
        XCTAssertTrue(waitUntil(timeout: 5) { self.task(id, on: "node1")?["reason"]?.string != nil })
        XCTAssertEqual(task(id, on: "node1")?["state"]?.string, "queued")
        XCTAssertEqual(task(id, on: "node1")?["reason"]?.string, "no node holds or backs up role gpu")
        let human = cli("node1", ["tasks"])
        XCTAssertTrue(human.stdout.contains("\(id.prefix(8)) waiting: no node holds or backs up role gpu"), human.stdout)
        let r = cli("node1", ["cancel", id])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(task(id, on: "node1")?["state"]?.string, "cancelled")
        XCTAssertFalse(FileManager.default.fileExists(atPath: cluster.dir("node1") + "/state/queue/\(id).json"),
                       "a cancelled queued task must not run after a restart")
    }

    // MARK: output kept, capped

    func testOutputKeptPerTaskIsCappedAtMaxLogAndTheCutIsSaid() throws {
        try makeMesh(maxLog: 1)
        let id = detach("job/chatty")
        XCTAssertTrue(waitUntil(timeout: 20) { self.task(id, on: "node1")?["state"]?.string == "done" })
        // Fetched from the node that ran it, as a user on the submitter would.
        let logs = cli("node1", ["logs", id])
        XCTAssertEqual(logs.status, 0, logs.stderr)
        XCTAssertEqual(logs.stdout.utf8.count, 1 << 20, "the first max_log bytes are kept")
        XCTAssertTrue(logs.stderr.contains("output past max_log (1 MB per task) was not kept here"), logs.stderr)
        let stored = try FileManager.default.attributesOfItem(atPath: cluster.dir("node2") + "/state/tasks/\(id)/output")[.size] as? Int
        XCTAssertLessThan(stored ?? .max, (1 << 20) + 1024)
    }

    // MARK: the command line

    func testDirBeforeTheCommandWordAndUsageLinesThatRun() throws {
        try makeMesh()
        let r = try cluster.cli(["--dir", cluster.dir("node1"), "status", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(JSON.parse(r.stdout)?["self"]?.string, "node1")
        // Task arguments after `--` stay the task's, even a `--dir`.
        addTask("node2", "args", "#!/bin/sh\nprintf '%s|' \"$@\"\n")
        let s = try cluster.cli(["--dir=\(cluster.dir("node1"))", "submit", "job/args", "--", "--dir", "x"])
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertEqual(s.stdout, "--dir|x|")
        let stray = try cluster.cli(["submit", "job/args", "hello", "--dir", cluster.dir("node1")])
        XCTAssertEqual(stray.status, 64)
        XCTAssertTrue(stray.stderr.contains("arguments for the task go after --, as in: rolemesh submit job/args -- ARGS..."), stray.stderr)
        let help = try cluster.cli(["submit", "--help"])
        let usage = help.stdout.components(separatedBy: "\n").first { $0.hasPrefix("USAGE:") } ?? ""
        XCTAssertTrue(usage.hasSuffix("[--dir <dir>] -- [<args> ...]"), usage)
    }

    /// A role without tasks is said. `init` without `--seed` is not any more (issue 24): it is how
    /// the first device starts, and other devices `join`.
    func testARoleWithoutTasksIsSaidAndAFirstDeviceIsNotWarned() throws {
        let lone = try cluster.cli(["init", "lone", "--dir", cluster.dir("lone"), "--listen", "127.0.0.7:\(cluster.port)"])
        XCTAssertEqual(lone.status, 0, lone.stderr)
        XCTAssertEqual(lone.stderr, "")
        try makeMesh()
        XCTAssertTrue(try cluster.cli(["init", "x", "--dir", cluster.dir("x"), "--seed", cluster.address("node1")]).stderr.isEmpty)
        let add = cli("node1", ["roles", "add", "gpu"])
        XCTAssertEqual(add.status, 0, add.stderr)
        XCTAssertTrue(add.stderr.contains("roles/gpu/ does not exist: gpu offers no tasks on this node"), add.stderr)
        XCTAssertTrue(cli("node2", ["roles", "add", "job"]).stderr.isEmpty, "the folder is there: nothing to say")
    }

    // MARK: configuration errors name the fix

    func testANameThatDoesNotMatchTheKeyNamesTheFixNotKeygen() throws {
        try cluster.create(1)
        let toml = cluster.dir("node1") + "/node.toml"
        let text = try String(contentsOfFile: toml, encoding: .utf8)
        try text.replacingOccurrences(of: "name = \"node1\"", with: "name = \"raspberrypi\"").write(toFile: toml, atomically: true, encoding: .utf8)
        let r = try cluster.cli(["agent", "--dir", cluster.dir("node1")], timeout: 10)
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("node.toml names this node \"raspberrypi\" but its secret key is keys/node1.secret: set name = \"node1\" in node.toml"), r.stderr)
        XCTAssertFalse(r.stderr.contains("run `rolemesh keygen"), r.stderr)
        let doctor = try cluster.cli(["doctor", "--dir", cluster.dir("node1")], timeout: 30)
        XCTAssertTrue(doctor.stdout.contains("set name = \"node1\" in node.toml"), doctor.stdout)
    }

    // MARK: tasks

    func testAMissingInterpreterIsNamed() throws {
        try makeMesh()
        let r = cli("node1", ["submit", "job/py9"])
        XCTAssertEqual(r.status, 127)
        XCTAssertTrue(r.stderr.contains("its interpreter python9 (named on its #! line through env) is not installed"), r.stderr)
    }

    // MARK: a stopped agent

    func testEveryCommandGivesUpOnAStoppedAgent() throws {
        try makeMesh()
        let id = detach("job/sleepy")
        cluster.signal("node1", SIGSTOP)
        defer { cluster.signal("node1", SIGCONT) }
        // (StallTests covers status; the others each read their first answer the same way.)
        // A write (roles, signal, drain) would wait 30 s for a slow disk, but only once the agent has
        // said it has the request: a stopped agent says nothing, so it too gives up after 5 s.
        // All at once, each its own process (one after another, the six took 30 s of the suite).
        let commands = [["tasks"], ["cancel", id], ["logs", id], ["watch"], ["roles", "add", "x"], ["signal", "set", "load=1"]]
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var items: [(args: [String], status: Int32, stderr: String, seconds: Double)] = []
            var count: Int { lock.lock(); defer { lock.unlock() }; return items.count }
        }
        let seen = Seen()
        let dir = cluster.dir("node1")
        for args in commands {
            Thread {
                let start = Date()
                let r = (try? Cluster.run(Cluster.binary, args + ["--dir", dir], timeout: 60))
                    ?? Cluster.Result(status: -1, stdout: "", stderr: "could not run")
                seen.lock.lock(); seen.items.append((args, r.status, r.stderr, Date().timeIntervalSince(start))); seen.lock.unlock()
            }.start()
        }
        XCTAssertTrue(waitUntil(timeout: 30) { seen.count == commands.count })
        seen.lock.lock(); defer { seen.lock.unlock() }
        for r in seen.items {
            XCTAssertEqual(r.status, 69, "\(r.args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("did not answer within 5 s"), "\(r.args): \(r.stderr)")
            XCTAssertLessThan(r.seconds, 8, "\(r.args)")
        }
    }

    // MARK: the log and status

    func testDatagramsFromAnUntrustedKeyAreNamedInTheLogOncePerMinute() throws {
        let nodes = try cluster.create(3, trustAll: false)
        for a in ["node1", "node2"] { for b in ["node1", "node2"] { cluster.trust(a, by: b) } }
        cluster.trust("node1", by: "node3")
        try cluster.start(nodes)
        XCTAssertTrue(waitUntil(timeout: 10) { (self.cluster.statusJSON("node1")?["dropped"]?["unknown_key"]?.int ?? 0) >= 3 })
        // Gossip is sealed per pair of devices (gossip v2): node1 cannot read who node3 is, only
        // where its datagrams come from; it names the address once (node2's hellos never count).
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.log("node1").contains("sealed by a device whose key is not trusted here") })
        let lines = cluster.log("node1").components(separatedBy: "\n").filter { $0.contains("sealed by a device whose key is not trusted here") }
        XCTAssertEqual(lines.count, 1, cluster.log("node1"))
        XCTAssertTrue(lines.first?.contains("from \(cluster.address("node3"))") == true, lines.first ?? "")
        XCTAssertTrue(lines.first?.contains("copy its keys/NAME.pub into keys/") == true, lines.first ?? "")
    }

    func testTheStatusTableShowsBatteryAndThrottled() throws {
        try makeMesh()
        XCTAssertEqual(cli("node1", ["signal", "set", "battery=0.42", "on_battery=true", "throttled=true"]).status, 0)
        let out = cli("node1", ["status"]).stdout
        let header = out.components(separatedBy: "\n").first ?? ""
        XCTAssertTrue(header.contains("BATTERY") && header.contains("THROTTLED"), out)
        let row = out.components(separatedBy: "\n").first { $0.hasPrefix("node1 ") } ?? ""
        XCTAssertTrue(row.contains("42% bat") && row.contains(" yes "), out)
        XCTAssertLessThanOrEqual(row.count, 80, "readable at 80 characters:\n\(out)")
    }
}
