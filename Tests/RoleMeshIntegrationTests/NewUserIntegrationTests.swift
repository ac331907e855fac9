import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
}
