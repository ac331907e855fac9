import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTransport
import RoleMeshTaskChannel

/// New devices and revocation with real agents (docs/contract.md, "New devices, revocation, and
/// travelling"): invite + join with no file copied by hand, codes that no longer work, and
/// revocations that spread and win over introductions.
final class DeviceIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func invite(_ name: String, on node: String, expires: String = "1h") throws -> String {
        let r = try cluster.cli(["invite", name, "--expires", expires, "--dir", cluster.dir(node)])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `rolemesh join CODE` for a new node directory `dirName` listening on the next free host.
    @discardableResult
    func join(_ code: String, as dirName: String) throws -> Cluster.Result {
        if cluster.hosts[dirName] == nil { cluster.hosts[dirName] = "127.0.0.\(40 + cluster.hosts.count)" }
        return try cluster.cli(["join", code, "--dir", cluster.dir(dirName), "--listen", cluster.address(dirName), "--profile", "fast"])
    }

    func fileText(_ node: String, _ path: String) -> String? {
        try? String(contentsOfFile: cluster.dir(node) + "/" + path, encoding: .utf8)
    }

    func testInviteAndJoinAdmitADeviceThatEveryNodeListsWithinTenSeconds() throws {
        let nodes = try cluster.create(3, introducers: ["node1"])
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })

        let code = try invite("laptop", on: "node1")
        XCTAssertTrue(code.hasPrefix("rm1-"), code)
        XCTAssertFalse(code.contains(" "))
        let r = try join(code, as: "laptop")
        XCTAssertEqual(r.status, 0, r.stderr + cluster.log("node1"))
        XCTAssertTrue(r.stdout.contains("rolemesh agent"), "join says how to start the agent: \(r.stdout)")
        // The new device got every key node1 trusts, and node1 as a seed.
        for n in nodes { XCTAssertNotNil(fileText("laptop", "keys/\(n).pub"), "laptop has no keys/\(n).pub") }
        // The introduction is pushed to every up member at once (the 10 s exchange only catches up
        // nodes that were away): well within the contract's 10 s.
        XCTAssertTrue(waitUntil(timeout: 3) { nodes.allSatisfy { self.fileText($0, "keys/laptop.pub") != nil } },
                      "the introduction was not pushed: \(nodes.map { self.fileText($0, "keys/laptop.pub") != nil })")
        XCTAssertTrue(fileText("laptop", "node.toml")?.contains(cluster.address("node1")) ?? false)
        cluster.names.append("laptop")
        try cluster.startOne("laptop")
        let t0 = Date()
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(nodes + ["laptop"]) },
                      "not every node lists laptop within 10 s: \(nodes.map { self.cluster.states(seenBy: $0) }) \(cluster.log("node2"))")
        print("laptop listed by every node \(String(format: "%.1f", Date().timeIntervalSince(t0))) s after its agent started")
        for n in nodes {
            let text = fileText(n, "keys/laptop.pub") ?? ""
            XCTAssertTrue(text.hasPrefix("# introduced by node1 at 20"), "\(n): \(text)")
        }

        // The same code again: used (77, one sentence, nothing left behind).
        let again = try join(code, as: "thief")
        XCTAssertEqual(again.status, 77, again.stderr)
        XCTAssertTrue(again.stderr.contains("rolemesh invite laptop"), again.stderr)
        XCTAssertNil(fileText("thief", "node.toml"), "a refused join leaves no node behind")

        // A code with the right shape but another secret: refused by the inviter.
        var forged = try InviteCode.parse(try invite("tablet", on: "node2"))
        forged.secret = Array(repeating: 7, count: InviteCode.secretSize)
        let wrong = try join(forged.text, as: "tablet")
        XCTAssertEqual(wrong.status, 77, wrong.stderr)
        XCTAssertNil(fileText("node1", "keys/tablet.pub"))

        // An inviter that does not answer: 69.
        var away = try InviteCode.parse(code)
        away.addresses = ["127.0.0.1:9"]
        away.name = "phone"
        let unreachable = try join(away.text, as: "phone")
        XCTAssertEqual(unreachable.status, 69, unreachable.stderr)
        XCTAssertNil(fileText("phone", "node.toml"))

        // Over an existing node: 73.
        let existing = try cluster.cli(["join", try invite("other", on: "node1"), "--dir", cluster.dir("node3")])
        XCTAssertEqual(existing.status, 73, existing.stderr)
    }

    func testAFirstDeviceListeningOnAllAddressesInvitesWithItsOwnAddresses() throws {
        cluster.hosts["first"] = "0.0.0.0"
        let r = try cluster.cli(["init", "first", "--dir", cluster.dir("first"), "--listen", cluster.address("first"), "--profile", "fast"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try cluster.startOne("first")
        let code = try InviteCode.parse(try invite("second", on: "first"))
        XCTAssertFalse(code.addresses.isEmpty)
        for a in code.addresses {
            XCTAssertTrue(a.hasSuffix(":\(cluster.port)") && !a.hasPrefix("0.0.0.0"), a)
        }
    }

    func testAnExpiredOrGarbledCodeIsRefusedWithASentence() throws {
        try cluster.create(1)
        try cluster.start()
        let code = try invite("late", on: "node1", expires: "1s")
        let expiry = Date().addingTimeInterval(1.5)
        XCTAssertTrue(waitUntil(timeout: 5) { Date() > expiry })
        let r = try join(code, as: "late")
        XCTAssertEqual(r.status, 77, r.stderr)
        XCTAssertTrue(r.stderr.contains("expired"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        for garbled in ["", "hello", "rm1-", "rm1-abc", String(code.dropLast(9)), code + "a", "rm1-!!!!"] {
            let g = try join(garbled, as: "g")
            XCTAssertEqual(g.status, 77, "\(garbled): \(g.stderr)")
            XCTAssertTrue(g.stderr.hasPrefix("rolemesh: this invite code cannot be used"), g.stderr)
            XCTAssertNil(fileText("g", "node.toml"))
        }
    }

    func base64File(_ path: String) throws -> [UInt8] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let word = text.split(whereSeparator: \.isWhitespace).last.map(String.init) ?? ""
        return [UInt8](Data(base64Encoded: word)!)
    }

    /// Hands `statements` to `server` in a slot-record exchange, as `node` (with its own key).
    func push(_ statements: [TrustStatement], as node: String, to server: String) throws {
        let key = Ed25519.KeyPair(seed: try base64File(cluster.dir(node) + "/keys/\(node).secret"))
        let pub = try base64File(cluster.dir(server) + "/keys/\(server).pub")
        let address = WireAddress(host: cluster.hosts[server]!, port: cluster.port)!
        let ch = try blocking { try await SecureChannel.connect(to: address, expected: server, me: node, keyPair: key,
                                                                trusted: [server: pub], from: nil) }
        defer { ch.close() }
        try ch.sendBlocking(Frame(.request, encoding: TaskRequest.slots([], schedules: [], trust: statements)))
        XCTAssertEqual(try ch.receiveBlocking()?.type, .slots)
    }

    func testRevokeSpreadsEndsTheRevokedNodesTaskAndIsNotUndoneByALaterIntroduction() throws {
        let nodes = try cluster.create(4, extra: { $0 == "node1" ? ["--role", "job"] : [] }, introducers: ["*"])
        let pidFile = cluster.root.path + "/long.pid"
        let d = cluster.dir("node1") + "/roles/job"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/long", contents: Data("#!/bin/sh\necho $$ > \(pidFile)\nexec sleep 60\n".utf8),
                                       attributes: [.posixPermissions: 0o755]))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        // node4 runs a task on node1, then node2 revokes node4.
        let sub = Process()
        sub.executableURL = URL(fileURLWithPath: Cluster.binary)
        sub.arguments = ["submit", "--dir", cluster.dir("node4"), "job/long", "--to", "node1"]
        sub.standardInput = FileHandle.nullDevice
        sub.standardOutput = FileHandle.nullDevice
        sub.standardError = FileHandle.nullDevice
        try sub.run()
        defer { if sub.isRunning { kill(sub.processIdentifier, SIGKILL); sub.waitUntilExit() } }
        var taskPID: Int32 = 0
        XCTAssertTrue(waitUntil(timeout: 15) {
            taskPID = Int32((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            return taskPID > 0
        }, cluster.log("node1"))
        XCTAssertEqual(kill(taskPID, 0), 0)
        let node4Key = try base64File(cluster.dir("node4") + "/keys/node4.pub")

        let r = try cluster.cli(["revoke", "node4", "--dir", cluster.dir("node2")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertNil(fileText("node2", "keys/node4.pub"), r.stdout + cluster.log("node2"))
        XCTAssertNotNil(fileText("node2", "keys/revoked/node4.pub"))
        let t0 = Date()
        XCTAssertTrue(waitUntil(timeout: 3) {
            ["node1", "node3"].allSatisfy { self.fileText($0, "keys/node4.pub") == nil && self.fileText($0, "keys/revoked/node4.pub") != nil }
        }, "the revocation was not pushed to every node at once (well within 10 s): \(cluster.log("node1"))")
        XCTAssertTrue(waitUntil(timeout: 10 - min(9, Date().timeIntervalSince(t0))) { kill(taskPID, 0) != 0 },
                      "the revoked node's task still runs: \(cluster.log("node1"))")
        XCTAssertTrue(waitUntil(timeout: 10) { !sub.isRunning })
        XCTAssertEqual(sub.terminationStatus, 77)

        // A later introduction of the revoked key, signed by a trusted introducer (node1), is refused
        // by node3; the same introduction of a fresh key is accepted (so the refusal is the rule's).
        let node1Key = Ed25519.KeyPair(seed: try base64File(cluster.dir("node1") + "/keys/node1.secret"))
        let now = Int64(Date().timeIntervalSince1970 * 1000) + 60_000
        let reintroduce = TrustStatement.make(.introduce, by: "node1", name: "node4", key: node4Key, time: now, sign: node1Key.sign)
        let fresh = Ed25519.KeyPair.generate()
        let introduce = TrustStatement.make(.introduce, by: "node1", name: "tablet", key: fresh.publicKey, time: now, sign: node1Key.sign)
        try push([reintroduce, introduce], as: "node1", to: "node3")
        XCTAssertTrue(waitUntil(timeout: 10) { self.fileText("node3", "keys/tablet.pub") != nil }, cluster.log("node3"))
        XCTAssertNil(fileText("node3", "keys/node4.pub"), "a revoked key was re-admitted by an introduction")
        // The revoked node itself can no longer revoke anyone: its statements are not signed by a trusted key.
        let node4Pair = Ed25519.KeyPair(seed: try base64File(cluster.dir("node4") + "/keys/node4.secret"))
        let node3Key = try base64File(cluster.dir("node3") + "/keys/node3.pub")
        let sneaky = TrustStatement.make(.revoke, by: "node4", name: "node3", key: node3Key, time: 0, sign: node4Pair.sign)
        let marker = TrustStatement.make(.introduce, by: "node1", name: "phone", key: Ed25519.KeyPair.generate().publicKey,
                                         time: now, sign: node1Key.sign)
        try push([sneaky, marker], as: "node1", to: "node2")
        XCTAssertTrue(waitUntil(timeout: 10) { self.fileText("node2", "keys/phone.pub") != nil }, cluster.log("node2"))
        XCTAssertFalse(waitUntil(timeout: 2) { self.fileText("node2", "keys/node3.pub") == nil }, "a revoked node revoked another")
        XCTAssertNil(fileText("node2", "keys/revoked/node3.pub"))
    }

    /// A stand-in agent on `dir`'s control socket that answers one request the way the agent answers
    /// a write: `{"accepted":true}` at once, then, a moment later, the real answer (`final`).
    func fakeAgent(in dir: String, final: String) throws -> Thread {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(SocketAddress.withUnix(path: dir + "/agent.sock") { bind(fd, $0, $1) }, 0)
        XCTAssertEqual(listen(fd, 1), 0)
        let t = Thread {
            defer { close(fd) }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { return }
            defer { close(c) }
            var byte: UInt8 = 0
            while read(c, &byte, 1) == 1 && byte != UInt8(ascii: "\n") {}
            for (i, line) in [#"{"accepted":true}"#, final].enumerated() {
                if i > 0 { usleep(300_000) }    // the disk write the agent waits for
                let bytes = Array((line + "\n").utf8)
                _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
        t.start()
        return t
    }

    /// Every command whose answer waits for the agent's disk reports that answer, not the receipt
    /// before it: `rolemesh revoke` once said a key had moved while it had not yet (and so would
    /// have, had the move then failed).
    func testWriteCommandsReportTheAgentsAnswerNotItsReceipt() throws {
        let commands = [["revoke", "node4"], ["roles", "add", "job"], ["backup", "add", "job", "--priority", "2"],
                        ["signal", "set", "load=0.5"], ["signal", "clear"], ["drain"], ["undrain"], ["invite", "laptop"]]
        for (i, args) in commands.enumerated() {
            let dir = cluster.root.path + "/fake\(i)"
            let agent = try fakeAgent(in: dir, final: #"{"error":"keys/node4.pub could not be moved","code":75}"#)
            let r = try cluster.cli(args + ["--dir", dir], timeout: 20)
            XCTAssertEqual(r.status, 75, "\(args): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("keys/node4.pub could not be moved"), "\(args): \(r.stderr)")
            XCTAssertTrue(waitUntil(timeout: 5) { agent.isFinished })
        }
    }

    /// When the key cannot be moved (here keys/revoked is a file, not a folder), `revoke` says so
    /// and fails, rather than saying it moved — and says that the signed revocation spreads all the
    /// same, which it does (node3 applies it).
    func testARevokeWhoseKeyCannotMoveFailsWithASentence() throws {
        let nodes = try cluster.create(3, introducers: ["node1"])
        XCTAssertTrue(FileManager.default.createFile(atPath: cluster.dir("node1") + "/keys/revoked", contents: Data()))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let r = try cluster.cli(["revoke", "node2", "--dir", cluster.dir("node1")])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("rolemesh: cannot move"), r.stderr)
        XCTAssertTrue(r.stderr.contains("node2 stays trusted here") && r.stderr.contains("spreads to the mesh"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertNotNil(fileText("node1", "keys/node2.pub"))
        XCTAssertTrue(waitUntil(timeout: 10) { self.fileText("node3", "keys/revoked/node2.pub") != nil }, cluster.log("node3"))
    }

    func testARevocationMadeWhileTheAgentIsStoppedSpreadsOnceItRuns() throws {
        let nodes = try cluster.create(3, introducers: ["node3"])
        try cluster.start(["node1", "node2"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
        let r = try cluster.cli(["revoke", "node2", "--dir", cluster.dir("node3")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("once this node's agent runs"), r.stdout)
        XCTAssertNotNil(fileText("node3", "keys/revoked/node2.pub"))
        XCTAssertNotNil(fileText("node1", "keys/node2.pub"), "nothing spreads before node3's agent runs")
        try cluster.startOne("node3")
        XCTAssertTrue(waitUntil(timeout: 10) { self.fileText("node1", "keys/revoked/node2.pub") != nil }, cluster.log("node1"))
        XCTAssertNil(fileText("node1", "keys/node2.pub"))
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.states(seenBy: "node1")["node3"] == "alive" })
        _ = nodes
    }
}
