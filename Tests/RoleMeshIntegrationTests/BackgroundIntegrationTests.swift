import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// Schedules, idle and pausing with real agents on `fast`: node1 holds role `meta`, node2 stands
/// by for it, node3 holds nothing. Task scripts log what they saw to `runs.log` and their pid to
/// `pid.NODE` (tasks `exec` their sleep, so the pid leads the task's process group).
final class BackgroundIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() {
        // A task of a SIGKILLed agent outlives it: end the groups our tasks lead, by their recorded pids.
        for node in ["node1", "node2", "node3"] { if let pid = taskPID(node) { kill(-pid, SIGKILL) } }
        cluster.shutdown()
    }

    var runsLog: String { cluster.root.appendingPathComponent("runs.log").path }

    @discardableResult
    func makeMesh(tasks: [String: String], schedule: String) throws -> [String] {
        let extra: [String: [String]] = ["node2": ["--backup", "meta=1"], "node1": ["--role", "meta"]]
        let nodes = try cluster.create(3, extra: { extra[$0] ?? [] })
        for n in ["node1", "node2"] {
            for (name, script) in tasks { write(n, "roles/meta/\(name)", script, mode: 0o755) }
            write(n, "roles/meta/schedule.toml", schedule)
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return nodes
    }

    func write(_ node: String, _ path: String, _ text: String, mode: Int = 0o644) {
        let url = URL(fileURLWithPath: cluster.dir(node)).appendingPathComponent(path)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: url.path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]))
    }

    /// A task that logs `NODE RUN_ID SLOT TASK_ID WORD` and records its pid.
    func script(_ word: String, then tail: String = "") -> String {
        "#!/bin/sh\necho \"$ROLEMESH_NODE $ROLEMESH_RUN_ID $ROLEMESH_SLOT $ROLEMESH_TASK_ID \(word)\" >> \(runsLog)\n"
            + "echo $$ > \(cluster.root.path)/pid.$ROLEMESH_NODE\n" + tail
    }

    func runs() -> [[String]] {
        ((try? String(contentsOfFile: runsLog, encoding: .utf8)) ?? "").split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
    }

    func taskPID(_ node: String) -> pid_t? {
        (try? String(contentsOfFile: cluster.root.path + "/pid.\(node)", encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Fields of /proc/PID/stat after the command name: [0] state, [16] nice, [38] policy.
    func stat(_ pid: pid_t) -> [String] {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return [] }
        return s[s.index(after: close)...].split(separator: " ").map(String.init)
    }

    func pin(_ node: String, _ assignment: String) throws {
        let r = try cluster.cli(["signal", "set", assignment, "--dir", cluster.dir(node)])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func json(_ node: String, _ args: [String]) -> JSON? {
        guard let r = try? cluster.cli(args + ["--json", "--dir", cluster.dir(node)]), r.status == 0 else { return nil }
        return JSON.parse(r.stdout)
    }

    func scheduleRow(_ node: String, _ id: String) -> JSON? {
        json(node, ["schedules"])?["schedules"]?.array?.first { "\($0["role"]?.string ?? "")/\($0["task"]?.string ?? "")" == id }
    }

    func taskRow(_ node: String, _ id: String) -> JSON? {
        json(node, ["tasks"])?["tasks"]?.array?.first { $0["id"]?.string == id }
    }

    func testAScheduleRunsOncePerSlotOnTheRoute() throws {
        try makeMesh(tasks: ["embed": script("ran")], schedule: "[embed]\nevery = \"20s\"\nidle = \"15m\"\n")
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleRow("node2", "meta/embed")?["reason"]?.string?.contains("node1 busy") == true },
                      "before node1 is idle the slot waits for it: \(String(describing: scheduleRow("node2", "meta/embed")))")
        try pin("node1", "idle=true")
        XCTAssertTrue(waitUntil(timeout: 60) { Set(self.runs().map { $0[2] }).count >= 2 }, "two slots did not run: \(runs())\n\(cluster.log("node1"))")
        let lines = runs()
        XCTAssertEqual(Set(lines.map { $0[0] }), ["node1"], "only the route runs it: \(lines)")
        XCTAssertEqual(lines.count, Set(lines.map { $0[2] }).count, "a slot ran twice: \(lines)")
        XCTAssertEqual(Set(lines.map { $0[1] }).count, lines.count, "each slot has its own run id")
        for slot in lines.map({ $0[2] }) {
            XCTAssertNotNil(slot.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:[024]0Z$"#, options: .regularExpression), "slot \(slot) not on a 20 s boundary")
        }
        let row = try XCTUnwrap(scheduleRow("node2", "meta/embed"))
        XCTAssertEqual(row["node"]?.string, "node1")
        XCTAssertEqual(row["every"]?.string, "20s")
        XCTAssertEqual(row["last"]?["node"]?.string, "node1", "completion is known on the backup")
        let first = try XCTUnwrap(taskRow("node1", lines[0][3]))
        XCTAssertEqual(first["schedule"]?.string, "meta/embed")
        XCTAssertEqual(first["slot"]?.string, lines[0][2])
        XCTAssertEqual(first["run_id"]?.string, lines[0][1])
    }

    func testKillingTheRouteMidRunRunsTheSlotOnceMoreOnTheBackupWithTheSameRunID() throws {
        // node1's attempt never ends by itself; node2's does. One slot a day: no second slot meets the test.
        let long = script("start", then: "[ \"$ROLEMESH_NODE\" = node1 ] && exec sleep 3\(cluster.port)1\necho \"$ROLEMESH_NODE $ROLEMESH_RUN_ID end\" >> \(runsLog)\n")
        try makeMesh(tasks: ["index": long], schedule: "[index]\nevery = \"1d\"\n")
        XCTAssertTrue(waitUntil(timeout: 20) { self.runs().count == 1 && self.taskPID("node1") != nil }, "\(runs())\n\(cluster.log("node1"))")
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleRow("node2", "meta/index")?["state"]?.string == "running" },
                      "the backup knows the slot is running")
        cluster.crash("node1")
        XCTAssertTrue(waitUntil(timeout: 20) { self.runs().contains { $0.first == "node2" && $0.last == "end" } },
                      "the backup did not run the slot: \(runs())\n\(cluster.log("node2"))")
        let lines = runs()
        XCTAssertEqual(lines.filter { $0.last == "start" }.map { $0[0] }, ["node1", "node2"])
        XCTAssertEqual(lines[0][1], lines[1][1], "the same ROLEMESH_RUN_ID for both attempts")
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleRow("node2", "meta/index")?["state"]?.string == "done" })
        Thread.sleep(forTimeInterval: 3)      // nothing more may start: a bounded look, not a wait for a condition
        XCTAssertEqual(runs().filter { $0.last == "start" }.count, 2, "\(runs())")
    }

    func testIdleFalsePausesTheRunWithinTwoSecondsAndIdleTrueResumesIt() throws {
        try makeMesh(tasks: ["crunch": script("start", then: "exec sleep 3\(cluster.port)2\n")],
                     schedule: "[crunch]\nevery = \"1d\"\nidle = \"15m\"\n")
        let events = cluster.root.appendingPathComponent("watch.jsonl")
        XCTAssertTrue(FileManager.default.createFile(atPath: events.path, contents: nil))
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: Cluster.binary)
        watch.arguments = ["watch", "--json", "--dir", cluster.dir("node1")]
        watch.standardOutput = try FileHandle(forWritingTo: events)
        try watch.run()
        defer { kill(watch.processIdentifier, SIGKILL); watch.waitUntilExit() }
        try pin("node2", "idle=false")
        try pin("node1", "idle=true")
        XCTAssertTrue(waitUntil(timeout: 20) { self.taskPID("node1") != nil }, cluster.log("node1"))
        let pid = try XCTUnwrap(taskPID("node1"))
        let fields = stat(pid)
        XCTAssertEqual(fields[16], "19", "nice 19")
        XCTAssertEqual(fields[38], "5", "SCHED_IDLE")
        let io = try Cluster.run("/usr/bin/ionice", ["-p", "\(pid)"], timeout: 10)
        XCTAssertEqual(io.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "idle", io.stderr)
        let id = try XCTUnwrap(runs().first?[3])

        try pin("node1", "idle=false")
        let asked = Date()
        XCTAssertTrue(waitUntil(timeout: 2, interval: 0.05) { self.stat(pid).first == "T" }, "not stopped within 2 s: \(stat(pid))")
        print("paused \(Int(Date().timeIntervalSince(asked) * 1000)) ms after `signal set idle=false` returned")
        XCTAssertTrue(waitUntil(timeout: 5) { self.taskRow("node1", id)?["state"]?.string == "paused" })
        XCTAssertEqual(taskRow("node1", id)?["reason"]?.string, "node1 busy (not idle)")
        let row = try XCTUnwrap(scheduleRow("node1", "meta/crunch"))
        XCTAssertEqual(row["state"]?.string, "paused")
        XCTAssertEqual(row["reason"]?.string, "node1 busy (not idle)")
        // Elsewhere it shows as running, and says whose view that is (issue 24).
        let elsewhere = try XCTUnwrap(scheduleRow("node2", "meta/crunch"))
        XCTAssertEqual(elsewhere["state"]?.string, "running")
        XCTAssertTrue(elsewhere["reason"]?.string?.contains("whether it is paused now, `rolemesh schedules` on node1 says") == true,
                      "\(elsewhere)")

        try pin("node1", "idle=true")
        XCTAssertTrue(waitUntil(timeout: 2, interval: 0.05) { ["S", "R"].contains(self.stat(pid).first) }, "not continued within 2 s: \(stat(pid))")
        XCTAssertTrue(waitUntil(timeout: 5) { self.taskRow("node1", id)?["state"]?.string == "running" })

        kill(-pid, SIGKILL)
        XCTAssertTrue(waitUntil(timeout: 10) {
            ((try? String(contentsOf: events, encoding: .utf8)) ?? "").contains("run-finished")
        })
        let seen = ((try? String(contentsOf: events, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { JSON.parse(String($0)) }
            .filter { $0["task"]?.string == "crunch" }
        XCTAssertEqual(seen.map { $0["event"]?.string ?? "" }, ["run-started", "run-paused", "run-resumed", "run-finished"])
        XCTAssertEqual(seen.first?["role"]?.string, "meta")
        XCTAssertEqual(seen.first?["slot"]?.string, runs().first?[2])
        XCTAssertEqual(seen[1]["reason"]?.string, "node1 busy (not idle)")
    }

    func testSlotsDueTogetherStartOneAfterAnother() throws {
        let stamp = "#!/bin/sh\necho \"$ROLEMESH_TASK $(date +%s.%N)\" >> \(runsLog)\n"
        try makeMesh(tasks: ["a": stamp, "b": stamp, "c": stamp], schedule: "[a]\nevery = \"1d\"\n[b]\nevery = \"1d\"\n[c]\nevery = \"1d\"\n")
        XCTAssertTrue(waitUntil(timeout: 20) { self.runs().count == 3 }, "\(runs())")
        let times = runs().compactMap { Double($0[1]) }.sorted()
        XCTAssertEqual(Set(runs().map { $0[0] }), ["a", "b", "c"])
        for (x, y) in zip(times, times.dropFirst()) { XCTAssertGreaterThan(y - x, 1.8, "two slots started together: \(runs())") }
    }

    func testAClosedWindowWaitsABadFileIsReportedAndSchedulesRunRunsNow() throws {
        // A window that opens two hours from now (local time of the nodes, which is this process's).
        let now = Date(), tz = TimeZone.current
        let minute = ((Int(now.timeIntervalSince1970) + tz.secondsFromGMT(for: now)) % 86_400) / 60
        func hm(_ m: Int) -> String { String(format: "%02d:%02d", (m % 1440) / 60, m % 60) }
        let window = "\(hm(minute + 120))-\(hm(minute + 180))"
        try makeMesh(tasks: ["later": script("ran"), "embed": script("idle-run")], schedule: "[later]\nevery = \"1d\"\nwindow = \"\(window)\"\n")
        write("node1", "roles/other/schedule.toml", "[x]\nevery = \"1h\"\ncolour = \"blue\"\n")
        XCTAssertTrue(waitUntil(timeout: 10) { self.json("node1", ["schedules"])?["errors"]?.array?.isEmpty == false })
        let reply = try XCTUnwrap(json("node1", ["schedules"]))
        XCTAssertEqual(reply["errors"]?.array?.first?["file"]?.string, "roles/other/schedule.toml")
        XCTAssertEqual(reply["errors"]?.array?.first?["error"]?.string,
                       "roles/other/schedule.toml line 3: unknown key \"colour\" (known keys: every, window, idle, power, heavy, args)")
        let row = try XCTUnwrap(scheduleRow("node1", "meta/later"))
        XCTAssertEqual(row["state"]?.string, "waiting")
        XCTAssertEqual(row["reason"]?.string, "outside window \(window)")
        XCTAssertTrue(row["last"]?.isNull ?? false)
        let human = try cluster.cli(["schedules", "--dir", cluster.dir("node1")])
        XCTAssertTrue(human.stdout.contains("waiting: outside window \(window)"), human.stdout)
        XCTAssertTrue(human.stdout.contains("error: roles/other/schedule.toml line 3"), human.stdout)
        XCTAssertTrue(runs().isEmpty)

        // node3 has no schedule files: it knows node1's and node2's from them.
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleRow("node3", "meta/later")?["node"]?.string == "node1" })
        let unknown = try cluster.cli(["schedules", "run", "meta/nothing", "--dir", cluster.dir("node3")])
        XCTAssertEqual(unknown.status, 64, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("no schedule meta/nothing is known here"), unknown.stderr)
        let now1 = try cluster.cli(["schedules", "run", "meta/later", "--dir", cluster.dir("node3")])
        XCTAssertEqual(now1.status, 0, now1.stderr)
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleRow("node1", "meta/later")?["state"]?.string == "done" })
        XCTAssertEqual(runs().map { $0[0] }, ["node1"], "it ran on the route, not where it was asked")
        XCTAssertEqual(runs().first?[3], now1.stdout.trimmingCharacters(in: .whitespacesAndNewlines))

        // submit --when idle waits for an idle holder.
        try pin("node1", "idle=false")
        try pin("node2", "idle=false")
        let sub = try cluster.cli(["submit", "meta/embed", "--when", "idle", "--detach", "--dir", cluster.dir("node3")])
        XCTAssertEqual(sub.status, 0, sub.stderr)
        let id = sub.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(waitUntil(timeout: 5) { self.taskRow("node3", id)?["state"]?.string == "queued" })
        try pin("node2", "idle=true")
        XCTAssertTrue(waitUntil(timeout: 10) { self.taskRow("node3", id)?["state"]?.string == "done" }, "\(String(describing: taskRow("node3", id)))")
        XCTAssertEqual(taskRow("node3", id)?["node"]?.string, "node2", "the idle backup took it while the holder was busy")
        XCTAssertNotNil(cluster.statusJSON("node1"), "the bad file stopped nothing")
    }

    /// One slot-record exchange with `server`, as node3 (its own key, as a thief holding it would).
    func pushRecords(_ records: [SlotRun], to server: String) throws {
        func key(_ n: String, _ ext: String) throws -> [UInt8] {
            let text = try String(contentsOfFile: cluster.dir(n) + "/keys/\(n).\(ext)", encoding: .utf8)
            return [UInt8](Data(base64Encoded: String(text.split(whereSeparator: \.isWhitespace).last ?? ""))!)
        }
        let pair = Ed25519.KeyPair(seed: try key("node3", "secret"))
        let pub = try key(server, "pub")
        let address = WireAddress(host: cluster.hosts[server]!, port: cluster.port)!
        let ch = try blocking { try await SecureChannel.connect(to: address, expected: server, me: "node3", keyPair: pair,
                                                                trusted: [server: pub], from: nil) }
        defer { ch.close() }
        try ch.sendBlocking(Frame(.request, encoding: TaskRequest.slots(records, schedules: [], trust: [])))
        XCTAssertEqual(try ch.receiveBlocking()?.type, .slots)
    }

    /// Slot records count only about the sender's own runs, or signed by the node that ran them:
    /// 2,000 forged `done` records for node1's slot do not stop the schedule, and a forged `lost`
    /// for the attempt running on node1 does not start a second, concurrent run. node3 is granted
    /// no role, so its records of its own "runs" count for nothing either; and a slots.json that
    /// holds a forgery from before is cleaned on load.
    func testForgedSlotRecordsNeitherStopNorDoubleASchedule() throws {
        let extra: [String: [String]] = ["node2": ["--backup", "meta=1"], "node1": ["--role", "meta"]]
        let nodes = try cluster.create(3, extra: { extra[$0] ?? [] })
        let long = script("start", then: "sleep 4\necho \"$ROLEMESH_NODE $ROLEMESH_RUN_ID end\" >> \(runsLog)\n")
        for n in ["node1", "node2"] {
            write(n, "roles/meta/index", long, mode: 0o755)
            write(n, "roles/meta/schedule.toml", "[index]\nevery = \"1d\"\nidle = \"0s\"\n")
            let k = cluster.dir(n) + "/keys/node3.pub"
            write(n, "keys/node3.pub", "# granted:\n" + (try String(contentsOfFile: k, encoding: .utf8)))
        }
        let schedule = Schedule(role: "meta", task: "index", every: 86_400)
        let slot = Slots.start(of: Int64(Date().timeIntervalSince1970), every: 86_400), runID = Slots.runID(schedule, slot: slot)
        func record(_ id: String, node: String, _ state: SlotRun.State) -> SlotRun {
            SlotRun(role: "meta", task: "index", slot: slot, id: id, runID: runID, node: node, state: state, started: slot + 1, finished: slot + 2)
        }
        let planted = record("0123abcd", node: "node1", .done)
        write("node2", "state/slots.json", String(decoding: ControlJSON.line(["records": [planted]]), as: UTF8.self))
        try cluster.start()
        try pin("node1", "idle=false")
        try pin("node2", "idle=false")
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        XCTAssertFalse((try? String(contentsOfFile: cluster.dir("node2") + "/state/slots.json", encoding: .utf8))?.contains("0123abcd") ?? true,
                       "state/slots.json still holds the forgery it had before")

        let forged = (0..<2_000).map { record(String(format: "f%07d", $0), node: "node1", .done) }
        let own = [record("c0ffee00", node: "node3", .done)]
        for n in ["node1", "node2"] { try pushRecords(forged + own, to: n) }
        for n in ["node1", "node2"] {
            XCTAssertEqual(cluster.statusJSON(n)?["dropped"]?["forged_slot_record"]?.int, 2_000, n)
            XCTAssertEqual(scheduleRow(n, "meta/index")?["state"]?.string, "waiting", "\(String(describing: scheduleRow(n, "meta/index")))")
        }
        try pin("node1", "idle=true")
        XCTAssertTrue(waitUntil(timeout: 15) { self.runs().count == 1 }, "the slot did not run: \(runs())\n\(cluster.log("node1"))")
        let id = runs()[0][3]
        XCTAssertEqual(runs()[0][0], "node1")
        // A forged `lost` of the running attempt, unsigned, and one signed by the wrong node.
        let lost = record(id, node: "node1", .lost)
        var wrongSigner = lost
        wrongSigner = wrongSigner.signed(Ed25519.KeyPair(seed: [UInt8](Data(base64Encoded: String(
            (try String(contentsOfFile: cluster.dir("node3") + "/keys/node3.secret", encoding: .utf8)).split(whereSeparator: \.isWhitespace).last!))!)).sign)
        for n in ["node1", "node2"] { try pushRecords([lost, wrongSigner], to: n) }
        XCTAssertTrue(waitUntil(timeout: 15) { self.runs().contains { $0.last == "end" } }, "\(runs())")
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleRow("node2", "meta/index")?["state"]?.string == "done" })
        Thread.sleep(forTimeInterval: 3)      // nothing more may start: a bounded look, not a wait for a condition
        XCTAssertEqual(runs().filter { $0.last == "start" }.count, 1, "a forged record doubled the slot: \(runs())")
        XCTAssertEqual(cluster.statusJSON("node1")?["dropped"]?["forged_slot_record"]?.int, 2_002)
    }
}
