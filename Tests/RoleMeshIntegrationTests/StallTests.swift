import Foundation
import XCTest
import RoleMeshAgent
import Glibc
import RoleMeshTransport
import RoleMeshPlatform
import RoleMeshTaskChannel

/// A control client must never stall the agent's queue, which also ticks the failure detector:
/// on `fast` a 400 ms stall makes a node think it was suspended and raise its incarnation.
final class StallTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func threeNodes() throws -> [String] {
        let nodes = try cluster.create(3)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return nodes
    }

    func ownIncarnation(_ node: String) -> Int? { cluster.member(node, seenBy: node)?["incarnation"]?.int }

    /// A raw client of `node`'s control socket that sends `request` and then never reads.
    /// Its receive buffer is made small, so the agent's side fills quickly.
    func silentClient(_ node: String, _ request: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let rc = SocketAddress.withUnix(path: cluster.dir(node) + "/agent.sock") { connect(fd, $0, $1) }
        XCTAssertEqual(rc, 0, "connect to \(node)'s control socket")
        let line = Array((request + "\n").utf8)
        XCTAssertEqual(line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }, line.count)
        return fd
    }

    /// While `hold` runs: `node` keeps its incarnation and nobody suspects anybody.
    func assertNoStall(on node: String, nodes: [String], during hold: () throws -> Void) throws {
        let watchers = try nodes.filter { $0 != node }.map { try WatchStream(binary: Cluster.binary, dir: cluster.dir($0)) }
        defer { watchers.forEach { $0.stop() } }
        let before = ownIncarnation(node)
        XCTAssertNotNil(before)
        try hold()
        Thread.sleep(forTimeInterval: 0.5)      // anything the hold caused has been heard by now
        XCTAssertEqual(ownIncarnation(node), before, "\(node) thought it was suspended: its agent queue stalled")
        let suspects = watchers.flatMap(\.lines).filter { $0["event"]?.string == "member-suspect" }
        XCTAssertTrue(suspects.isEmpty, "suspected during the hold: \(suspects.compactMap { $0["node"]?.string })")
        for n in nodes { XCTAssertFalse(cluster.log(n).contains("member-suspect"), "\(n): \(cluster.log(n))") }
    }

    /// (a) A `tasks` reply far larger than the socket buffers, to a client that never reads it.
    func testAClientThatDoesNotReadALargeReplyStallsNothing() throws {
        let nodes = try threeNodes()
        // A journal of 4,000 finished tasks with long names: a reply of about 2 MB.
        let tasks = URL(fileURLWithPath: cluster.dir("node1")).appendingPathComponent("state/tasks")
        let now = Clock.rfc3339(), long = String(repeating: "x", count: 200)
        for i in 0..<4_000 {
            var r = TaskRecord(id: String(format: "%016lx", 0xabc0_0000 + i), role: "job", task: "t\(long)", node: "node1",
                               from: "node1", state: .done, submitted: now)
            r.exitCode = 0; r.finished = now
            let folder = tasks.appendingPathComponent(r.id)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try ControlJSON.line(r).write(to: folder.appendingPathComponent("task.json"))
        }
        try assertNoStall(on: "node1", nodes: nodes) {
            let fd = try silentClient("node1", #"{"cmd": "tasks"}"#)
            defer { close(fd) }
            let start = Date()
            while Date().timeIntervalSince(start) < 5 {
                // The agent answers others meanwhile, at once.
                let t0 = Date()
                XCTAssertNotNil(cluster.statusJSON("node1"))
                XCTAssertLessThan(Date().timeIntervalSince(t0), 2)
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
        // And a client that does read gets the whole journal.
        let r = try cluster.cli(["tasks", "--json", "--dir", cluster.dir("node1")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(JSON.parse(r.stdout)?["tasks"]?.array?.count, 4_000)
    }

    /// (b) A `watch` that stops reading while events happen (roles change, over and over).
    func testAWatchThatStopsReadingStallsNothing() throws {
        let nodes = try threeNodes()
        try assertNoStall(on: "node1", nodes: nodes) {
            let fd = try silentClient("node1", #"{"cmd": "watch"}"#)
            defer { close(fd) }
            let start = Date()
            var flips = 0
            while Date().timeIntervalSince(start) < 5 {
                let action = flips % 2 == 0 ? "add" : "remove"
                let r = try cluster.cli(["roles", action, "churn\(flips % 7)", "--dir", cluster.dir("node2")])
                XCTAssertEqual(r.status, 0, r.stderr)
                flips += 1
            }
            XCTAssertGreaterThan(flips, 10)
        }
        // The stuck watcher cost nothing lasting: node1 still answers and streams.
        let w = try WatchStream(binary: Cluster.binary, dir: cluster.dir("node1"))
        defer { w.stop() }
        XCTAssertEqual(try cluster.cli(["roles", "add", "late", "--dir", cluster.dir("node2")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { w.lines.contains { $0["event"]?.string == "member-updated" && $0["node"]?.string == "node2" } })
    }

    /// (c) `status` against a stopped agent gives up with one clear sentence and exit 69.
    func testStatusAgainstAStoppedAgentGivesUpWithin6s() throws {
        _ = try cluster.create(1)
        try cluster.start()
        cluster.signal("node1", SIGSTOP)
        defer { cluster.signal("node1", SIGCONT) }
        let start = Date()
        let r = try cluster.cli(["status", "--dir", cluster.dir("node1")], timeout: 20)
        let took = Date().timeIntervalSince(start)
        XCTAssertEqual(r.status, 69, r.stderr)
        XCTAssertLessThan(took, 6.5)
        XCTAssertGreaterThanOrEqual(took, 4.5, "the limit is 5 s")
        XCTAssertTrue(r.stderr.contains("did not answer within 5 s"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "one sentence: \(r.stderr)")
        cluster.signal("node1", SIGCONT)
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.statusJSON("node1") != nil }, "the agent answers again once resumed")
    }
}
