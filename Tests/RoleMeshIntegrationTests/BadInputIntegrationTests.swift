import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import RoleMeshTestSupport

/// Hostile and broken datagrams against real agents: dropped, counted, and the agent keeps serving.
final class BadInputIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    /// Creates 3 nodes where node3 also "seeds" a probe socket that never answers, and returns what
    /// node3 sent it: hellos only (proof of key before content, protocol.md 2.3).
    func startWithCapture() throws -> (UDPProbe, [[UInt8]]) {
        let nodes = try cluster.create(3)
        let probe = UDPProbe(host: "127.0.0.99", port: cluster.port)
        let toml = cluster.dir("node3") + "/node.toml"
        let text = try String(contentsOfFile: toml, encoding: .utf8)
        try text.replacingOccurrences(of: "seeds = [", with: "seeds = [\"127.0.0.99:\(cluster.port)\", ")
            .write(toFile: toml, atomically: true, encoding: .utf8)
        try cluster.start()
        let captured = probe.receive(for: 1.0, max: 5)
        XCTAssertFalse(captured.isEmpty, "node3 sent nothing to its seed")
        XCTAssertTrue(captured.allSatisfy { $0.count == Envelope.overhead + 32 },
                      "an unproven seed gets fixed-size hellos only: \(captured.map(\.count))")
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        return (probe, captured)
    }

    func dropped(_ node: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for (k, v) in cluster.statusJSON(node)?["dropped"]?.object ?? [] { out[k] = v.int ?? 0 }
        return out
    }

    /// node3's real gossip with node1, captured off the wire and replayed after node3 died, from
    /// another address: it opens (the pair key is static) but every heartbeat in it is old.
    func testReplayedDatagramsDoNotResurrectADeadNode() throws {
        let nodes = try cluster.create(3)
        guard let capture = LoopbackCapture(port: cluster.port, hosts: [cluster.hosts["node3"]!]) else {
            throw XCTSkip("no CAP_NET_RAW: cannot capture loopback traffic")
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        Thread.sleep(forTimeInterval: 1.0)
        let captured = Array(capture.stop().suffix(400))
        XCTAssertGreaterThan(captured.count, 20)
        cluster.crash("node3")
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.everyone(["node1", "node2"], sees: "node3", as: "dead") })
        let probe = UDPProbe(host: "127.0.0.99", port: cluster.port)
        let before = dropped("node1")["replay"] ?? 0
        for (i, d) in captured.enumerated() {
            probe.send(d, to: cluster.hosts["node1"]!, port: cluster.port)
            probe.send(d, to: cluster.hosts["node2"]!, port: cluster.port)
            if i % 50 == 0 { Thread.sleep(forTimeInterval: 0.02) }
        }
        Thread.sleep(forTimeInterval: 1.0)
        XCTAssertEqual(cluster.states(seenBy: "node1")["node3"], "dead")
        XCTAssertEqual(cluster.states(seenBy: "node2")["node3"], "dead")
        XCTAssertGreaterThan((dropped("node1")["replay"] ?? 0) - before, 10, "the replayed gossip opened and was judged old")
        XCTAssertEqual(dropped("node1")["bad_mac"], 0)
    }

    func testGarbageIsDroppedAndCountedAndTheAgentKeepsServing() throws {
        let (probe, captured) = try startWithCapture()
        let target = cluster.hosts["node2"]!
        let before = dropped("node2").values.reduce(0, +)
        var rng = SystemRandomNumberGenerator()
        var sent = 0
        for i in 0..<400 {
            let sample = captured[i % captured.count]
            var d: [UInt8]
            switch i % 4 {
            case 0: d = (0..<Int.random(in: 0...1400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }   // random
            case 1: d = Array(sample.prefix(Int.random(in: 0..<sample.count, using: &rng)))                             // truncated
            case 2: d = sample + [UInt8](repeating: 0x41, count: 1300 - sample.count)                                   // oversized
            default:                                                                                                      // bit-flipped
                d = sample
                let bit = Int.random(in: 0..<(d.count * 8), using: &rng)
                d[bit / 8] ^= UInt8(1 << (bit % 8))
            }
            if d.isEmpty { continue }        // an empty datagram is still a datagram; keep counting simple
            probe.send(d, to: target, port: cluster.port)
            sent += 1
            if i % 50 == 0 { Thread.sleep(forTimeInterval: 0.01) }
        }
        XCTAssertTrue(waitUntil(timeout: 5) { self.dropped("node2").values.reduce(0, +) - before >= sent },
                      "sent \(sent) bad datagrams, counted \(self.dropped("node2").values.reduce(0, +) - before): \(self.dropped("node2"))")
        let d = dropped("node2")
        XCTAssertGreaterThan(d["malformed"] ?? 0, 0)
        XCTAssertGreaterThan(d["bad_mac"] ?? 0, 0, "a damaged hello sealed for node2 fails authentication")
        XCTAssertGreaterThan(d["unknown_key"] ?? 0, 0, "random bytes name no pair of node2's")
        // Still serving, still a healthy mesh.
        XCTAssertTrue(cluster.allAlive(["node1", "node2", "node3"]))
    }
}
