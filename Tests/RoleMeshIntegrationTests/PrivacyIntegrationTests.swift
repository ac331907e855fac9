import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore

/// Gossip is private (protocol.md 2): a passive capture of real agents' traffic on loopback holds
/// no node name, role name or signal value, however it is encoded.
final class PrivacyIntegrationTests: XCTestCase {
    var cluster: Cluster!

    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func testACaptureOfGossipHoldsNoNameRoleOrSignal() throws {
        let nodes = try cluster.create(3, prefix: "secretnode", extra: { _ in ["--role", "hiddenrole", "--backup", "covertjob=2"] })
        guard let capture = LoopbackCapture(port: cluster.port, hosts: Set(cluster.hosts.values)) else {
            throw XCTSkip("no CAP_NET_RAW: cannot capture loopback traffic")
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        for n in nodes {
            XCTAssertEqual(try cluster.cli(["signal", "set", "load=0.77", "mem_free=0.33", "battery=0.42", "on_battery=true",
                                            "--dir", cluster.dir(n)]).status, 0)
        }
        // The figures reached the others, so they were on the wire (encrypted).
        XCTAssertTrue(waitUntil(timeout: 10) {
            nodes.allSatisfy { n in nodes.allSatisfy { self.cluster.member(n, seenBy: $0)?["signals"]?["battery"]?.double == 0.42 } }
        })
        Thread.sleep(forTimeInterval: 2)
        let packets = capture.stop()
        XCTAssertGreaterThan(packets.count, 30, "the capture saw the mesh's traffic")

        // What a v2 plaintext would hold: names and roles as UTF-8, signals as their fields.
        let signals = Signals(load: 0.77, memFree: 0.33, battery: 0.42, onBattery: true)
        let secrets = LoopbackCapture.secrets(names: nodes + ["secretnode"], roles: ["hiddenrole", "covertjob"], signals: signals)
        XCTAssertEqual(secrets.count, nodes.count + 3 + 4)
        let h = Heartbeat(name: "secretnode1", incarnation: 1, seq: 1, address: WireAddress(ip: [], port: 0), roles: ["hiddenrole"],
                          backup: ["covertjob": 2], signals: signals)
        let plain = Wire.encode(Datagram(kind: .gossip, entries: [SignedEntry(statement: .heartbeat(h), body: Wire.encodeBody(.heartbeat(h)),
                                                                                signature: [UInt8](repeating: 0, count: 64))]))
        XCTAssertEqual(LoopbackCapture.leaks(of: secrets, in: [plain]).count, secrets.count - 2,
                       "self-check: a plaintext would show every secret (but the other two names)")
        let hits = LoopbackCapture.leaks(of: secrets, in: packets)
        XCTAssertTrue(hits.isEmpty, "in clear on the wire (\(hits.count)): \(hits.prefix(20))")
        XCTAssertTrue(packets.allSatisfy { $0.count <= Envelope.maxSize })
        let dropped = cluster.statusJSON("secretnode1")?["dropped"]
        XCTAssertEqual(dropped?["bad_mac"]?.int, 0)
    }
}
