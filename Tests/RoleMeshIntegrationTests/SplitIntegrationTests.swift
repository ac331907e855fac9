import Foundation
import XCTest
import RoleMeshControl
import Glibc

/// Network splits with real agents (issue 22). The agents run inside a network namespace of the
/// test's own, whose loopback carries them all; a split is `iptables` rules there dropping every
/// datagram and connection between the sides, so nothing but the namespace is touched. Every side
/// must list every member of the other side dead within the `fast` profile's detection time plus
/// 3 s (protocol.md 7.1), its roles fail over there, and views agree again after the heal; two
/// members that cannot reach each other while both reach the rest stay calm.
final class SplitIntegrationTests: XCTestCase {
    let ip = "/usr/sbin/ip", iptables = "/usr/sbin/iptables"
    var ns = ""
    var clusters: [Cluster] = []
    /// `fast`: suspect after 400 ms, suspicion 200 ms; a split may take 3 s more (protocol.md 7.1).
    static let bound = 0.6 + 3.0

    override func setUpWithError() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: ip),
              FileManager.default.isExecutableFile(atPath: iptables) else { throw XCTSkip("needs root, ip and iptables") }
        ns = "rmsplit\(getpid() % 100_000)"
        _ = try? Cluster.run(ip, ["netns", "del", ns], timeout: 10)
        try sh([ip, "netns", "add", ns])
        try sh([ip, "netns", "exec", ns, ip, "link", "set", "lo", "up"])
    }

    override func tearDown() {
        for c in clusters { c.shutdown() }
        clusters = []
        if !ns.isEmpty { _ = try? Cluster.run(ip, ["netns", "del", ns], timeout: 10) }
    }

    func sh(_ args: [String]) throws {
        let r = try Cluster.run(args[0], Array(args.dropFirst()), timeout: 20)
        guard r.status == 0 else { throw XCTSkip("\(args.joined(separator: " ")) failed: \(r.stderr)") }
    }

    /// A mesh of `count` agents in the namespace, on hosts from `firstHost`.
    func mesh(_ count: Int, prefix: String, firstHost: Int, extra: (String) -> [String] = { _ in [] }) throws -> Cluster {
        let c = Cluster(profile: "fast")
        clusters.append(c)
        try c.create(count, prefix: prefix, firstHost: firstHost, extra: extra, introducers: ["*"])
        for n in c.names { try c.startOne(n, wrapper: [ip, "netns", "exec", ns]) }
        XCTAssertTrue(waitUntil(timeout: 20, interval: 0.2) { c.allAlive(c.names) }, "\(prefix) mesh did not form")
        return c
    }

    /// Drops everything between the groups, both ways (UDP gossip and TCP task channels alike).
    func cut(_ c: Cluster, _ groups: [[String]]) throws {
        // One command per pair of sides (iptables expands the address lists), so a cut takes
        // effect in a few milliseconds rather than rule by rule.
        for (i, g) in groups.enumerated() {
            for (j, h) in groups.enumerated() where i != j {
                try sh([ip, "netns", "exec", ns, iptables, "-I", "INPUT", "-s", g.map { c.hosts[$0]! }.joined(separator: ","),
                        "-d", h.map { c.hosts[$0]! }.joined(separator: ","), "-j", "DROP"])
            }
        }
    }

    func healAll() throws { try sh([ip, "netns", "exec", ns, iptables, "-F", "INPUT"]) }

    /// When `observer` logged `event` about `peer` after `since` (the agent's log has ms times).
    func logged(_ c: Cluster, _ observer: String, _ event: String, about peer: String, after since: Date) -> Date? {
        for line in c.fullLog(observer).split(separator: "\n") where line.contains(" \(event) ") && line.contains("peer=\(peer)") {
            guard let t = Self.parseTime(String(line.prefix { $0 != " " })), t >= since else { continue }
            return t
        }
        return nil
    }

    static func parseTime(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }

    /// Splits `c` into `groups` and waits until every side lists the other dead; returns the
    /// seconds from the cut to the last side that saw it (from the agents' own logs).
    func splitAndMeasure(_ c: Cluster, _ groups: [[String]], file: StaticString = #filePath, line: UInt = #line) throws -> Double? {
        let start = Date()
        try cut(c, groups)
        return measure(c, groups, since: start, file: file, line: line)
    }

    /// After a cut at `start`: waits until every side lists the other dead and checks the bound.
    func measure(_ c: Cluster, _ groups: [[String]], since start: Date, file: StaticString = #filePath, line: UInt = #line) -> Double? {
        var pairs: [(String, String)] = []
        for (i, g) in groups.enumerated() { for (j, h) in groups.enumerated() where i != j { for o in g { for x in h { pairs.append((o, x)) } } } }
        var last = start
        let seen = waitUntil(timeout: max(1, Self.bound + 6 - Date().timeIntervalSince(start)), interval: 0.2) {
            last = start
            for (o, x) in pairs {
                guard let t = self.logged(c, o, "member-dead", about: x, after: start) else { return false }
                last = max(last, t)
            }
            return true
        }
        let shape = groups.map { $0.joined(separator: " ") }.joined(separator: " | ")
        guard seen else {
            XCTFail("split \(shape): not every side listed the other dead within \(Self.bound + 6) s", file: file, line: line)
            return nil
        }
        // What the logs said is what status says.
        for (o, x) in pairs { XCTAssertEqual(c.states(seenBy: o)[x], "dead", "\(o) on \(x) after split \(shape)", file: file, line: line) }
        let took = last.timeIntervalSince(start)
        XCTAssertLessThanOrEqual(took, Self.bound, "split \(shape) took \(took) s", file: file, line: line)
        return took
    }

    func healAndConverge(_ cs: [Cluster], file: StaticString = #filePath, line: UInt = #line) throws {
        try healAll()
        for c in cs {
            XCTAssertTrue(waitUntil(timeout: 20, interval: 0.3) { c.allAlive(c.names) },
                          "views did not agree after the heal: \(c.names.map { "\($0): \(c.states(seenBy: $0))" })", file: file, line: line)
        }
    }

    /// Issue 22's own case: a + b cut off from c, d, e (an access point dying). a holds the role,
    /// d backs it up: c, d and e must list a and b dead and route to d; a and b keep the role.
    func testTheFiveNodeSplitIsSeenOnBothSidesAndTheRoleFailsOver() throws {
        let c = try mesh(5, prefix: "n", firstHost: 20) { name in
            name == "n1" ? ["--role", "db"] : name == "n4" ? ["--backup", "db=1"] : []
        }
        let (a, b, cc, d, e) = ("n1", "n2", "n3", "n4", "n5")
        XCTAssertEqual(c.statusJSON(cc)?["roles"]?["db"]?["route"]?.string, a)
        let took = try splitAndMeasure(c, [[a, b], [cc, d, e]])
        print("split a+b | c d e seen on both sides after \(took.map { String(format: "%.2f", $0) } ?? "-") s")
        for o in [cc, d, e] { XCTAssertEqual(c.statusJSON(o)?["roles"]?["db"]?["route"]?.string, d, "the backup takes the role on its side") }
        for o in [a, b] { XCTAssertEqual(c.statusJSON(o)?["roles"]?["db"]?["route"]?.string, a) }
        try healAndConverge([c])
        XCTAssertTrue(waitUntil(timeout: 5) { [a, b, cc, d, e].allSatisfy { c.statusJSON($0)?["roles"]?["db"]?["route"]?.string == a } },
                      "after the heal the role goes back to its holder everywhere")
    }

    /// Every two-way shape of a split of 2 to 8 members, and a three-way split where there are
    /// enough, on one mesh per size (each with its own names, so its own rings), side by side.
    func testEverySplitShapeUpToEightIsSeenOnBothSidesWithinTheBound() throws {
        var meshes: [(Int, Cluster)] = []
        let prefixes = ["ab", "pi", "desk", "m", "lap", "srv", "nas"]
        for n in 2...8 { meshes.append((n, try mesh(n, prefix: prefixes[n - 2], firstHost: 40 + 10 * n))) }
        var rng = SystemRandomNumberGenerator()
        var times: [Double] = []
        var round = 0
        while true {
            // Round r: the side sizes (r + 1) | (n − r − 1); after them, a three-way split. Every mesh
            // with a shape left is cut at once, then each is measured from its own cut.
            var cuts: [(Cluster, [[String]], Date)] = []
            for (n, c) in meshes {
                let shapes = (1...(n / 2)).map { [$0, n - $0] } + (n >= 3 ? [[1, (n - 1) / 2, n - 1 - (n - 1) / 2]] : [])
                guard round < shapes.count else { continue }
                let members = c.names.shuffled(using: &rng)
                var groups: [[String]] = []
                var at = 0
                for size in shapes[round] { groups.append(Array(members[at..<(at + size)])); at += size }
                let start = Date()
                try cut(c, groups)
                cuts.append((c, groups, start))
            }
            guard !cuts.isEmpty else { break }
            for (c, groups, start) in cuts { if let t = measure(c, groups, since: start) { times.append(t) } }
            try healAndConverge(cuts.map(\.0))
            round += 1
        }
        times.sort()
        print("splits of every shape for 2...8 members: \(times.count) seen on every side; median \(String(format: "%.2f", times[times.count / 2])) s, max \(String(format: "%.2f", times.last ?? 0)) s (bound \(Self.bound) s)")
    }

    /// Two members that cannot reach each other while both reach the rest (a laptop away reaches
    /// the home server, not the Pi): once settled (30 s at most, with at most one suspicion), no
    /// suspicion and no incarnation rise for `ROLEMESH_CALM_SECONDS` (20 here; 600 recorded in
    /// docs/benchmarks.md), both alive everywhere, each reached `via` a third member.
    func testAPairThatCannotReachEachOtherStaysCalm() throws {
        let calm = Double(ProcessInfo.processInfo.environment["ROLEMESH_CALM_SECONDS"] ?? "") ?? 20
        let c = try mesh(5, prefix: "n", firstHost: 140)
        let (a, b) = ("n1", "n2")
        let start = Date()
        try cut(c, [[a], [b]])
        let settled = waitUntil(timeout: 30, interval: 0.5) {
            (c.member(b, seenBy: a)?["reach"]?.string ?? "direct") != "direct" && (c.member(a, seenBy: b)?["reach"]?.string ?? "direct") != "direct"
        }
        XCTAssertTrue(settled, "each of the pair lists the other reached through a third member within 30 s")
        let settleSuspicions = c.names.map { o in [a, b].map { x in c.logLines(o, "member-suspect", about: x, after: start) }.reduce(0, +) }.reduce(0, +)
        XCTAssertLessThanOrEqual(settleSuspicions, 2, "settling took at most one suspicion each way")
        let mark = Date()
        let incarnations = Dictionary(uniqueKeysWithValues: [a, b].map { ($0, c.member($0, seenBy: "n3")?["incarnation"]?.int) })
        Thread.sleep(forTimeInterval: calm)
        // For comparison: suspicions of the three members that reach everyone (a loaded machine's
        // pauses show there as well; a fault of the pair's handling would not).
        let others = c.names.filter { $0 != a && $0 != b }
        let control = c.names.map { o in others.filter { $0 != o }.map { x in c.logLines(o, "member-suspect", about: x, after: mark) }.reduce(0, +) }.reduce(0, +)
        print("calm window: \(control) suspicion(s) of the three members that reach everyone")
        for o in c.names {
            for x in [a, b] where x != o {
                XCTAssertEqual(c.logLines(o, "member-suspect", about: x, after: mark), 0, "\(o) suspected \(x) in the calm window")
                XCTAssertEqual(c.states(seenBy: o)[x], "alive", "\(o) lists \(x)")
            }
        }
        for x in [a, b] { XCTAssertEqual(c.member(x, seenBy: "n3")?["incarnation"]?.int, incarnations[x]!, "\(x)'s incarnation rose") }
        XCTAssertEqual(c.member(b, seenBy: a)?["state"]?.string, "alive")
        print("pair that cannot reach each other: settled after \(String(format: "%.1f", mark.timeIntervalSince(start))) s with \(settleSuspicions) suspicion(s); \(Int(calm)) s calm")
        try healAll()
    }
    /// Idle anti-entropy (issue 22, part 4): an idle mesh opens no task channel at all (each
    /// heartbeat carries a digest of the slot records, schedules and trust statements its node
    /// holds, and the digests agree), and a difference — here a schedule one node added while its
    /// task channels were blocked, so the push that tells everyone at once could not get through —
    /// is exchanged once its watcher sees the digest differ.
    func testAnIdleMeshOpensNoTaskChannelAndADifferenceIsCaughtUpByDigest() throws {
        let c = try mesh(3, prefix: "n", firstHost: 160)
        // The exchanges of the start (each node's digest differs from the others' until they have
        // swapped what they hold) end within a few seconds.
        var quietFrom = try tcpOpens(), quiet = Date()
        var series: [Int] = []
        XCTAssertTrue(waitUntil(timeout: 40, interval: 1) {
            let now = (try? self.tcpOpens()) ?? 0
            series.append(now)
            if now != quietFrom { quietFrom = now; quiet = Date() }
            return Date().timeIntervalSince(quiet) >= 5
        }, "task channels kept opening: \(series)")
        let before = try tcpOpens()
        Thread.sleep(forTimeInterval: 12)
        let idle = try tcpOpens() - before
        XCTAssertEqual(idle, 0, "task channels opened by an idle mesh in 12 s (the 10-second exchange opened about 4)")
        // Every path is direct: a member first reached through another at the start, only because it
        // had not been heard from directly yet, is not marked 'via' (that mark was retried with a new
        // channel 30 s later, task channels an idle mesh need not open).
        for o in c.names {
            for m in c.statusJSON(o)?["members"]?.array ?? [] {
                XCTAssertEqual(m["reach"]?.string, "direct", "\(o) reaches \(m["name"]?.string ?? "?") \(m["reach"]?.string ?? "?")")
            }
        }
        // Task channels to n2 blocked; gossip still flows.
        for h in ["n1", "n3"] {
            try sh([ip, "netns", "exec", ns, iptables, "-I", "INPUT", "-p", "tcp", "-s", c.hosts[h]!, "-d", c.hosts["n2"]!, "-j", "DROP"])
            try sh([ip, "netns", "exec", ns, iptables, "-I", "INPUT", "-p", "tcp", "-s", c.hosts["n2"]!, "-d", c.hosts[h]!, "-j", "DROP"])
        }
        let file = URL(fileURLWithPath: c.dir("n2")).appendingPathComponent("roles/meta/schedule.toml")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try "[nightly]\nevery = \"1d\"\n".write(to: file, atomically: true, encoding: .utf8)
        func knows(_ o: String) -> Bool {
            let r = try? c.cli(["schedules", "--json", "--dir", c.dir(o)])
            return JSON.parse(r?.stdout ?? "")?["schedules"]?.array?.contains { $0["task"]?.string == "nightly" } == true
        }
        Thread.sleep(forTimeInterval: 6)     // n2 reads its schedule files every 3 s; its push fails
        XCTAssertFalse(knows("n1"), "n1 learnt the schedule although its channels to n2 were blocked")
        try healAll()
        XCTAssertTrue(waitUntil(timeout: 15, interval: 0.5) { knows("n1") && knows("n3") },
                      "the difference was not caught up by digest once the channels were back")
    }

    /// Task channels opened in the namespace so far (`Tcp: ActiveOpens` of its /proc/net/snmp).
    func tcpOpens() throws -> Int {
        let r = try Cluster.run(ip, ["netns", "exec", ns, "cat", "/proc/net/snmp"], timeout: 10)
        let lines = r.stdout.split(separator: "\n").filter { $0.hasPrefix("Tcp:") }
        guard lines.count == 2 else { throw XCTSkip("no Tcp counters in /proc/net/snmp") }
        let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
        guard let i = names.firstIndex(of: "ActiveOpens"), let v = Int(values[i]) else { throw XCTSkip("no ActiveOpens") }
        return v
    }
}

extension Cluster {
    /// The agent's whole log (the harness keeps stderr in a file).
    func fullLog(_ name: String) -> String {
        logs[name].flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
    }

    /// How many `event` lines about `peer` `observer` logged after `since`.
    func logLines(_ observer: String, _ event: String, about peer: String, after since: Date) -> Int {
        fullLog(observer).split(separator: "\n").filter { line in
            guard line.contains(" \(event) "), line.contains("peer=\(peer)"),
                  let t = SplitIntegrationTests.parseTime(String(line.prefix { $0 != " " })) else { return false }
            return t >= since
        }.count
    }
}
