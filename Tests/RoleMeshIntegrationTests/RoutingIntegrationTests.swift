import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc

/// Roles, routing and failover on real agents, checked with `rolemesh route` on every node.
final class RoutingIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func route(_ role: String, on node: String, heavy: Bool = false) -> String? {
        guard let r = try? cluster.cli(["route", role, "--json", "--dir", cluster.dir(node)] + (heavy ? ["--heavy"] : [])),
              let j = JSON.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return j["node"]?.string
    }

    func everyone(_ nodes: [String], routes role: String, to target: String?, heavy: Bool = false) -> Bool {
        nodes.allSatisfy { route(role, on: $0, heavy: heavy) == target }
    }

    /// primary holds "transcode"; b1 and b2 back it up with priorities 1 and 2; client holds nothing.
    func makeFailoverMesh() throws -> [String] {
        let extra: [String: [String]] = ["node1": ["--role", "transcode"], "node2": ["--backup", "transcode=1"],
                                         "node3": ["--backup", "transcode=2"], "node4": []]
        let nodes = try cluster.create(4, extra: { extra[$0] ?? [] })
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return nodes
    }

    func testFailoverToBackupsByPriorityAndBack() throws {
        let nodes = try makeFailoverMesh()
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "transcode", to: "node1") })
        // Every node that sees the move reports it on `watch`.
        let watcher = try WatchStream(binary: Cluster.binary, dir: cluster.dir("node4"))
        cluster.crash("node1")
        XCTAssertTrue(waitUntil(timeout: 10) { self.everyone(["node2", "node3", "node4"], routes: "transcode", to: "node2") },
                      "survivors should route to backup 1")
        XCTAssertTrue(waitUntil(timeout: 5) {
            watcher.lines.contains { $0["event"]?.string == "role-moved" && $0["role"]?.string == "transcode"
                && $0["from"]?.string == "node1" && $0["to"]?.string == "node2" && $0["node"] != nil && $0["time"] != nil }
        }, "watch --json did not report the move: \(watcher.lines.map(\.serialized))")
        watcher.stop()
        cluster.crash("node2")
        XCTAssertTrue(waitUntil(timeout: 10) { self.everyone(["node3", "node4"], routes: "transcode", to: "node3") },
                      "survivors should route to backup 2")
        try cluster.startOne("node1")
        XCTAssertTrue(waitUntil(timeout: 10) { self.everyone(["node1", "node3", "node4"], routes: "transcode", to: "node1") },
                      "the restarted primary gets its role back")
    }

    func testHeavyWorkAvoidsBatteryAndThrottledHoldersButLightWorkUsesThem() throws {
        let extra: [String: [String]] = ["node1": ["--role", "render"], "node2": ["--role", "render"], "node3": ["--backup", "render=1"]]
        let nodes = try cluster.create(3, extra: { extra[$0] ?? [] })
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        // Make routing deterministic: the holders are idle, the backup is busy.
        try cluster.cli(["signal", "set", "load=0", "mem_free=0.9", "--dir", cluster.dir("node1")])
        try cluster.cli(["signal", "set", "load=0.1", "mem_free=0.9", "--dir", cluster.dir("node2")])
        try cluster.cli(["signal", "set", "load=0.9", "mem_free=0.1", "--dir", cluster.dir("node3")])
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "render", to: "node1", heavy: true) })
        XCTAssertEqual(try cluster.cli(["signal", "set", "on_battery=true", "battery=0.5", "--dir", cluster.dir("node1")]).status, 0)
        XCTAssertEqual(try cluster.cli(["signal", "set", "throttled=true", "--dir", cluster.dir("node2")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "render", to: "node3", heavy: true) },
                      "heavy work must skip the holders on battery and throttled")
        XCTAssertTrue(everyone(nodes, routes: "render", to: "node2"), "light work still uses a throttled holder (best score)")
        let r = try cluster.cli(["route", "render", "--heavy", "--json", "--dir", cluster.dir("node3")])
        let skipped = JSON.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))?["skipped"]?.array ?? []
        let reasons = Dictionary(uniqueKeysWithValues: skipped.compactMap { s in s["node"]?.string.map { ($0, s["reason"]?.string ?? "") } })
        XCTAssertTrue(reasons["node1"]?.hasPrefix("on battery") == true, "\(reasons)")
        XCTAssertTrue(reasons["node2"]?.hasPrefix("throttled") == true, "\(reasons)")
        // With the backup draining too, heavy work has nowhere to go: exit 69 and a sentence naming each node.
        try cluster.cli(["drain", "--dir", cluster.dir("node3")])
        XCTAssertTrue(waitUntil(timeout: 5) { self.route("render", on: "node1", heavy: true) == nil })
        let none = try cluster.cli(["route", "render", "--heavy", "--dir", cluster.dir("node1")])
        XCTAssertEqual(none.status, 69)
        XCTAssertTrue(none.stderr.contains("node1: on battery") && none.stderr.contains("node2: throttled") && none.stderr.contains("node3: draining"), none.stderr)
        // Clearing the pins brings node1 back for heavy work.
        try cluster.cli(["signal", "clear", "--dir", cluster.dir("node1")])
        XCTAssertTrue(waitUntil(timeout: 5) { self.route("render", on: "node2", heavy: true) == "node1" })
    }

    func testDrainMovesTheRoleAndUndrainBringsItBack() throws {
        let nodes = try makeFailoverMesh()
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "transcode", to: "node1") })
        XCTAssertEqual(try cluster.cli(["drain", "--dir", cluster.dir("node1")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "transcode", to: "node2") })
        XCTAssertEqual(cluster.member("node1", seenBy: "node4")?["draining"]?.bool, true)
        XCTAssertEqual(try cluster.cli(["undrain", "--dir", cluster.dir("node1")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "transcode", to: "node1") })
    }

    func testARoleAddedAtRuntimeIsRoutedByEveryNodeAndPersisted() throws {
        let nodes = try cluster.create(3)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let toml = cluster.dir("node3") + "/node.toml"
        var text = try String(contentsOfFile: toml, encoding: .utf8)
        text = "# my laptop, keep this comment\n" + text
        try text.write(toFile: toml, atomically: true, encoding: .utf8)
        XCTAssertEqual(try cluster.cli(["roles", "add", "metabolism", "--dir", cluster.dir("node3")]).status, 0)
        XCTAssertEqual(try cluster.cli(["backup", "add", "metabolism", "--priority", "2", "--dir", cluster.dir("node1")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "metabolism", to: "node3") })
        let after = try String(contentsOfFile: toml, encoding: .utf8)
        XCTAssertTrue(after.hasPrefix("# my laptop, keep this comment\n"), after)
        XCTAssertTrue(after.contains("roles = [\"metabolism\"]"), after)
        XCTAssertTrue(try String(contentsOfFile: cluster.dir("node1") + "/node.toml", encoding: .utf8).contains("metabolism = 2"))
        let status = cluster.statusJSON("node2")
        XCTAssertEqual(status?["roles"]?["metabolism"]?["route"]?.string, "node3")
        XCTAssertEqual(status?["roles"]?["metabolism"]?["heavy_route"]?.string, "node3")
        XCTAssertEqual(try cluster.cli(["roles", "remove", "metabolism", "--dir", cluster.dir("node3")]).status, 0)
        XCTAssertTrue(waitUntil(timeout: 5) { self.everyone(nodes, routes: "metabolism", to: "node1") }, "falls to the backup")
        let bad = try cluster.cli(["signal", "set", "mem_free=3", "--dir", cluster.dir("node3")])
        XCTAssertEqual(bad.status, 64, bad.stderr)
    }
}

