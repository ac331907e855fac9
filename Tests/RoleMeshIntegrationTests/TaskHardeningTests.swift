import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshPlatform
import RoleMeshTaskChannel

/// Hardening of the task channel and the executor: pre-auth floods, task names, the task's
/// environment, revocation, peer-chosen ids and who may read logs.
final class TaskHardeningTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func addTask(_ node: String, _ name: String, _ script: String, role: String = "job", mode: Int = 0o755) {
        let d = cluster.dir(node) + "/roles/\(role)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/" + name, contents: Data(script.utf8), attributes: [.posixPermissions: mode]))
    }

    func submit(_ args: [String], from node: String, timeout: Double = 60) throws -> Cluster.Result {
        try cluster.cli(["submit", "--dir", cluster.dir(node)] + args, timeout: timeout)
    }

    func base64File(_ path: String) throws -> [UInt8] {
        [UInt8](Data(base64Encoded: try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!)
    }

    /// A task channel opened by the test with `node`'s own key (from its keys/ folder) to `server`.
    func channel(as node: String, to server: String) throws -> SecureChannel {
        let key = Ed25519.KeyPair(seed: try base64File(cluster.dir(node) + "/keys/\(node).secret"))
        let pub = try base64File(cluster.dir(server) + "/keys/\(server).pub")
        let address = WireAddress(host: cluster.hosts[server]!, port: cluster.port)!
        return try blocking { try await SecureChannel.connect(to: address, expected: server,
                                         me: node, keyPair: key, trusted: [server: pub], from: nil) }
    }

    /// Sends one request and returns the last frame (exit or error), bounded by the channel's end.
    func ask(_ ch: SecureChannel, _ request: TaskRequest) throws -> Frame? {
        defer { ch.close() }
        try ch.sendBlocking(Frame(.request, encoding: request))
        try ch.sendBlocking(Frame(.stdinEOF))
        while let f = try ch.receiveBlocking() { if f.type == .exit || f.type == .error { return f } }
        return nil
    }

    func runRequest(id: String, task: String = "mark") -> TaskRequest {
        .run(RunRequest(id: id, role: "job", task: task, submitted: Clock.rfc3339()))
    }

    func taskJSON(_ id: String, on node: String) -> JSON? {
        guard let r = try? cluster.cli(["tasks", "--json", "--dir", cluster.dir(node)]), r.status == 0 else { return nil }
        return JSON.parse(r.stdout)?["tasks"]?.array?.first { $0["id"]?.string == id }
    }

    // MARK: - Finding 2: pre-authentication exhaustion

    /// CPU seconds (user + system) the process has used so far.
    func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state is field 3, utime 14 and stime 15.
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func testIdleHandshakeFloodUnderALowDescriptorLimitRevokesNothing() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        addTask("node2", "echo", "#!/bin/sh\necho hello from $ROLEMESH_NODE\n")
        try cluster.startOne("node1")
        try cluster.startOne("node2", wrapper: ["/usr/bin/prlimit", "--nofile=64:64"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let pid = try XCTUnwrap(cluster.pid("node2"))

        // 130 connections that each send a hello one byte per second (never finishing within 5 s).
        let hello = ChannelHandshake.magic + [UInt8](repeating: 0, count: ChannelHandshake.helloSize - 4)
        var conns: [Int32] = []
        defer { for fd in conns where fd >= 0 { close(fd) } }
        for _ in 0..<130 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var sa = UDPProbe.sockaddrIn(cluster.hosts["node2"]!, cluster.port)
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            conns.append(fd)
        }
        let t0 = Date()
        var closedAt = [Double?](repeating: nil, count: conns.count)
        var cpuAtStart: Double?, cpuAfter5s: Double?
        var statusAnswered = true
        for second in 0..<14 {
            let now = Date().timeIntervalSince(t0)
            for (i, fd) in conns.enumerated() where closedAt[i] == nil {
                var b = [UInt8](repeating: 0, count: 64)
                let n = recv(fd, &b, b.count, Int32(MSG_DONTWAIT))
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { closedAt[i] = now; continue }
                var byte = hello[min(second, hello.count - 1)]
                _ = send(fd, &byte, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if second == 1 { cpuAtStart = cpuSeconds(pid) }
            if second == 6 { cpuAfter5s = cpuSeconds(pid) }
            if second >= 1 && second <= 6 && cluster.statusJSON("node2") == nil { statusAnswered = false }
            if second >= 7 && closedAt.allSatisfy({ $0 != nil }) { break }
            Thread.sleep(forTimeInterval: 1)
        }
        XCTAssertTrue(statusAnswered, "node2 stopped answering status during the flood: \(cluster.log("node2"))")
        let still = closedAt.filter { $0 == nil }.count
        XCTAssertEqual(still, 0, "\(still) pre-auth connections were still open after 14 s")
        let late = closedAt.compactMap { $0 }.filter { $0 > 8 }
        XCTAssertTrue(late.isEmpty, "connections closed late (handshake deadline 5 s): \(late.prefix(5))")
        if let a = cpuAtStart, let b = cpuAfter5s {
            XCTAssertLessThan(b - a, 1.5, "node2 used \(b - a) s of CPU in 5 s of flood (spinning?)")
        } else {
            XCTFail("cannot read /proc/\(pid)/stat")
        }
        XCTAssertTrue(cluster.processes["node2"]?.isRunning == true, "node2 died: \(cluster.log("node2"))")
        XCTAssertFalse(cluster.log("node2").contains("trust in node1 revoked"), cluster.log("node2"))
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(nodes) }, "peers must stay alive and trusted")
        conns.forEach { close($0) }
        conns = []
        let r = try submit(["job/echo", "--to", "node2"], from: "node1")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "hello from node2\n")
    }

    // MARK: - Finding 3: task names, spawning, environment

    func testAnEqualsSignInATaskNameIsRefusedAndRunsNothing() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "r", "--role", "job"] : [] })
        addTask("node2", "A=B", "#!/bin/sh\necho task ran\n", role: "r")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let r = try submit(["r/A=B", "--to", "node2", "--", "/bin/echo", "pwned"], from: "node1")
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertFalse(r.stdout.contains("pwned") || r.stdout.contains("task ran"), r.stdout)
        // The executor refuses such a name too, whoever sends it.
        let frame = try ask(try channel(as: "node1", to: "node2"),
                            .run(RunRequest(id: TaskJournal.newID(), role: "r", task: "A=B",
                                            args: ["/bin/echo", "pwned"], submitted: Clock.rfc3339())))
        XCTAssertEqual(frame?.type, .error)
        XCTAssertEqual(frame?.meshError.code, 64)
    }

    func testATaskSeesOnlyItsEnvironmentAndStartsLikeFromAShell() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        let toml = cluster.dir("node2") + "/node.toml"
        let text = try String(contentsOfFile: toml, encoding: .utf8)
        XCTAssertTrue(text.contains("env_passthrough = []"), text)
        try text.replacingOccurrences(of: "env_passthrough = []", with: "env_passthrough = [\"OTHER_PASS\"]")
            .write(toFile: toml, atomically: true, encoding: .utf8)
        addTask("node2", "env", "#!/bin/sh\nenv\n")
        addTask("node2", "pipe", "#!/bin/sh\nyes | head -n 1\n")
        addTask("node2", "noshebang", "echo hi\n")
        addTask("node2", "nointerp", "#!/nonexistent/interp\necho hi\n")
        try cluster.startOne("node1")
        try cluster.startOne("node2", environment: ["SECRET_TOKEN": "xyz", "OTHER_PASS": "abc", "ROLEMESH_EXTRA": "1", "LC_TIME": "C"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let r = try submit(["job/env", "--to", "node2"], from: "node1")
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = Set(r.stdout.split(separator: "\n").compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
        XCTAssertFalse(names.contains("SECRET_TOKEN"), r.stdout)
        XCTAssertFalse(names.contains("ROLEMESH_EXTRA"), r.stdout)
        XCTAssertTrue(r.stdout.contains("OTHER_PASS=abc\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("LC_TIME=C\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("ROLEMESH_NODE=node2\n") && r.stdout.contains("ROLEMESH_FROM=node1\n"), r.stdout)
        let allowed: Set<String> = ["PATH", "HOME", "USER", "LANG", "TZ", "OTHER_PASS", "PWD", "SHLVL", "_",
                                    "ROLEMESH_NODE", "ROLEMESH_FROM", "ROLEMESH_ROLE", "ROLEMESH_TASK", "ROLEMESH_TASK_ID"]
        XCTAssertEqual(names.filter { !allowed.contains($0) && !$0.hasPrefix("LC_") }, [], r.stdout)
        // Default SIGPIPE: `yes` ends quietly when `head` is done.
        let pipe = try submit(["job/pipe", "--to", "node2"], from: "node1", timeout: 20)
        XCTAssertEqual(pipe.status, 0)
        XCTAssertEqual(pipe.stdout, "y\n")
        XCTAssertEqual(pipe.stderr, "", "SIGPIPE must be default in tasks")
        let noexec = try submit(["job/noshebang", "--to", "node2"], from: "node1")
        XCTAssertEqual(noexec.status, 126, noexec.stderr)
        XCTAssertTrue(noexec.stderr.contains("without a #! line"), noexec.stderr)
        let nointerp = try submit(["job/nointerp", "--to", "node2"], from: "node1")
        XCTAssertEqual(nointerp.status, 127, nointerp.stderr)
        XCTAssertTrue(nointerp.stderr.contains("/nonexistent/interp"), nointerp.stderr)
    }

    // MARK: - Finding 4: revocation closes the doors

    func testRevokingASubmitterEndsItsTaskChannelAndLogsStream() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node1" ? ["--role", "job"] : [] })
        let pidFile = cluster.root.path + "/long.pid"
        addTask("node1", "long", "#!/bin/sh\necho $$ > \(pidFile)\necho started\nexec sleep 60\n")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        // node2 (B) submits to node1 (A).
        let sub = Process()
        sub.executableURL = URL(fileURLWithPath: Cluster.binary)
        sub.arguments = ["submit", "--dir", cluster.dir("node2"), "job/long", "--to", "node1"]
        sub.standardInput = FileHandle.nullDevice
        sub.standardOutput = FileHandle.nullDevice
        sub.standardError = FileHandle.nullDevice
        try sub.run()
        defer { if sub.isRunning { kill(sub.processIdentifier, SIGKILL); sub.waitUntilExit() } }
        XCTAssertTrue(waitUntil(timeout: 15) { FileManager.default.fileExists(atPath: pidFile) }, cluster.log("node1"))
        var taskPID: Int32 = 0
        XCTAssertTrue(waitUntil(timeout: 5) {
            taskPID = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            return taskPID > 0
        })
        var id = ""
        XCTAssertTrue(waitUntil(timeout: 10) {
            guard let t = (try? self.cluster.cli(["tasks", "--json", "--dir", self.cluster.dir("node2")])).flatMap({ JSON.parse($0.stdout) })?["tasks"]?.array?
                .first(where: { $0["state"]?.string == "running" }) else { return false }
            id = t["id"]?.string ?? ""
            return !id.isEmpty
        })
        // B follows the output; it must be streaming ("started" arrived) before the revocation.
        let logs = Process()
        logs.executableURL = URL(fileURLWithPath: Cluster.binary)
        logs.arguments = ["logs", "--follow", "--dir", cluster.dir("node2"), id]
        let out = Pipe()
        logs.standardOutput = out
        logs.standardError = FileHandle.nullDevice
        let seen = NSLock()
        nonisolated(unsafe) var logged = Data()
        out.fileHandleForReading.readabilityHandler = { h in let d = h.availableData; seen.lock(); logged += d; seen.unlock() }
        try logs.run()
        defer { out.fileHandleForReading.readabilityHandler = nil; if logs.isRunning { kill(logs.processIdentifier, SIGKILL); logs.waitUntilExit() } }
        XCTAssertTrue(waitUntil(timeout: 10) { seen.lock(); defer { seen.unlock() }; return String(decoding: logged, as: UTF8.self).contains("started") })
        XCTAssertEqual(kill(taskPID, 0), 0, "the task runs before the revocation")

        cluster.distrust("node2", by: "node1")
        let t0 = Date()
        XCTAssertTrue(waitUntil(timeout: 10) { kill(taskPID, 0) != 0 }, "the task of a revoked submitter still runs: \(cluster.log("node1"))")
        XCTAssertTrue(waitUntil(timeout: 10 - min(9, Date().timeIntervalSince(t0))) { !sub.isRunning }, "submit did not end")
        XCTAssertEqual(sub.terminationStatus, 77)
        XCTAssertTrue(waitUntil(timeout: 5) { !logs.isRunning }, "logs --follow from the revoked node did not end")
        XCTAssertNotEqual(logs.terminationStatus, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.taskJSON(id, on: "node1")?["state"]?.string == "cancelled" },
                      "\(String(describing: taskJSON(id, on: "node1")))")
    }

    // MARK: - Finding 10: peer-chosen ids, who may read logs

    @discardableResult
    func setUpThree() throws -> [String] {
        let nodes = try cluster.create(3, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        addTask("node2", "mark", "#!/bin/sh\necho marked by $ROLEMESH_FROM\n")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return nodes
    }

    func testAPeerCannotReuseATaskID() throws {
        try setUpThree()
        let id = TaskJournal.newID()
        let first = try ask(try channel(as: "node1", to: "node2"), runRequest(id: id))
        XCTAssertEqual(first?.type, .exit)
        XCTAssertEqual(taskJSON(id, on: "node2")?["from"]?.string, "node1")
        for node in ["node3", "node1"] {
            let again = try ask(try channel(as: node, to: "node2"), runRequest(id: id))
            XCTAssertEqual(again?.type, .error, "\(node) reused an id")
            XCTAssertEqual(again?.meshError.code, 64)
            XCTAssertEqual(again?.meshError.message, "task id already used")
        }
        let record = taskJSON(id, on: "node2")
        XCTAssertEqual(record?["from"]?.string, "node1")
        XCTAssertEqual(record?["state"]?.string, "done")
        // A node submitting to itself still works (its own not-yet-started record).
        let own = try submit(["job/mark", "--to", "node2"], from: "node2")
        XCTAssertEqual(own.status, 0, own.stderr)
        XCTAssertEqual(own.stdout, "marked by node2\n")
    }

    /// The typed request (issue 25) answers as the string `switch` did: an unknown op gets `error`
    /// 64, a known one without a field it needs what that operation said of a missing field; a
    /// run after them still runs.
    func testAnUnknownOrMalformedRequestIsToldSo() throws {
        try setUpThree()
        func askRaw(_ json: String) throws -> Frame? {
            let ch = try channel(as: "node1", to: "node2")
            defer { ch.close() }
            try ch.sendBlocking(Frame(.request, Array(json.utf8)))
            while let f = try ch.receiveBlocking() { if f.type == .exit || f.type == .error { return f } }
            return nil
        }
        for (json, code, message) in [(#"{"op":"launch","id":"0123456789abcdef"}"#, 64, "unknown request"),
                                      (#"{"role":"job","task":"mark"}"#, 64, "unknown request"),
                                      (#"{"op":"run","role":"job","task":"mark","args":[]}"#, 64, "a malformed task request"),
                                      (#"{"op":"run","id":"xyz","role":"job","task":"mark"}"#, 64, "a malformed task request"),
                                      (#"{"op":"logs","follow":true}"#, 1, "node2 has no task "),
                                      (#"{"op":"relay","to":5}"#, 69, "node2 cannot carry a channel to that node"),
                                      (#"{"op":"carry"}"#, 69, "node2 takes no channel from that node")] {
            let answer = try askRaw(json)
            XCTAssertEqual(answer?.type, .error, json)
            XCTAssertEqual(answer?.meshError.code, Int32(code), json)
            XCTAssertEqual(answer?.meshError.message, message, json)
        }
        XCTAssertEqual(try ask(try channel(as: "node1", to: "node2"), runRequest(id: TaskJournal.newID()))?.type, .exit)
    }

    func testLogsOverTheTaskChannelOnlyForTheSubmitterOrRunner() throws {
        try setUpThree()
        let id = TaskJournal.newID()
        XCTAssertEqual(try ask(try channel(as: "node1", to: "node2"), runRequest(id: id))?.type, .exit)
        let logs = TaskRequest.logs(id: id, follow: false)
        let stranger = try ask(try channel(as: "node3", to: "node2"), logs)
        XCTAssertEqual(stranger?.type, .error)
        XCTAssertEqual(stranger?.meshError.code, 77)
        let submitter = try channel(as: "node1", to: "node2")
        try submitter.sendBlocking(Frame(.request, encoding: logs))
        var output = ""
        var last: Frame?
        while let f = try submitter.receiveBlocking() {
            if f.type == .stdout { output += String(decoding: f.payload, as: UTF8.self) }
            if f.type == .exit || f.type == .error { last = f; break }
        }
        submitter.close()
        XCTAssertEqual(last?.type, .exit)
        XCTAssertEqual(output, "marked by node1\n")
    }
}
