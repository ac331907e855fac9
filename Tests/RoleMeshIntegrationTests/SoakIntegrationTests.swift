import Foundation
import XCTest
import RoleMeshControl
import Glibc

/// The chaos soak (issue 22, part 5): 8 real agents, each in a network namespace of its own behind a
/// router namespace, under random faults for `ROLEMESH_SOAK_MINUTES` (3 here, as issue 22 asks of
/// CI; the 30-minute run is in docs/benchmarks.md): crash and restart, split and heal, 0–30 % loss,
/// an address change, SIGSTOP and SIGCONT. Throughout, a task is submitted every second (`--queue --retry 2`) from a
/// random running node, and a schedule runs every minute. Then:
/// - every accepted task ended exactly once as done, failed, lost or cancelled, none vanished;
/// - no slot ran twice within one connected group (a run on each side of a split is allowed);
/// - no agent crashed (only the ones killed on purpose stopped), and RSS stayed bounded;
/// - every view agreed within 10 s of the last fault.
/// The fault log and the seed are printed; `ROLEMESH_SOAK_SEED` replays the same choice of faults.
final class SoakIntegrationTests: XCTestCase {
    let ip = "/usr/sbin/ip", iptables = "/usr/sbin/iptables"
    var cluster: Cluster!
    var tag = ""
    var namespaces: [String] = []
    let names = (0..<8).map { "soak\($0)" }
    /// Where each agent is now (it changes when it moves).
    var addresses: [String: String] = [:]
    var killed: Set<String> = []
    var log: [String] = []
    /// When a node was killed or stopped (a slot it was running may run again), and the splits.
    var faults: [Date] = []
    var splits: [(from: Date, to: Date)] = []
    let started = Date()

