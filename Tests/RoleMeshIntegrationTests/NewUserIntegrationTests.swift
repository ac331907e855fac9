import Foundation
import XCTest
import Synchronization
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// What a new user ran into in the second round (issue 24, "From the new user"), against the real
/// binary and real agents.
final class NewUserIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func cli(_ node: String, _ args: [String], stdin: Data? = nil) -> Cluster.Result {
        (try? cluster.cli(args + ["--dir", cluster.dir(node)], stdin: stdin)) ?? Cluster.Result(status: -1, stdout: "", stderr: "could not run")
    }

    /// Runs the binary with its stdout on a SOCK_SEQPACKET socket, where every write(2) stays one
    /// message: what comes back is the list of writes, in order.
    func writes(_ args: [String], timeout: Double = 30) throws -> (status: Int32, writes: [String]) {
        var sv: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &sv), 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Cluster.binary)
        p.arguments = args
        p.standardOutput = FileHandle(fileDescriptor: sv[1], closeOnDealloc: true)
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        close(sv[1])
        XCTAssertTrue(waitUntil(timeout: timeout) { !p.isRunning })
        var out: [String] = []
        var buf = [UInt8](repeating: 0, count: 65_536)
        _ = fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK)
        while true {
            let n = recv(sv[0], &buf, buf.count, 0)
            if n <= 0 { break }
            out.append(String(decoding: buf[0..<n], as: UTF8.self))
        }
        close(sv[0])
        return (p.terminationStatus, out)
    }

    // MARK: 1. join writes its output at once

    /// `rolemesh join ... | head -1` under `set -o pipefail` failed about once in seven: join wrote
    /// its two lines in two writes, and head could close the pipe between them.
    func testJoinWritesItsOutputInOneWrite() throws {
        try cluster.create(1)
        try cluster.start()
        let code = cli("node1", ["invite", "laptop"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(code.hasPrefix("rm1-"), code)
        cluster.hosts["laptop"] = "127.0.0.3"
        let r = try writes(["join", code, "--dir", cluster.dir("laptop"), "--listen", cluster.address("laptop"), "--profile", "fast"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(r.writes.count, 1, "join's output came in \(r.writes.count) writes: \(r.writes)")
        XCTAssertEqual(r.writes.first?.split(separator: "\n").count, 2, "\(r.writes)")
    }

    // MARK: 3. no agent: 69, and leave does not say to start one

    func testCommandsWithNoAgentExit69AndLeaveDoesNotSayStartOne() throws {
        try cluster.create(1)
        for args in [["status"], ["route", "x"], ["tasks"], ["watch"], ["drain"], ["schedules"]] {
            let r = cli("node1", args)
            XCTAssertEqual(r.status, 69, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("no agent is running"), "\(args): \(r.stderr)")
        }
        let leave = cli("node1", ["leave"])
        XCTAssertEqual(leave.status, 69, leave.stderr)
        XCTAssertTrue(leave.stderr.contains("nothing to leave"), leave.stderr)
        XCTAssertFalse(leave.stderr.contains("start one"), leave.stderr)
    }

    // MARK: 10. revoke --help

    /// `revoke` works with the agent stopped (the revocation spreads once it runs): its help said
    /// the agent must run.
    func testRevokeHelpSaysItWorksWithoutTheAgent() throws {
        let r = try Cluster.run(Cluster.binary, ["revoke", "--help"])
        XCTAssertEqual(r.status, 0)
        let text = r.stdout.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "  +", with: " ", options: .regularExpression)
        XCTAssertFalse(text.contains("must run"), text)
        XCTAssertTrue(text.contains("with the agent stopped it spreads once the agent runs"), text)
    }

    // MARK: 13. small ones

    /// The table's state word is always a contract state (`left,drain` was not), draining is said
    /// beside it only while the member is up, and the `dropped:` line has every counter.
    func testStatusTableShowsContractStatesAndEveryDropCounter() throws {
        let nodes = try cluster.create(2)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        XCTAssertEqual(cli("node2", ["drain"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.member("node2", seenBy: "node1")?["draining"]?.bool == true })
        var table = cli("node1", ["status"]).stdout
        XCTAssertTrue(table.contains("alive (draining)"), table)
        for counter in ["bad_signature", "unknown_key", "replay", "malformed", "rate_limited", "bad_mac", "not_introducer", "forged_slot_record"] {
            XCTAssertTrue(table.contains("\(counter)=0"), "\(counter) missing from: \(table)")
        }
        XCTAssertEqual(cli("node2", ["leave"]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.states(seenBy: "node1")["node2"] == "left" })
        table = cli("node1", ["status"]).stdout
        let row = table.split(separator: "\n").first { $0.hasPrefix("node2") }.map(String.init) ?? ""
        XCTAssertTrue(row.contains(" left "), row)
        XCTAssertFalse(row.contains("drain"), row)
    }

    /// The first device has nobody to contact: `init` without `--seed` is not worth a warning.
    func testInitOfTheFirstDeviceDoesNotWarn() throws {
        let r = try cluster.cli(["init", "desk", "--dir", cluster.dir("desk"), "--listen", "127.0.0.2:\(cluster.port)"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "")
    }

    /// `~` is `$HOME`, as ssh and git take it, not the password database's home.
    func testTheDefaultDirectoryIsUnderHOME() throws {
        let home = cluster.root.appendingPathComponent("home").path
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = home
        env["ROLEMESH_DIR"] = nil
        let r = try Cluster.run(Cluster.binary, ["init", "desk", "--listen", "127.0.0.2:\(cluster.port)"], environment: env)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: home + "/.rolemesh/node.toml"), r.stdout)
    }

    /// Bash completion after a leading `--dir X`: the command's own options, not the commands again.
    func testBashCompletionAfterALeadingDir() throws {
        let script = try Cluster.run(Cluster.binary, ["--generate-completion-script", "bash"]).stdout
        let file = cluster.root.appendingPathComponent("completion.bash").path
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        func complete(_ words: [String]) throws -> [String] {
            // COMP_WORDS ends with the word being completed ("" for a fresh one).
            let quoted = words.map { "'\($0)'" }.joined(separator: " ")
            let line = words.joined(separator: " ")
            let program = """
                source '\(file)'
                COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
                _rolemesh rolemesh '\(words.last!)' '\(words[words.count - 2])'
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            let r = try Cluster.run("/bin/bash", ["-c", program])
            XCTAssertEqual(r.status, 0, r.stderr)
            return r.stdout.split(separator: "\n").map(String.init)
        }
        let afterDir = try complete(["rolemesh", "--dir", "/tmp/x", "status", ""])
        XCTAssertTrue(afterDir.contains("--json"), "\(afterDir)")
        XCTAssertFalse(afterDir.contains("init"), "the commands offered again: \(afterDir)")
        XCTAssertTrue(try complete(["rolemesh", "--dir", "/tmp/x", "sta"]).contains("status"))
    }

    /// The README's example follows its own story: the laptop holds no role (it submits; the home
    /// server transcodes).
    func testTheReadmeExampleDoesNotGiveTheLaptopARole() throws {
        let readme = try HelpText.repoFile("README.md")
        let lines = readme.split(separator: "\n").filter { $0.hasPrefix("rolemesh ") && $0.contains("join") && $0.contains("on the laptop") }
        XCTAssertFalse(lines.isEmpty)
        for l in lines { XCTAssertFalse(l.contains("--role"), String(l)) }
    }

    // MARK: 7. a task file without the exec bit

    /// 126 and "not executable (chmod +x ...)", as a shell says it; not 77 "has no task".
    func testATaskFileThatIsNotExecutableSaysSoWith126() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        let d = cluster.dir("node2") + "/roles/job"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/plain", contents: Data("#!/bin/sh\necho hi\n".utf8),
                                                    attributes: [.posixPermissions: 0o644]))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let r = cli("node1", ["submit", "job/plain"])
        XCTAssertEqual(r.status, 126, r.stderr)
        XCTAssertTrue(r.stderr.contains("roles/job/plain is not executable (chmod +x \(d)/plain there)"), r.stderr)
        let missing = cli("node1", ["submit", "job/nothere"])
        XCTAssertEqual(missing.status, 77, missing.stderr)
    }

    // MARK: 12. a second agent on the same directory

    /// It refuses before it logs "agent started" or raises the incarnation.
    func testASecondAgentOnTheSameDirectoryRefusesBeforeItStarts() throws {
        try cluster.create(1)
        try cluster.start()
        let incarnation = cluster.dir("node1") + "/state/incarnation"
        let before = try String(contentsOfFile: incarnation, encoding: .utf8)
        let r = try cluster.cli(["agent", "--dir", cluster.dir("node1")], timeout: 10)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("an agent is already running for this directory"), r.stderr)
        XCTAssertTrue(r.stderr.contains("pid \(cluster.pid("node1")!)"), r.stderr)
        XCTAssertFalse(r.stderr.contains("agent started"), r.stderr)
        XCTAssertEqual(try String(contentsOfFile: incarnation, encoding: .utf8), before, "the incarnation was raised")
        XCTAssertNotNil(cluster.statusJSON("node1"), "the first agent still serves")
    }

    // MARK: 5 and 6. schedules start soon and read their own idle time exactly

    func writeFile(_ path: String, _ text: String, mode: Int = 0o644) {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: mode]))
    }

    func scheduleReason(_ node: String) -> String? {
        guard let r = try? cluster.cli(["schedules", "--json", "--dir", cluster.dir(node)]), r.status == 0 else { return nil }
        return JSON.parse(r.stdout)?["schedules"]?.array?.first?["reason"]?.string
    }

    /// On `lan`, schedules waited 40 s after every start ("waiting: starting"): now a node that has
    /// heard every member up starts its slot at once, and one that waits says for what and until when.
    func testASlotOnLanStartsOnceTheMeshIsHeardAndSaysWhatItWaitsFor() throws {
        cluster.shutdown()
        cluster = Cluster(profile: "lan")
        try cluster.create(2, extra: { $0 == "node1" ? ["--role", "meta"] : [] })
        let marker = cluster.root.appendingPathComponent("ran").path
        writeFile(cluster.dir("node1") + "/roles/meta/index", "#!/bin/sh\ntouch \(marker)\n", mode: 0o755)
        writeFile(cluster.dir("node1") + "/roles/meta/schedule.toml", "[index]\nevery = \"1d\"\n")
        // Alone, node1 hears nobody: it waits its limit, and says so.
        try cluster.startOne("node1")
        XCTAssertTrue(waitUntil(timeout: 10) { self.scheduleReason("node1")?.contains("once it has heard which slots the mesh ran") == true },
                      String(describing: scheduleReason("node1")))
        XCTAssertTrue(scheduleReason("node1")?.contains("at the latest") == true, String(describing: scheduleReason("node1")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
        // node2 comes: once node1 heard it and exchanged records, the slot starts (not 40 s after start).
        let t0 = Date()
        try cluster.startOne("node2")
        XCTAssertTrue(waitUntil(timeout: 12) { FileManager.default.fileExists(atPath: marker) },
                      "the slot did not start within 12 s of the mesh being there: \(String(describing: scheduleReason("node1")))")
        print("slot started \(Int(Date().timeIntervalSince(t0) * 1000)) ms after node2 started")
    }

    /// `idle = "3s"` means 3 s on the node that runs it (it used to mean at least a minute: idle_s
    /// is announced in whole minutes). A fake /proc/stat whose CPU stays quiet makes node1 idle.
    func testAShortIdleRequirementWorksAsWritten() throws {
        try cluster.create(1, extra: { _ in ["--role", "meta"] })
        let marker = cluster.root.appendingPathComponent("ran").path
        writeFile(cluster.dir("node1") + "/roles/meta/quiet", "#!/bin/sh\ntouch \(marker)\n", mode: 0o755)
        writeFile(cluster.dir("node1") + "/roles/meta/schedule.toml", "[quiet]\nevery = \"1d\"\nidle = \"3s\"\n")
        let fake = cluster.root.appendingPathComponent("proc-root").path
        let stat = fake + "/proc/stat"
        let stop = Atomic(false)
        let writer = Thread {
            var idle: UInt64 = 1000
            for _ in 0..<600 where !stop.load(ordering: .relaxed) {
                idle += 100
                try? "cpu  100 0 100 \(idle) 0 0 0 0 0 0\n".write(toFile: stat, atomically: true, encoding: .utf8)
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        writeFile(stat, "cpu  100 0 100 1000 0 0 0 0 0 0\n")
        writer.start()
        defer { stop.store(true, ordering: .relaxed) }
        let t0 = Date()
        try cluster.startOne("node1", environment: ["ROLEMESH_PROBE_ROOT": fake])
        XCTAssertTrue(waitUntil(timeout: 20) { FileManager.default.fileExists(atPath: marker) },
                      "a 3 s idle condition did not start within 20 s: \(String(describing: scheduleReason("node1")))")
        print("the idle = 3s slot started \(Int(Date().timeIntervalSince(t0) * 1000)) ms after start")
    }

    // MARK: 4. a second invite, and a mistyped code

    /// A second `invite NAME` says the first code still works (both do, until one is used), and a
    /// mistyped code says "mistyped" before anything is sent, not that the inviter cannot prove itself.
    func testASecondInviteKeepsTheFirstAndAMistypedCodeSaysSo() throws {
        try cluster.create(1)
        try cluster.start()
        let first = cli("node1", ["invite", "laptop"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertFalse(first.stderr.contains("earlier code"), first.stderr)
        let second = cli("node1", ["invite", "laptop"])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertTrue(second.stderr.contains("the earlier code for laptop") && second.stderr.contains("still works"), second.stderr)
        let code1 = first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let code2 = second.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotEqual(code1, code2)

        // A typo in the middle of the first code (inside the inviter's key).
        var letters = Array(code1)
        let i = letters.count / 3
        letters[i] = letters[i] == "a" ? "b" : "a"
        cluster.hosts["laptop"] = "127.0.0.3"
        let typo = try cluster.cli(["join", String(letters), "--dir", cluster.dir("laptop"), "--listen", cluster.address("laptop")])
        XCTAssertEqual(typo.status, 77, typo.stderr)
        XCTAssertTrue(typo.stderr.contains("mistyped"), typo.stderr)
        XCTAssertFalse(typo.stderr.contains("could not prove"), typo.stderr)

        // The first code works though a second was made; then the second no longer does.
        let joined = try cluster.cli(["join", code1, "--dir", cluster.dir("laptop"), "--listen", cluster.address("laptop"), "--profile", "fast"])
        XCTAssertEqual(joined.status, 0, joined.stderr)
        cluster.hosts["tablet"] = "127.0.0.4"
        let late = try cluster.cli(["join", code2, "--dir", cluster.dir("tablet"), "--listen", cluster.address("tablet")])
        XCTAssertEqual(late.status, 77, late.stderr)
        XCTAssertTrue(late.stderr.contains("did not accept this code"), late.stderr)
    }
}
