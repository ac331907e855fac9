import Foundation
import XCTest
import RoleMeshControl
import Glibc

/// `DIR/hooks/`: every executable runs per `watch` event, the event's line on stdin; a slow or
/// failing hook delays and stops nothing.
final class HookIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() {
        for pid in sleepers() { kill(pid, SIGKILL) }
        cluster.shutdown()
    }

    /// A sleep whose duration is unique to this cluster: only our slow hooks run it.
    var slowWord: String { "3\(cluster.port)7" }

    /// The slow hook's processes, found by their unique argument.
    func sleepers() -> [pid_t] {
        let word = slowWord
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), let cmd = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8) else { return nil }
            return cmd.split(separator: "\0").contains { $0 == word } ? pid : nil
        }
    }

    func hook(_ node: String, _ name: String, _ script: String) {
        let d = cluster.dir(node) + "/hooks"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/" + name, contents: Data(script.utf8), attributes: [.posixPermissions: 0o755]))
    }

    func logged() -> [String] {
        ((try? String(contentsOfFile: cluster.root.path + "/hooks.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func testHooksRunPerEventWithTheLineOnStdinAndASlowOneDelaysNothing() throws {
        let nodes = try cluster.create(2)
        hook("node1", "log", "#!/bin/sh\nread line\necho \"$ROLEMESH_EVENT $ROLEMESH_NODE $ROLEMESH_SELF $line\" >> \(cluster.root.path)/hooks.log\n")
        hook("node1", "slow", "#!/bin/sh\nexec sleep \(slowWord)\n")
        hook("node1", "fails", "#!/bin/sh\nexit 3\n")
        hook("node1", ".hidden", "#!/bin/sh\nexit 9\n")
        try cluster.start([nodes[0]])
        try cluster.start([nodes[1]])
        XCTAssertTrue(waitUntil(timeout: 10) { self.logged().contains { $0.hasPrefix("member-alive node2 node1 {") } }, "\(logged())\n\(cluster.log("node1"))")
        let line = try XCTUnwrap(logged().first { $0.hasPrefix("member-alive node2") })
        let json = try XCTUnwrap(JSON.parse(String(line.split(separator: " ", maxSplits: 3)[3])))
        XCTAssertEqual(json["event"]?.string, "member-alive")
        XCTAssertEqual(json["node"]?.string, "node2")

        // More events than the slow hook may run at once: the log hook still sees each one at once.
        for (i, assignment) in ["on_battery=true", "on_battery=false", "throttled=true", "throttled=false", "on_battery=true"].enumerated() {
            let r = try cluster.cli(["signal", "set", assignment, "--dir", cluster.dir("node2")])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(waitUntil(timeout: 5) { self.logged().filter { $0.hasPrefix("member-updated node2") }.count >= i + 1 },
                          "event \(i + 1) did not reach the log hook: \(logged())")
        }
        XCTAssertEqual(sleepers().count, 4, "at most 4 runs of one hook at once")
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.log("node1").contains("hook fails for member-alive exited 3") }, cluster.log("node1"))
        XCTAssertFalse(cluster.log("node1").contains(".hidden"))
        XCTAssertNotNil(cluster.statusJSON("node1"))
    }
}
