import Foundation
import XCTest
import RoleMeshAgent

/// A node of the previous release and one of this release share a mesh (protocol.md's version
/// rules): each sees the other alive and runs the other's tasks, over a kept channel where both
/// ends keep one and a channel per task where the old one does not. The previous release is
/// built from its tag by `scripts/previous-release.sh` (`.ci/run` does, cached per machine) and
/// named by `ROLEMESH_PREVIOUS_BIN`.
final class PreviousReleaseTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func testANodeOfThePreviousReleaseAndOneOfThisReleaseShareAMesh() throws {
        guard let old = ProcessInfo.processInfo.environment["ROLEMESH_PREVIOUS_BIN"], !old.isEmpty else {
            throw XCTSkip("ROLEMESH_PREVIOUS_BIN is not set: scripts/previous-release.sh builds the previous release (.ci/run sets it)")
        }
        let oldVersion = try Cluster.run(old, ["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let newVersion = try cluster.cli(["--version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotEqual(oldVersion, newVersion, "two different releases")
        try cluster.create(2, extra: { $0 == "node1" ? ["--role", "new"] : [] })
        // node2 is the previous release's, its directory as that release's `init` writes it.
        try FileManager.default.removeItem(atPath: cluster.dir("node2"))
        let made = try Cluster.run(old, ["init", "node2", "--dir", cluster.dir("node2"), "--listen", cluster.address("node2"),
                                         "--seed", cluster.address("node1"), "--profile", "fast", "--role", "old"])
        XCTAssertEqual(made.status, 0, made.stderr)
        cluster.distrust("node2", by: "node1")
        cluster.trust("node2", by: "node1")
        cluster.trust("node1", by: "node2")
        for (node, role) in [("node1", "new"), ("node2", "old")] {
            let d = cluster.dir(node) + "/roles/\(role)"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: d + "/who", contents: Data("#!/bin/sh\ncat; echo \"$ROLEMESH_NODE $*\"\n".utf8),
                                           attributes: [.posixPermissions: 0o755])
        }
        try cluster.startOne("node1")
        try cluster.startOne("node2", binary: old)
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) },
                      "\(cluster.log("node1"))\n\(cluster.log("node2"))")
        // This release submits to the previous one, twice (a new channel each time: it keeps none).
        for i in 0..<2 {
            let r = try cluster.cli(["submit", "--dir", cluster.dir("node1"), "old/who", "--", "\(i)"], stdin: Data("in\(i)\n".utf8))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, "in\(i)\nnode2 \(i)\n")
        }
        // The previous release submits to this one, twice (it closes each channel after its run).
        for i in 0..<2 {
            let r = try Cluster.run(old, ["submit", "--dir", cluster.dir("node2"), "new/who", "--", "\(i)"], stdin: Data("in\(i)\n".utf8))
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, "in\(i)\nnode1 \(i)\n")
        }
        XCTAssertEqual(cluster.states(seenBy: "node1")["node2"], "alive")
        let oldView = try Cluster.run(old, ["status", "--json", "--dir", cluster.dir("node2")])
        XCTAssertTrue(oldView.stdout.contains("\"node1\""), oldView.stdout)
    }
}
