import Foundation
import XCTest
import RoleMeshAgent

/// One authenticated task channel carries many runs (as ssh's ControlMaster does), and a kept
/// channel that went away costs nothing but a new connection.
final class KeptChannelTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func makeMesh() throws {
        try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        let d = cluster.dir("node2") + "/roles/job"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: d + "/cat", contents: Data("#!/bin/sh\nexec cat\n".utf8), attributes: [.posixPermissions: 0o755])
        _ = FileManager.default.createFile(atPath: d + "/id", contents: Data("#!/bin/sh\necho \"$ROLEMESH_TASK_ID\"\n".utf8),
                                       attributes: [.posixPermissions: 0o755])
        try cluster.startOne("node1")
        try cluster.startOne("node2", arguments: ["--log-level", "debug"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
    }

    func submit(_ args: [String], stdin: String? = nil) throws -> Cluster.Result {
        try cluster.cli(["submit", "--dir", cluster.dir("node1")] + args, stdin: stdin.map { Data($0.utf8) }, timeout: 30)
    }

    /// Runs node2 took on a channel that had carried a run before, as its debug log says.
    func runsOnKeptChannels() -> Int {
        let log = cluster.logs["node2"].flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
        return log.components(separatedBy: "a run on a kept channel").count - 1
    }

    func testRunsOneAfterAnotherShareOneChannelAndKeepTheirOwnInputAndOutput() throws {
        try makeMesh()
        var outputs: [String] = []
        for word in ["one", "two", "three", "four"] {
            let r = try submit(["job/cat"], stdin: word + "\n")
            XCTAssertEqual(r.status, 0, r.stderr)
            outputs.append(r.stdout)
        }
        XCTAssertEqual(outputs, ["one\n", "two\n", "three\n", "four\n"], "each run got its own stdin and output")
        let ids = try (0..<3).map { _ in try submit(["job/id"]).stdout }
        XCTAssertEqual(Set(ids).count, 3)
        XCTAssertEqual(runsOnKeptChannels(), 6, "seven runs, one handshake: \(cluster.log("node2"))")
    }

    func testAKeptChannelThatWentAwayIsReplacedWithoutLosingTheRun() throws {
        try makeMesh()
        XCTAssertEqual(try submit(["job/cat"], stdin: "before\n").stdout, "before\n")
        // The server goes and comes back: the kept channel is dead; the next run opens a new one.
        cluster.crash("node2")
        try cluster.startOne("node2", arguments: ["--log-level", "debug"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
        let r = try submit(["job/cat"], stdin: "after\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "after\n")
        XCTAssertEqual(cluster.states(seenBy: "node1")["node2"], "alive")
    }
}