    override func setUpWithError() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: ip),
              FileManager.default.isExecutableFile(atPath: iptables) else { throw XCTSkip("needs root, ip and iptables") }
        tag = "rmsk\(getpid() % 10_000)"
        cluster = Cluster(profile: "fast")
    }

    override func tearDown() {
        cluster?.shutdown()
        for ns in namespaces { _ = try? Cluster.run(ip, ["netns", "del", ns], timeout: 10) }
    }

    func sh(_ args: [String]) throws {
        let r = try Cluster.run(args[0], Array(args.dropFirst()), timeout: 20)
        guard r.status == 0 else { throw XCTSkip("\(args.joined(separator: " ")) failed: \(r.stderr)") }
    }

    func inRouter(_ args: [String]) throws { try sh([ip, "netns", "exec", tag + "r"] + args) }

    func note(_ s: String) {
        let line = String(format: "%7.1f s ", Date().timeIntervalSince(started)) + s
        log.append(line)
        print("soak: " + line)
    }

    /// The router namespace, and one namespace per agent with a veth to it: agent i is 10.88.i.2/24
    /// behind 10.88.i.1, its default route. Faults are iptables rules in the router's FORWARD chain.
    func buildNetwork() throws {
        let router = tag + "r"
        for ns in [router] + names.indices.map({ "\(tag)\($0)" }) {
            _ = try? Cluster.run(ip, ["netns", "del", ns], timeout: 10)
            try sh([ip, "netns", "add", ns])
            namespaces.append(ns)
            try sh([ip, "netns", "exec", ns, ip, "link", "set", "lo", "up"])
        }
        try inRouter(["/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for i in names.indices {
            let ns = "\(tag)\(i)", a = "\(tag)a\(i)", r = "\(tag)b\(i)"
            try sh([ip, "link", "add", a, "netns", ns, "type", "veth", "peer", "name", r, "netns", router])
            // An address change adds the new address, then deletes the old: the new one must not go
            // with it (by default a primary address takes its secondaries along).
            try sh([ip, "netns", "exec", ns, "/usr/sbin/sysctl", "-qw", "net.ipv4.conf.all.promote_secondaries=1"])
            try sh([ip, "netns", "exec", ns, "/usr/sbin/sysctl", "-qw", "net.ipv4.conf.default.promote_secondaries=1"])
            try sh([ip, "netns", "exec", ns, ip, "addr", "add", "10.88.\(i).2/24", "dev", a])
            try sh([ip, "netns", "exec", ns, ip, "link", "set", a, "up"])
            try sh([ip, "netns", "exec", ns, ip, "route", "add", "default", "via", "10.88.\(i).1"])
            try inRouter([ip, "addr", "add", "10.88.\(i).1/24", "dev", r])
            try inRouter([ip, "link", "set", r, "up"])
            addresses[names[i]] = "10.88.\(i).2"
        }
    }

    /// Eight agents on 0.0.0.0 (so they follow an address change), seeded with soak0; role `work`
    /// held by three and backed up by two; `tick` every minute.
    func buildMesh() throws {
        let port = cluster.port
        for (i, name) in names.enumerated() {
            cluster.hosts[name] = "10.88.\(i).2"
            var extra = ["--role", "cpu"]
            if i < 3 { extra += ["--role", "work"] } else if i < 5 { extra += ["--backup", "work=\(i - 2)"] }
            let r = try cluster.cli(["init", name, "--dir", cluster.dir(name), "--listen", "0.0.0.0:\(port)",
                                     "--seed", "10.88.0.2:\(port)", "--profile", "fast"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            cluster.names.append(name)
            let roles = cluster.dir(name) + "/roles/work"
            try FileManager.default.createDirectory(atPath: roles, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: roles + "/job", contents: Data("#!/bin/sh\nsleep 0.3\necho ok $1\n".utf8),
                                               attributes: [.posixPermissions: 0o755])
            // Each run of a slot appends its run id and node to a file of the node that ran it.
            _ = FileManager.default.createFile(atPath: roles + "/tick",
                                               contents: Data("#!/bin/sh\necho \"$ROLEMESH_RUN_ID $ROLEMESH_NODE $ROLEMESH_TASK_ID $(date +%s)\" >> \(cluster.dir(name))/ticks\n".utf8),
                                               attributes: [.posixPermissions: 0o755])
            try "[tick]\nevery = \"1m\"\n".write(toFile: roles + "/schedule.toml", atomically: true, encoding: .utf8)
        }
        for a in cluster.names { for b in cluster.names { cluster.trust(a, by: b) } }
        for (i, name) in names.enumerated() { try cluster.startOne(name, wrapper: [ip, "netns", "exec", "\(tag)\(i)"]) }
        XCTAssertTrue(waitUntil(timeout: 30, interval: 0.5) { self.cluster.allAlive(self.names) }, "the soak mesh did not form")
    }

    func testChaosSoakKeepsEveryTaskAndEveryView() throws {
        let env = ProcessInfo.processInfo.environment
        let minutes = Double(env["ROLEMESH_SOAK_MINUTES"] ?? "") ?? 3
        let seed = UInt64(env["ROLEMESH_SOAK_SEED"] ?? "") ?? UInt64(Date().timeIntervalSince1970)
        var rng = SeededRNG(seed)            // the faults
        var pick = SeededRNG(seed ^ 0xabcdef)  // the workload's submitters (how many depends on timing)
        try buildNetwork()
        try buildMesh()
        note("soak of \(minutes) min, seed \(seed) (ROLEMESH_SOAK_SEED replays the faults)")

        var submitted: [(node: String, id: String)] = []
        var refused = 0
        var rssMax: [String: Double] = [:]
        let end = Date().addingTimeInterval(minutes * 60)
        var nextFault = Date().addingTimeInterval(5)
        var undo: (() throws -> Void)?
        var lastFault = Date()
        while Date() < end {
            // The workload: one task a second from a random running node.
            let up = names.filter { !killed.contains($0) }
            if let from = up.randomElement(using: &pick) {
                let r = try cluster.cli(["submit", "work/job", "--queue", "--retry", "2", "--detach", "--dir", cluster.dir(from), "--", "x"],
                                        timeout: 15)
                let id = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                if r.status == 0, !id.isEmpty { submitted.append((from, id)) } else { refused += 1 }
            }
            for n in up { if let pid = cluster.pid(n), let rss = Self.rssMiB(pid) { rssMax[n] = max(rssMax[n] ?? 0, rss) } }
            if Date() >= nextFault {
                if let u = undo { try u(); undo = nil; note("healed") } else {
                    undo = try fault(&rng)
                }
                lastFault = Date()
                nextFault = Date().addingTimeInterval(Double(Int.random(in: 4...12, using: &rng)))
            }
            Thread.sleep(forTimeInterval: max(0, 1 - 0.05))
        }
        if let u = undo { try u(); note("healed") }
        for n in killed.sorted() { try restart(n) }
        lastFault = Date()

        // Every view agrees within 10 s of the last fault.
        let converged = waitUntil(timeout: 10, interval: 0.5) { self.cluster.allAlive(self.names) }
        note("views agree \(converged ? "" : "NOT ")within 10 s of the last fault (after \(String(format: "%.1f", Date().timeIntervalSince(lastFault))) s)")
        XCTAssertTrue(converged, "views after the last fault: \(names.map { "\($0): \(cluster.states(seenBy: $0))" })")

        // No agent crashed: every process we did not kill is still running.
        for n in names { XCTAssertNotNil(cluster.pid(n), "\(n) is not running"); XCTAssertTrue(cluster.processes[n]?.isRunning ?? false, "\(n) exited: \(cluster.log(n))") }
        // RSS stayed bounded.
        for (n, r) in rssMax { XCTAssertLessThan(r, 64, "\(n)'s RSS reached \(r) MiB") }

        // Every accepted task ends exactly once: queued ones run once the mesh is whole again.
        let final = Set(["done", "failed", "lost", "cancelled"])
        var states: [String: String] = [:]
        let ended = waitUntil(timeout: 120, interval: 2) {
            var byNode: [String: [String: String]] = [:]
            for n in self.names {
                let r = try? self.cluster.cli(["tasks", "--json", "--dir", self.cluster.dir(n)], timeout: 30)
                for t in JSON.parse(r?.stdout ?? "")?["tasks"]?.array ?? [] {
                    if let id = t["id"]?.string, let s = t["state"]?.string { byNode[n, default: [:]][id] = s }
                }
            }
            states = [:]
            for (node, id) in submitted { states[id] = byNode[node]?[id] ?? "missing" }
            return states.values.allSatisfy { final.contains($0) }
        }
        let counts = Dictionary(grouping: states.values, by: { $0 }).mapValues(\.count)
        note("\(submitted.count) tasks accepted (\(refused) submissions refused at once): \(counts.sorted { $0.key < $1.key })")
        let open = submitted.filter { !final.contains(states[$0.id] ?? "missing") }.prefix(10)
        XCTAssertTrue(ended, "tasks not ended (submitted on, id, state): \(open.map { "\($0.node) \($0.id) \(states[$0.id] ?? "missing")" })")
        XCTAssertGreaterThan(counts["done"] ?? 0, submitted.count / 2, "most tasks ran")

        // No slot ran twice within one connected group.
        var runs: [String: [(node: String, task: String, at: Date)]] = [:]
        for n in names {
            let text = (try? String(contentsOfFile: cluster.dir(n) + "/ticks", encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ").map(String.init)
                if f.count == 4, let t = Double(f[3]) { runs[f[0], default: []].append((f[1], f[2], Date(timeIntervalSince1970: t))) }
            }
        }
        let twice = runs.filter { Set($0.value.map(\.task)).count > 1 }
        note("\(runs.count) slots ran; \(twice.count) ran more than once (\(splits.count) splits in the soak)")
        // A slot may run on each side of a split, or again after its node was lost mid-run (a
        // crash, a pause): a second run must follow such a fault by at most a minute.
        for (slot, rs) in twice {
            let later = rs.map(\.at).max()!
            let explained = splits.contains { $0.from <= later && $0.to.addingTimeInterval(60) >= later }
                || faults.contains { $0 <= later && later.timeIntervalSince($0) <= 60 }
            XCTAssertTrue(explained, "slot \(slot) ran \(rs.count) times with no split or lost node to explain it: \(rs.map(\.node))")
        }
        print("soak log:\n" + log.joined(separator: "\n"))
    }

    // MARK: - Faults

    /// Applies one random fault; returns how to end it (nil: it ends by itself).
    func fault(_ rng: inout SeededRNG) throws -> (() throws -> Void)? {
        let up = names.filter { !killed.contains($0) }
        switch Int.random(in: 0..<6, using: &rng) {
        case 0:   // crash, restarted at the heal
            guard up.count > 4, let x = up.randomElement(using: &rng) else { return nil }
            cluster.crash(x)
            killed.insert(x)
            faults.append(Date())
            note("kill \(x)")
            return { try self.restart(x) }
        case 1:   // split
            let shuffled = names.shuffled(using: &rng)
            let k = Int.random(in: 1...4, using: &rng)
            let a = Array(shuffled.prefix(k)), b = Array(shuffled.dropFirst(k))
            let nets = { (g: [String]) in g.map { "10.88.\(self.names.firstIndex(of: $0)!).0/24" }.joined(separator: ",") }
            try inRouter([iptables, "-I", "FORWARD", "-s", nets(a), "-d", nets(b), "-j", "DROP"])
            try inRouter([iptables, "-I", "FORWARD", "-s", nets(b), "-d", nets(a), "-j", "DROP"])
            note("split \(a.sorted().joined(separator: " ")) | \(b.sorted().joined(separator: " "))")
            let from = Date()
            return {
                try self.inRouter([self.iptables, "-F", "FORWARD"])
                self.splits.append((from, Date()))
            }
        case 2:   // loss
            let p = [0.05, 0.1, 0.2, 0.3].randomElement(using: &rng)!
            try inRouter([iptables, "-I", "FORWARD", "-m", "statistic", "--mode", "random", "--probability", String(p), "-j", "DROP"])
            note("loss \(Int(p * 100)) %")
            return { try self.inRouter([self.iptables, "-F", "FORWARD"]) }
        case 3:   // SIGSTOP, SIGCONT at the heal
            guard let x = up.randomElement(using: &rng) else { return nil }
            cluster.signal(x, SIGSTOP)
            faults.append(Date())
            note("SIGSTOP \(x)")
            return { self.cluster.signal(x, SIGCONT) }
        case 4:   // address change
            guard let x = up.randomElement(using: &rng) else { return nil }
            let i = names.firstIndex(of: x)!, old = addresses[x]!
            let new = old.hasSuffix(".2") ? "10.88.\(i).3" : "10.88.\(i).2"
            let ns = "\(tag)\(i)", dev = "\(tag)a\(i)"
            try sh([ip, "netns", "exec", ns, ip, "addr", "add", new + "/24", "dev", dev])
            try sh([ip, "netns", "exec", ns, ip, "addr", "del", old + "/24", "dev", dev])
            _ = try? Cluster.run(ip, ["netns", "exec", ns, ip, "route", "replace", "default", "via", "10.88.\(i).1"], timeout: 10)
            addresses[x] = new
            note("move \(x) \(old) -> \(new)")
            return nil
        default:  // a quiet spell
            note("quiet")
            return nil
        }
    }

    func restart(_ x: String) throws {
        guard killed.remove(x) != nil else { return }
        try cluster.startOne(x, wrapper: [ip, "netns", "exec", "\(tag)\(names.firstIndex(of: x)!)"])
        note("restart \(x)")
    }

    static func rssMiB(_ pid: Int32) -> Double? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") else { return nil }
        return kb / 1024
    }
}

/// SplitMix64 as a RandomNumberGenerator: the soak's choice of faults from its seed.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
