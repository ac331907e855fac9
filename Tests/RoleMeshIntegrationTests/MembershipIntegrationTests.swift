import Foundation
import XCTest
import RoleMeshAgent
import Glibc

/// Real agents on 127.0.0.x, observed through `rolemesh status --json` as a user would.
final class MembershipIntegrationTests: XCTestCase {
    var cluster: Cluster!

    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func testFiveNodesConvergeAndACrashIsNoticedByEverySurvivor() throws {
        let nodes = try cluster.create(5)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) }, "5 nodes did not converge")
        cluster.crash("node3")
        let survivors = nodes.filter { $0 != "node3" }
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.everyone(survivors, sees: "node3", as: "dead") },
                      "not every survivor saw node3 dead: \(survivors.map { self.cluster.states(seenBy: $0) })")
        XCTAssertTrue(cluster.allAlive(survivors))
    }

    func testSixteenNodesConverge() throws {
        let nodes = try cluster.create(16)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 40, interval: 0.5) { self.cluster.allAlive(nodes) },
                      "16 nodes did not converge: \(self.cluster.states(seenBy: "node16"))")
    }

    func testLeaveAndSigtermShowLeftEverywhere() throws {
        let nodes = try cluster.create(4)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let r = try cluster.cli(["leave", "--dir", cluster.dir("node2")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(cluster.waitForExit("node2"), 0)
        let others = ["node1", "node3", "node4"]
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.everyone(others, sees: "node2", as: "left") })
        cluster.signal("node4", SIGTERM)
        XCTAssertEqual(cluster.waitForExit("node4"), 0, "SIGTERM is a graceful leave, exit 0")
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.everyone(["node1", "node3"], sees: "node4", as: "left") })
        XCTAssertFalse(cluster.log("node1").contains("member-dead peer=node4"), "a leave must not look like a death")
    }

    func testSuspendedNodeDeclaresNobodyDeadAndRejoins() throws {
        let nodes = try cluster.create(4)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        cluster.signal("node2", SIGSTOP)
        let others = ["node1", "node3", "node4"]
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.everyone(others, sees: "node2", as: "dead") })
        Thread.sleep(forTimeInterval: 1.5)       // well past the dead timeout
        cluster.signal("node2", SIGCONT)
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(nodes) },
                      "after SIGCONT: \(nodes.map { self.cluster.states(seenBy: $0) })")
        let log = cluster.log("node2")
        XCTAssertFalse(log.contains("member-dead"), "the sleeper declared someone dead:\n\(log)")
        XCTAssertFalse(log.contains("member-suspect"), "the sleeper suspected someone:\n\(log)")
    }

    func testRestartOnANewAddressKeepsOneMember() throws {
        let nodes = try cluster.create(3)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        cluster.crash("node3")
        // The laptop wakes up on another network: same key, same name, new address.
        let toml = cluster.dir("node3") + "/node.toml"
        let text = try String(contentsOfFile: toml, encoding: .utf8)
        let newAddress = "127.0.9.9:\(cluster.port)"
        try text.replacingOccurrences(of: cluster.address("node3"), with: newAddress).write(toFile: toml, atomically: true, encoding: .utf8)
        try cluster.startOne("node3")
        XCTAssertTrue(waitUntil(timeout: 10) {
            ["node1", "node2"].allSatisfy { o in
                let ms = self.cluster.statusJSON(o)?["members"]?.array ?? []
                let mine = ms.filter { $0["name"]?.string == "node3" }
                return mine.count == 1 && mine[0]["address"]?.string == newAddress && mine[0]["state"]?.string == "alive"
            }
        }, "node3 should be one alive member at \(newAddress)")
    }

    func testUntrustedNodeNeverAppearsAndIsCounted() throws {
        try cluster.create(3)
        // A stranger who knows our seed but whose key nobody has.
        let stranger = try cluster.create(1, prefix: "stranger", firstHost: 40, trustAll: false)[0]
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2", "node3"]) })
        XCTAssertTrue(waitUntil(timeout: 10) { (self.cluster.statusJSON("node1")?["dropped"]?["unknown_key"]?.int ?? 0) > 0 })
        for o in ["node1", "node2", "node3"] { XCTAssertNil(cluster.states(seenBy: o)[stranger]) }
        XCTAssertNil(cluster.states(seenBy: stranger)["node1"], "the stranger's agent must not accept us either")
    }

    func testTrustIsRevokedAndGrantedWithoutRestart() throws {
        let nodes = try cluster.create(3)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        cluster.distrust("node3", by: "node1")
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.states(seenBy: "node1")["node3"] == nil },
                      "node1 still lists node3 10 s after its key was removed")
        cluster.trust("node3", by: "node1")
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.states(seenBy: "node1")["node3"] == "alive" })
    }

    func testSecretReadableByOthersIsRefused() throws {
        try cluster.create(1)
        chmod(cluster.dir("node1") + "/keys/node1.secret", 0o644)
        let r = try cluster.cli(["agent", "--dir", cluster.dir("node1")], timeout: 10)
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("readable by group or others"), r.stderr)
    }

    func testInitTwiceChangesNothingAndBadConfigNamesKeyAndLine() throws {
        try cluster.create(1)
        let before = try String(contentsOfFile: cluster.dir("node1") + "/node.toml", encoding: .utf8)
        let again = try cluster.cli(["init", "node1", "--dir", cluster.dir("node1")])
        XCTAssertEqual(again.status, 73)
        XCTAssertEqual(try String(contentsOfFile: cluster.dir("node1") + "/node.toml", encoding: .utf8), before)
        try (before + "max_taks = 3\n").write(toFile: cluster.dir("node1") + "/node.toml", atomically: true, encoding: .utf8)
        let lines = before.split(separator: "\n", omittingEmptySubsequences: false).count
        let r = try cluster.cli(["agent", "--dir", cluster.dir("node1")], timeout: 10)
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("max_taks") && r.stderr.contains("line \(lines)"), r.stderr)
    }
}