extension RoutingIntegrationTests {
    /// A load change read by the real probe reaches another node at the first beat the announcement
    /// rate limit allows (gossip v2: figures at most once per `signalMinInterval`, 1.7 s on `fast`
    /// in a mesh of two, counted from the previous announcement).
    func testProbedSignalsTravelAndStayFresh() throws {
        let nodes = try cluster.create(2)
        let fake = cluster.root.appendingPathComponent("fakeroot").path
        try FileManager.default.createDirectory(atPath: fake + "/proc", withIntermediateDirectories: true)
        try "processor\t: 0\nprocessor\t: 1\n".write(toFile: fake + "/proc/cpuinfo", atomically: true, encoding: .utf8)
        try "MemTotal: 1000 kB\nMemAvailable: 250 kB\n".write(toFile: fake + "/proc/meminfo", atomically: true, encoding: .utf8)
        try "0.50 0.40 0.30 1/100 1234\n".write(toFile: fake + "/proc/loadavg", atomically: true, encoding: .utf8)
        try cluster.startOne("node1")
        try cluster.startOne("node2", environment: ["ROLEMESH_PROBE_ROOT": fake])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let signals = { self.cluster.member("node2", seenBy: "node1")?["signals"] }
        XCTAssertTrue(waitUntil(timeout: 5) { signals()?["load"]?.double == 0.25 }, "\(String(describing: signals()))")
        XCTAssertEqual(signals()?["cpus"]?.int, 2)
        XCTAssertEqual(signals()?["mem_free"]?.double, 0.25)
        XCTAssertTrue(signals()?["battery"]?.isNull == true, "no battery here: null, not 0")
        XCTAssertTrue(signals()?["on_battery"]?.isNull == true)
        let start = Date()
        try "1.50 0.40 0.30 1/100 1234\n".write(toFile: fake + "/proc/loadavg", atomically: true, encoding: .utf8)
        XCTAssertTrue(waitUntil(timeout: 5, interval: 0.02) { signals()?["load"]?.double == 0.75 })
        let took = Date().timeIntervalSince(start)
        let limit = Double(TimingProfile.fast.signalMinInterval(memberCount: 2)) / 1000
        print("probed load change seen by another node after \(Int(took * 1000)) ms (rate limit \(limit) s)")
        XCTAssertLessThan(took, limit + 0.5, "a probed change must go out once the rate limit allows")
    }
}

/// `rolemesh watch --json` in the background, collecting its lines.
final class WatchStream: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var collected: [JSON] = []
    var lines: [JSON] { lock.lock(); defer { lock.unlock() }; return collected }

    init(binary: String, dir: String) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["watch", "--json", "--dir", dir]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = out.fileHandleForReading
        Thread.detachNewThread { [weak self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                buffer.append(chunk)
                while let nl = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...nl)
                    if let j = JSON.parse(line) { self?.lock.lock(); self?.collected.append(j); self?.lock.unlock() }
                }
            }
        }
        Thread.sleep(forTimeInterval: 0.3)     // let it subscribe before the test acts
    }

    func stop() { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
    deinit { stop() }
}
