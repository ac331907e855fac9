import Foundation
import XCTest
import RoleMeshAgent
import Glibc

/// A node whose every file write takes 5 s (`ROLEMESH_TEST_WRITE_DELAY_MS`, a test-only hook)
/// must keep beating: commands that write files wait for the disk, the failure detector does not.
/// With writes on the agent queue, each one stalls it for 5 s: the node thinks it was suspended
/// and raises its incarnation, and the others suspect it.
final class SlowDiskTests: XCTestCase {
    var cluster: Cluster!

    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func testSlowDiskStallsNeitherHeartbeatsNorIncarnation() throws {
        let nodes = try cluster.create(3)
        try cluster.start(["node1", "node2"])
        try cluster.startOne("node3", environment: ["ROLEMESH_TEST_WRITE_DELAY_MS": "5000"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) }, "3 nodes did not converge")
        let before = try XCTUnwrap(incarnation(of: "node3"))
        let watch = try WatchStream(binary: Cluster.binary, dir: cluster.dir("node1"))
        defer { watch.stop() }

        // Commands that write files, all at once; each answers once its write is done.
        let dir = cluster.dir("node3")
        let commands = [[["signal", "set", "load=0.9"]], [["drain"], ["undrain"]], [["roles", "add", "x"]]]
        let lock = NSLock()
        nonisolated(unsafe) var results: [(args: [String], result: Cluster.Result?)] = []
        let group = DispatchGroup()
        for sequence in commands {
            group.enter()
            Thread.detachNewThread {
                for args in sequence {
                    let r = try? Cluster.run(Cluster.binary, args + ["--dir", dir], timeout: 60)
                    lock.lock(); results.append((args, r)); lock.unlock()
                }
                group.leave()
            }
        }
        Thread.sleep(forTimeInterval: 6)
        XCTAssertEqual(incarnation(of: "node3"), before, "node3 raised its incarnation: its queue stalled\n\(cluster.log("node3"))")

        // The writes themselves still happen, in order, and every command gets its answer.
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success, "the commands did not all answer")
        lock.lock(); let done = results; lock.unlock()
        for (args, r) in done { XCTAssertEqual(r?.status, 0, "\(args): \(r?.stderr ?? "no answer")") }
        let me = cluster.member("node3", seenBy: "node3")
        XCTAssertEqual(me?["signals"]?["load"]?.double, 0.9)
        XCTAssertEqual(me?["draining"]?.bool, false)
        XCTAssertTrue(me?["roles"]?.array?.contains { $0.string == "x" } ?? false)
        let toml = try String(contentsOfFile: dir + "/node.toml", encoding: .utf8)
        XCTAssertTrue(toml.contains("\"x\""), "node.toml does not hold the new role:\n\(toml)")
        XCTAssertEqual(incarnation(of: "node3"), before)

        let suspects = watch.lines.filter { $0["event"]?.string == "member-suspect" }
        XCTAssertTrue(suspects.isEmpty, "node1 suspected: \(suspects.map(\.serialized))")
        for n in nodes {
            let log = cluster.logs[n].flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
            XCTAssertFalse(log.contains("member-suspect"), "\(n) suspected someone:\n\(log)")
        }
    }

    /// The self row of `status --json`.
    func incarnation(of node: String) -> Int? {
        cluster.member(node, seenBy: node)?["incarnation"]?.int
    }
}
