import Foundation
import XCTest
import RoleMeshAgent
import Glibc

/// `rolemesh doctor` on real agents: a healthy mesh passes; a node set up wrong, as a first-time
/// user would, gets each problem named with its fix.
final class DoctorIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster() }
    override func tearDown() { cluster.shutdown() }

    func doctor(_ node: String, json: Bool = false) throws -> Cluster.Result {
        try cluster.cli(["doctor", "--dir", cluster.dir(node)] + (json ? ["--json"] : []), timeout: 30)
    }

    /// The check called `name` in `doctor --json` output.
    func check(_ name: String, in r: Cluster.Result) -> JSON? {
        JSON.parse(r.stdout)?["checks"]?.array?.first { $0["name"]?.string == name }
    }

    func testAHealthyTwoNodeMeshPasses() throws {
        try cluster.create(2)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(["node1", "node2"]) })
        for node in ["node1", "node2"] {
            let r = try doctor(node)
            XCTAssertEqual(r.status, 0, "doctor on \(node):\n\(r.stdout)\(r.stderr)")
            let lines = r.stdout.split(separator: "\n")
            XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("ok ") }, r.stdout)
            for name in ["config", "secret key", "listen", "agent", "clock"] {
                XCTAssertTrue(lines.contains { $0.dropFirst(6).hasPrefix(name) }, "no \(name) line:\n\(r.stdout)")
            }
        }
        // node2's seed is node1, and node1 is trusted here and trusts node2: both ways shown.
        let j = try doctor("node2", json: true)
        XCTAssertEqual(j.status, 0)
        XCTAssertEqual(JSON.parse(j.stdout)?["ok"]?.bool, true, j.stdout)
        let seed = check("seed \(cluster.address("node1"))", in: j)
        XCTAssertEqual(seed?["ok"]?.bool, true, j.stdout)
        XCTAssertTrue(seed?["detail"]?.string?.contains("answers as node1, which trusts this node") == true, j.stdout)
        XCTAssertEqual(check("node node1", in: j)?["ok"]?.bool, true, j.stdout)
        XCTAssertTrue(check("listen", in: j)?["detail"]?.string?.contains("held by this node's agent") == true, j.stdout)
        for c in JSON.parse(j.stdout)?["checks"]?.array ?? [] {
            XCTAssertNotNil(c["detail"]?.string)
            XCTAssertTrue(c["fix"]?.isNull == true, "a passing check has fix null: \(c)")
        }
    }

    func testAMisconfiguredNodeGetsEachProblemAndItsFix() throws {
        // node2: its secret is world-readable, its second seed answers nothing, and its seed
        // node1 runs without node2's key.
        let silent = "127.0.0.254:\(cluster.port)"
        try cluster.create(2, extra: { $0 == "node2" ? ["--seed", silent] : [] }, trustAll: false)
        cluster.trust("node1", by: "node2")
        try cluster.start(["node1"])
        let secret = cluster.dir("node2") + "/keys/node2.secret"
        XCTAssertEqual(chmod(secret, 0o644), 0)

        let r = try doctor("node2")
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        func line(_ name: String) -> String { r.stdout.split(separator: "\n").first { $0.dropFirst(6).hasPrefix(name) }.map(String.init) ?? "" }
        XCTAssertTrue(line("secret key").hasPrefix("FAIL") && line("secret key").hasSuffix("fix: chmod 600 \(secret)"), r.stdout)
        XCTAssertTrue(line("seed \(silent)").hasPrefix("FAIL") && line("seed \(silent)").contains("nothing answers"), r.stdout)
        XCTAssertTrue(line("seed \(silent)").contains("fix: start the agent there"), r.stdout)
        let seed = line("seed \(cluster.address("node1"))")
        // The handshake names no one to a node it does not accept (issue 24): doctor says what it can.
        XCTAssertTrue(seed.hasPrefix("FAIL") && seed.contains("no node trusted here answers at \(cluster.address("node1")) and accepts this node"), r.stdout)
        XCTAssertTrue(seed.contains("fix: copy \(cluster.dir("node2"))/keys/node2.pub into the keys/ folder"), r.stdout)
        XCTAssertTrue(line("agent").hasPrefix("FAIL") && line("agent").contains("fix: rolemesh agent --dir"), r.stdout)
        XCTAssertTrue(line("config").hasPrefix("ok"), r.stdout)

        let j = try doctor("node2", json: true)
        XCTAssertEqual(j.status, 1)
        XCTAssertEqual(JSON.parse(j.stdout)?["ok"]?.bool, false, j.stdout)
        XCTAssertEqual(check("secret key", in: j)?["fix"]?.string, "chmod 600 \(secret)", j.stdout)
        XCTAssertEqual(check("seed \(silent)", in: j)?["ok"]?.bool, false, j.stdout)

        // Each fix, applied, clears its line: the key mode, then node2's key on node1.
        XCTAssertEqual(chmod(secret, 0o600), 0)
        cluster.trust("node2", by: "node1")
        var after = try doctor("node2", json: true)
        XCTAssertEqual(check("secret key", in: after)?["ok"]?.bool, true, after.stdout)
        // node1 re-reads keys/ every 2 s.
        XCTAssertTrue(waitUntil(timeout: 10, interval: 0.5) {
            after = (try? self.doctor("node2", json: true)) ?? after
            return self.check("seed \(self.cluster.address("node1"))", in: after)?["ok"]?.bool == true
        }, after.stdout)
    }

    func testATrustedNodeMissingFromTheViewAndAStoppedAgent() throws {
        try cluster.create(2)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(["node1", "node2"]) })
        // A device trusted here that never ran.
        XCTAssertEqual(try cluster.cli(["keygen", "ghost", "--dir", cluster.dir("node1") + "/ghost"]).status, 0)
        try FileManager.default.copyItem(atPath: cluster.dir("node1") + "/ghost/keys/ghost.pub", toPath: cluster.dir("node1") + "/keys/ghost.pub")
        let r = try doctor("node1", json: true)
        XCTAssertEqual(r.status, 1)
        let ghost = check("node ghost", in: r)
        XCTAssertEqual(ghost?["ok"]?.bool, false, r.stdout)
        XCTAssertTrue(ghost?["detail"]?.string?.contains("not in the agent's view") == true, r.stdout)

        // A stopped agent (SIGSTOP) makes doctor fail within seconds, never hang.
        cluster.signal("node2", SIGSTOP)
        defer { cluster.signal("node2", SIGCONT) }
        let t0 = Date()
        let stopped = try doctor("node2")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 15)
        XCTAssertEqual(stopped.status, 1)
        XCTAssertTrue(stopped.stdout.contains("did not answer within 3 s"), stopped.stdout)
    }
}
