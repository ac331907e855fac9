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
}
