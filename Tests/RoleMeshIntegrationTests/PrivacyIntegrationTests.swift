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
        let h = Heartbeat(name: "secretnode1", incarnation: 1, seq: 1, address: WireAddress(ip: [], port: 0), roles: ["hiddenrole"],
                          backup: ["covertjob": 2], signals: Signals(load: 0.77, memFree: 0.33, battery: 0.42, onBattery: true))
        let plain = Wire.encodeBody(.heartbeat(h))
        var needles: [(String, [UInt8])] = nodes.map { ($0, Array($0.utf8)) } + [("hiddenrole", Array("hiddenrole".utf8)),
                                                                                  ("covertjob", Array("covertjob".utf8)),
                                                                                  ("secretnode", Array("secretnode".utf8))]
        needles += [("load 0.77", [16, 2, 0x03, 0x02]), ("mem_free 0.33", [18, 2, 0x0C, 0xE4]), ("battery 0.42", [19, 2, 0x10, 0x68]),
                    ("on_battery", [20, 1, 1])]
        for (what, needle) in needles.dropFirst(nodes.count) {
            XCTAssertNotNil(find(needle, in: plain), "self-check: \(what) is what a plaintext would carry")
        }
        var hits: [String] = []
        for p in packets {
            for (what, needle) in needles where find(needle, in: p) != nil { hits.append("\(what) in a \(p.count)-byte datagram") }
        }
        XCTAssertTrue(hits.isEmpty, "in clear on the wire: \(Set(hits).sorted())")
        XCTAssertTrue(packets.allSatisfy { $0.count <= Envelope.maxSize })
        let dropped = cluster.statusJSON("secretnode1")?["dropped"]
        XCTAssertEqual(dropped?["bad_mac"]?.int, 0)
    }

    func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }
}
