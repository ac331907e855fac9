import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// Regression tests for the hardening issue: what a local user, a restart or a stolen key could
/// do to a node before. Each names the finding it guards.
final class HardeningIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func addTask(_ node: String, _ name: String, _ script: String, role: String = "job") {
        let d = cluster.dir(node) + "/roles/\(role)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/" + name, contents: Data(script.utf8), attributes: [.posixPermissions: 0o755]))
    }

    func taskState(_ id: String, on node: String) -> String? {
        guard let r = try? cluster.cli(["tasks", "--json", "--dir", cluster.dir(node)]), r.status == 0,
              let j = JSON.parse(r.stdout) else { return nil }
        return j["tasks"]?.array?.first { $0["id"]?.string == id }?["state"]?.string
    }

    /// Finding 11: a queued task is not lost when its submitter restarts and the only node that can
    /// take it comes back. Members learned second-hand after the restart (the dead holder, from
    /// another node's full state) may look alive for a moment; a dispatch that cannot reach them
    /// returns the task to the queue instead of ending it `lost`.
    func testQueuedTaskSurvivesSubmitterRestartsAndRunsOnTheReturningBackup() throws {
        let extra: [String: [String]] = ["node1": ["--role", "job"], "node2": ["--backup", "job=1"]]
        let nodes = try cluster.create(4, extra: { extra[$0] ?? [] })
        for n in ["node1", "node2"] { addTask(n, "t", "#!/bin/sh\necho ran on $ROLEMESH_NODE\n") }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        cluster.crash("node1")
        cluster.crash("node2")
        XCTAssertTrue(waitUntil(timeout: 10) {
            self.cluster.everyone(["node3", "node4"], sees: "node1", as: "dead")
                && self.cluster.everyone(["node3", "node4"], sees: "node2", as: "dead")
        })
        for round in 1...10 {
            let sub = try cluster.cli(["submit", "--dir", cluster.dir("node3"), "job/t", "--queue", "--detach"])
            XCTAssertEqual(sub.status, 0, sub.stderr)
            let id = sub.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(taskState(id, on: "node3"), "queued")
            // Restart the submitter (graceful stop), then bring the backup back.
            cluster.signal("node3", SIGTERM)
            XCTAssertEqual(cluster.waitForExit("node3"), 0, "round \(round): \(cluster.log("node3"))")
            try cluster.startOne("node3")
            try cluster.startOne("node2")
            var state: String?
            XCTAssertTrue(waitUntil(timeout: 20) {
                state = self.taskState(id, on: "node3")
                return state == "done" || state == "lost" || state == "failed"
            }, "round \(round): the task never finished (state \(state ?? "?"))")
            XCTAssertEqual(state, "done", "round \(round): \(cluster.log("node3"))")
            cluster.crash("node2")
            XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.everyone(["node3", "node4"], sees: "node2", as: "dead") },
                          "round \(round)")
        }
    }

    /// Finding 11, without a queue: a node that cannot be reached is not a lost task either.
    /// With the only holder unreachable the submission fails as "no node can take it" (69), not 75.
    func testUnreachableHolderIsNotALostTask() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        addTask("node2", "t", "#!/bin/sh\necho hi\n")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        // Stopped, not dead yet in node1's view for a moment; its TCP port no longer answers once killed.
        cluster.crash("node2")
        let r = try cluster.cli(["submit", "--dir", cluster.dir("node1"), "job/t"])
        XCTAssertEqual(r.status, 69, r.stderr)
        XCTAssertFalse(r.stderr.contains("lost mid-run"), r.stderr)
    }

    /// Finding 9: DIR, keys/ and state/ are 0700; node.toml, keys, the journal and task output 0600.
    func testEverythingTheNodeWritesIsOwnerOnly() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        addTask("node2", "secret", "#!/bin/sh\necho the-secret-output\n")
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let r = try cluster.cli(["submit", "--dir", cluster.dir("node1"), "job/secret"])
        XCTAssertEqual(r.status, 0, r.stderr)
        func mode(_ path: String) -> mode_t? {
            var st = stat()
            return lstat(path, &st) == 0 ? st.st_mode & 0o777 : nil
        }
        for node in nodes {
            let d = cluster.dir(node)
            for folder in [d, d + "/keys", d + "/state", d + "/state/tasks"] {
                XCTAssertEqual(mode(folder), 0o700, folder)
            }
            for file in [d + "/node.toml", d + "/keys/\(node).secret", d + "/keys/\(node).pub", d + "/state/incarnation"] {
                XCTAssertEqual(mode(file), 0o600, file)
            }
        }
        // The task's output and record on the node that ran it, and the record on the submitter.
        var checked = 0
        for node in nodes {
            let tasks = cluster.dir(node) + "/state/tasks"
            for id in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
                XCTAssertEqual(mode(tasks + "/" + id), 0o700)
                for f in (try? FileManager.default.contentsOfDirectory(atPath: tasks + "/" + id)) ?? [] {
                    XCTAssertEqual(mode(tasks + "/\(id)/\(f)"), 0o600, "\(node): \(id)/\(f)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 3, "task.json on both nodes and output where it ran")
    }

    /// Finding 9: folders an older version left 0755 are tightened when the agent starts.
    func testAgentTightensFoldersLeftOpen() throws {
        try cluster.create(1)
        let d = cluster.dir("node1")
        try FileManager.default.createDirectory(atPath: d + "/state/tasks/0123456789abcdef", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/state/tasks/0123456789abcdef/output", contents: Data("old".utf8)))
        for p in [d, d + "/keys", d + "/state", d + "/state/tasks", d + "/state/tasks/0123456789abcdef"] { chmod(p, 0o755) }
        chmod(d + "/state/tasks/0123456789abcdef/output", 0o644)
        try cluster.start()
        var st = stat()
        for p in [d, d + "/keys", d + "/state", d + "/state/tasks/0123456789abcdef"] {
            XCTAssertEqual(lstat(p, &st), 0)
            XCTAssertEqual(st.st_mode & 0o777, 0o700, p)
        }
        XCTAssertEqual(lstat(d + "/state/tasks/0123456789abcdef/output", &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
    }

    /// Finding 9: the secret key is refused (78) when it is a symbolic link or not the user's own.
    func testSecretKeyThatIsALinkOrSomeoneElsesIsRefused() throws {
        try cluster.create(1)
        let keys = cluster.dir("node1") + "/keys"
        let secret = keys + "/node1.secret", moved = cluster.root.path + "/elsewhere.secret"
        XCTAssertEqual(rename(secret, moved), 0)
        XCTAssertEqual(symlink(moved, secret), 0)
        var r = try cluster.cli(["agent", "--dir", cluster.dir("node1")], timeout: 10)
        XCTAssertEqual(r.status, 78, r.stderr)
        XCTAssertTrue(r.stderr.contains("symbolic link"), r.stderr)
        unlink(secret)
        XCTAssertEqual(rename(moved, secret), 0)
        if geteuid() == 0 {
            // As root (CI): give the file to `nobody`; the agent must refuse it even though root could read it.
            XCTAssertEqual(chown(secret, 65534, 65534), 0)
            r = try cluster.cli(["agent", "--dir", cluster.dir("node1")], timeout: 10)
            XCTAssertEqual(r.status, 78, r.stderr)
            XCTAssertTrue(r.stderr.contains("owned by uid 65534"), r.stderr)
        }
    }

    /// Finding 10: a name an unauthenticated client sends is never written raw to the log
    /// (no forged log lines, no escape sequences for whoever reads the log in a terminal). Since
    /// issue 24 nothing it sends reaches the log at all: only its address and a fixed reason.
    func testUnauthenticatedNamesCannotForgeLogLines() throws {
        try cluster.create(1)
        try cluster.start()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = cluster.port.bigEndian
        XCTAssertEqual(inet_pton(AF_INET, cluster.hosts["node1"]!, &sin.sin_addr), 1)
        let rc = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(rc, 0)
        let evil = Array("x\u{1b}[31m\n2026-01-01T00:00:00.000Z info FORGED".utf8)
        let hello = Array("RMT1".utf8) + [UInt8(evil.count)] + evil + [UInt8](repeating: 1, count: 32)
        XCTAssertEqual(hello.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, hello.count)
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.log("node1").contains("refused a task connection from 127.0.0.1") },
                      cluster.log("node1"))
        let log = cluster.log("node1")
        XCTAssertFalse(log.contains("\u{1b}"), "a raw escape byte reached the log")
        XCTAssertFalse(log.contains("FORGED"), "what an unauthenticated client sent reached the log: \(log)")
    }

    /// Finding 7: a flood of datagrams that each carry a valid, fresh heartbeat of a trusted (stolen)
    /// key followed by relevant-looking accusations with bad signatures used to cost one Ed25519
    /// check per accusation on the agent's queue, long enough for the node to think it had been
    /// suspended (incarnation raised) and for healthy peers to be suspected. Now a datagram stops at
    /// its first bad signature and checks are budgeted per source IP.
    func testAJunkFloodCostsLittleAndSuspectsNobody() throws {
        let (nodes, rogue) = try startWithRogueKey()
        let victim = "node3"
        func selfIncarnation() -> Int? { cluster.member(victim, seenBy: victim)?["incarnation"]?.int }
        let incarnationBefore = selfIncarnation()
        let node2Incarnation = UInt64(cluster.member("node2", seenBy: victim)?["incarnation"]?.int ?? 1)

        let probe = UDPProbe(host: "127.0.0.77", port: cluster.port)
        let link = rogueLink(rogue)
        // A well-formed signature by the wrong key: it costs a full check to reject (bytes that are
        // not a canonical signature would be rejected by libsodium before any curve arithmetic).
        let junk = Accusation(accuser: "node1", kind: .suspect, target: "node2", incarnation: node2Incarnation)
        let junkSignature = signed(.accusation(junk), by: rogue).signature
        func cpuTicks() -> Int {
            guard let pid = cluster.pid(victim), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return 0 }
            let f = stat.split(separator: ")").last?.split(separator: " ") ?? []   // fields after the command name
            return f.count > 12 ? (Int(f[11]) ?? 0) + (Int(f[12]) ?? 0) : 0       // utime + stime
        }
        let cpuBefore = cpuTicks()
        // Sustained, not one burst (a burst only overflows the socket buffer): 100 datagrams every
        // 40 ms for 4 s, 10,000 at most.
        let t0 = Date()
        for i in 0..<10_000 {
            if i % 100 == 0 {
                if Date().timeIntervalSince(t0) > 4 { break }
                Thread.sleep(forTimeInterval: 0.04)
            }
            var entries = [signed(.heartbeat(Heartbeat(name: "rogue", incarnation: 1, seq: UInt64(i + 1),
                                                     address: WireAddress(host: "127.0.0.77", port: cluster.port)!)), by: rogue)]
            for _ in 0..<10 {
                entries.append(SignedEntry(statement: .accusation(junk), body: Wire.encodeBody(.accusation(junk)), signature: junkSignature))
            }
            probe.send(sealed(Datagram(kind: .gossip, entries: entries), for: victim, by: link), to: cluster.hosts[victim]!, port: cluster.port)
        }
        let sendTime = Date().timeIntervalSince(t0)
        // Let the agent work through its socket buffer, then look.
        Thread.sleep(forTimeInterval: 2)
        // CPU time, not wall time, so a loaded machine does not change it: the old receive path spent
        // about 4 s of CPU on this flood (one Ed25519 check per junk accusation); now about 0.3 s.
        let cpuSeconds = Double(cpuTicks() - cpuBefore) / Double(sysconf(Int32(_SC_CLK_TCK)))
        XCTAssertLessThan(cpuSeconds, 1.5, "the flood (sent in \(sendTime) s) cost the agent \(cpuSeconds) s of CPU")
        XCTAssertTrue(cluster.allAlive(nodes), "a healthy node was suspected after the flood (sent in \(sendTime) s)")
        XCTAssertEqual(selfIncarnation(), incarnationBefore, "the victim believed it had been suspended: \(cluster.log(victim))")
        for n in nodes {
            for line in cluster.log(n).split(separator: "\n") where line.contains("member-suspect") || line.contains("member-dead") {
                XCTAssertTrue(line.hasSuffix(" peer=rogue"), "\(n): \(line)")
            }
        }
        let dropped = cluster.statusJSON(victim)?["dropped"]
        XCTAssertGreaterThan(dropped?["bad_signature"]?.int ?? 0, 0)
        XCTAssertGreaterThan(dropped?["rate_limited"]?.int ?? 0, 0, "the per-source budget never took effect")
    }

    /// Starts 3 nodes that also trust a key "rogue" held by the test (a stolen laptop's key).
    func startWithRogueKey() throws -> (nodes: [String], rogue: Ed25519.KeyPair) {
        let nodes = try cluster.create(3)
        let r = try cluster.cli(["keygen", "rogue", "--dir", cluster.dir("node1")])
        XCTAssertEqual(r.status, 0, r.stderr)
        for n in nodes where n != "node1" {
            try FileManager.default.copyItem(atPath: cluster.dir("node1") + "/keys/rogue.pub", toPath: cluster.dir(n) + "/keys/rogue.pub")
        }
        let seedText = try String(contentsOfFile: cluster.dir("node1") + "/keys/rogue.secret", encoding: .utf8)
        let rogue = Ed25519.KeyPair(seed: [UInt8](Data(base64Encoded: seedText.trimmingCharacters(in: .whitespacesAndNewlines))!))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return (nodes, rogue)
    }

    func signed(_ s: Statement, by key: Ed25519.KeyPair) -> SignedEntry {
        let body = Wire.encodeBody(s)
        return SignedEntry(statement: s, body: body, signature: key.sign(Wire.signedMessage(for: s, body: body)))
    }

    /// The rogue's side of private gossip: its pair keys with every node of the cluster.
    func rogueLink(_ rogue: Ed25519.KeyPair) -> SecureGossip {
        var trusted: [String: [UInt8]] = [:]
        for n in cluster.names {
            let text = (try? String(contentsOfFile: cluster.dir(n) + "/keys/\(n).pub", encoding: .utf8)) ?? ""
            trusted[n] = [UInt8](Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? Data())
        }
        return SecureGossip(myName: "rogue", keyPair: rogue, trusted: trusted)
    }

    /// A datagram sealed as the rogue would (a key holder needs no proof to send).
    func sealed(_ d: Datagram, for node: String, by link: SecureGossip, flip: ((inout [UInt8]) -> Void)? = nil) -> [UInt8] {
        var plain = Wire.encode(d)
        flip?(&plain)
        return Envelope.seal(.gossip, plain, with: link.keys.byName[node]!, nonce: UInt64.random(in: 0...UInt64.max))
    }

    /// What the probe hears within `seconds`, answering hellos as the rogue so the node proves it and
    /// sends what it holds: the gossip plaintexts.
    func listen(_ probe: UDPProbe, as link: SecureGossip, for seconds: Double, at node: String) -> [[UInt8]] {
        var gossip: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(seconds)
        let from = WireAddress(host: cluster.hosts[node]!, port: cluster.port)!
        while Date() < deadline {
            for bytes in probe.receive(for: 0.1) {
                let (got, replies) = link.receive(bytes, from: from, now: 0)
                for r in replies { probe.send(r.bytes, to: cluster.hosts[node]!, port: cluster.port) }
                if case .gossip(let plain, _) = got { gossip.append(plain) }
            }
        }
        return gossip
    }

    /// Finding 1: one validly signed datagram from a stolen key — a `dead` claim about the receiver
    /// at incarnation 2^64−1 — used to crash the receiver (`max(own, inc) + 1` overflowed); and a
    /// `dead` claim about a newer incarnation of a healthy member was taken on one node's word.
    func testOneSignedDatagramCannotCrashANodeOrKillAHealthyOne() throws {
        let (nodes, rogue) = try startWithRogueKey()
        let victim = "node3"
        let probe = UDPProbe(host: "127.0.0.78", port: cluster.port)
        let link = rogueLink(rogue)
        let node2Inc = UInt64(cluster.member("node2", seenBy: victim)?["incarnation"]?.int ?? 1)
        let me = WireAddress(host: "127.0.0.78", port: cluster.port)!
        let claims: [Accusation] = [
            Accusation(accuser: "rogue", kind: .dead, target: victim, incarnation: .max),
            Accusation(accuser: "rogue", kind: .dead, target: victim, incarnation: 1 << 50),
            Accusation(accuser: "rogue", kind: .dead, target: "node2", incarnation: node2Inc + 1),
            Accusation(accuser: "rogue", kind: .dead, target: "node2", incarnation: node2Inc),
        ]
        for (i, claim) in claims.enumerated() {
            let hb = signed(.heartbeat(Heartbeat(name: "rogue", incarnation: 1, seq: UInt64(i + 1), address: me)), by: rogue)
            probe.send(sealed(Datagram(kind: .gossip, entries: [hb, signed(.accusation(claim), by: rogue)]), for: victim, by: link),
                       to: cluster.hosts[victim]!, port: cluster.port)
        }
        // The victim keeps answering, nobody but the rogue is ever declared dead, for a while.
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            XCTAssertNotNil(cluster.statusJSON(victim), "the victim stopped answering: \(cluster.log(victim))")
            for n in nodes { for m in nodes { XCTAssertNotEqual(cluster.states(seenBy: n)[m], "dead", "\(n) sees \(m) dead") } }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertTrue(cluster.processes[victim]?.isRunning == true, cluster.log(victim))
    }

    /// Finding 8: a stranger cannot turn an agent into an amplifier. Flipping the kind byte of a
    /// gossip datagram to "sync request" gets nothing back (the kind is bound to a signed flag), and
    /// a replayed sync request is not answered again; a genuine one is (so the probe can hear replies).
    func testNoFullStateForAFlippedKindOrAReplayedRequest() throws {
        let (_, rogue) = try startWithRogueKey()
        let victim = cluster.hosts["node3"]!
        let probe = UDPProbe(host: "127.0.0.79", port: cluster.port)
        let me = WireAddress(host: "127.0.0.79", port: cluster.port)!
        let link = rogueLink(rogue)
        // Gossip (no sync flag) with the kind byte flipped, by a key holder: malformed, unanswered.
        let flipped = sealed(Datagram(kind: .gossip, entries: [signed(.heartbeat(Heartbeat(name: "rogue", incarnation: 1, seq: 1, address: me)), by: rogue)]),
                             for: "node3", by: link) { $0[1] = DatagramKind.syncRequest.rawValue }
        probe.send(flipped, to: victim, port: cluster.port)
        XCTAssertTrue(listen(probe, as: link, for: 1.0, at: "node3").isEmpty, "a flipped kind was answered")
        // A genuine, signed sync request (fresh version, flag set) is answered with full state, once
        // the probe has answered the node's hello (proof of key before content). Up to three, each a
        // fresh version: in the whole suite, as the simulations and the soak start beside it, the one
        // request went unanswered in 2 runs of 2 here (never alone, nor beside the simulations alone);
        // a request is answered once, so a lost round trip is only made up by another request.
        var request: [UInt8] = [], replies: [[UInt8]] = []
        for seq in UInt64(2)...4 where replies.isEmpty {
            request = sealed(Datagram(kind: .syncRequest, entries: [signed(.heartbeat(Heartbeat(name: "rogue", incarnation: 1, seq: seq, address: me, syncRequest: true)), by: rogue)]),
                             for: "node3", by: link)
            probe.send(request, to: victim, port: cluster.port)
            replies = listen(probe, as: link, for: 4, at: "node3")
        }
        XCTAssertFalse(replies.isEmpty, "three genuine sync requests went unanswered")
        // The same bytes again, from another port of the same host, after the reply limit has passed: nothing.
        _ = listen(probe, as: link, for: 0.5, at: "node3")
        let other = UDPProbe(host: "127.0.0.79", port: cluster.port &+ 1)
        other.send(request, to: victim, port: cluster.port)
        XCTAssertTrue(other.receive(for: 1.5).isEmpty, "a replayed sync request was answered")
    }
}