/// The same agent over IPv6 (::1): gossip, status and a task.
final class IPv6IntegrationTests: XCTestCase {
    func testTwoAgentsOnIPv6LoopbackMeetAndRunATask() throws {
        let cluster = Cluster(profile: "fast")
        defer { cluster.shutdown() }
        let port = cluster.port
        for (name, p) in [("six1", port), ("six2", port + 1000)] {
            cluster.hosts[name] = "::1"
            let r = try cluster.cli(["init", name, "--dir", cluster.dir(name), "--listen", "[::1]:\(p)", "--seed", "[::1]:\(port)",
                                     "--profile", "fast"] + (name == "six1" ? ["--role", "v6"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            cluster.names.append(name)
        }
        cluster.trust("six1", by: "six2"); cluster.trust("six2", by: "six1")
        let roleDir = cluster.dir("six1") + "/roles/v6"
        try FileManager.default.createDirectory(atPath: roleDir, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: roleDir + "/hello", contents: Data("#!/bin/sh\necho hello from $ROLEMESH_NODE\n".utf8),
                                       attributes: [.posixPermissions: 0o755]))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 10) { cluster.allAlive(["six1", "six2"]) })
        XCTAssertEqual(cluster.member("six1", seenBy: "six2")?["address"]?.string, "[::1]:\(port)")
        let r = try cluster.cli(["submit", "v6/hello", "--dir", cluster.dir("six2")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "hello from six1\n")
    }
}

/// Nodes on the default `listen = "0.0.0.0:PORT"`: each advertises the address its seed sees,
/// so members known only through relays are reachable too.
final class WildcardListenIntegrationTests: XCTestCase {
    func testNodesListeningOnAllAddressesReachEachOther() throws {
        let cluster = Cluster(profile: "fast")
        defer { cluster.shutdown() }
        let base = cluster.port
        let names = ["any1", "any2", "any3"]
        for (i, name) in names.enumerated() {
            cluster.hosts[name] = "127.0.0.1"
            let r = try cluster.cli(["init", name, "--dir", cluster.dir(name), "--listen", "0.0.0.0:\(Int(base) + i * 1000)",
                                     "--seed", "127.0.0.1:\(base)", "--profile", "fast"] + (name == "any2" ? ["--role", "wild"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            cluster.names.append(name)
        }
        for a in names { for b in names { cluster.trust(a, by: b) } }
        let roleDir = cluster.dir("any2") + "/roles/wild"
        try FileManager.default.createDirectory(atPath: roleDir, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: roleDir + "/hi", contents: Data("#!/bin/sh\necho hi from $ROLEMESH_NODE\n".utf8),
                                       attributes: [.posixPermissions: 0o755]))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 10) { cluster.allAlive(names) })
        XCTAssertEqual(cluster.member("any2", seenBy: "any3")?["address"]?.string, "127.0.0.1:\(Int(base) + 1000)")
        let r = try cluster.cli(["submit", "wild/hi", "--dir", cluster.dir("any3")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "hi from any2\n")
    }
}
