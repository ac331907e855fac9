import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTestSupport
import RoleMeshTaskChannel

/// Gossip is private (protocol.md 2): a passive capture of real agents' traffic on loopback holds
/// no node name, role name or signal value, however it is encoded; and since issue 24 neither does
/// the task channel (its handshake seals both identities), nor what a stranger gets back.
final class PrivacyIntegrationTests: XCTestCase {
    var cluster: Cluster!

    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func testACaptureOfGossipHoldsNoNameRoleOrSignal() throws {
        let nodes = try cluster.create(3, prefix: "secretnode", extra: { _ in ["--role", "hiddenrole", "--backup", "covertjob=2"] })
        for n in nodes {
            let d = cluster.dir(n) + "/roles/hiddenrole"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            XCTAssertTrue(FileManager.default.createFile(atPath: d + "/secrettask", contents: Data("#!/bin/sh\necho ok\n".utf8),
                                                        attributes: [.posixPermissions: 0o755]))
        }
        guard let capture = LoopbackCapture(port: cluster.port, hosts: Set(cluster.hosts.values)) else {
            throw XCTSkip("no CAP_NET_RAW: cannot capture loopback traffic")
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        // Task channels: two submissions (names, role and task inside), slot and trust exchanges.
        for n in nodes.prefix(2) {
            let r = try cluster.cli(["submit", "hiddenrole/secrettask", "--to", nodes[2], "--dir", cluster.dir(n)])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        // A stranger who connects learns no name either: an old-style hello with a made-up name,
        // and a current one it cannot seal for the node.
        var answers: [[UInt8]] = []
        for hello in [Array("RMT1".utf8) + [1] + Array("x".utf8) + [UInt8](repeating: 1, count: 32),
                      ChannelHandshake.magic + [UInt8](repeating: 7, count: ChannelHandshake.helloSize - 4)] {
            answers.append(try strangerAsks(cluster.hosts[nodes[0]]!, hello))
        }
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
        // The first handshake, "RMT1", is spoken only with a member of the release before, at its
        // gossip address: a stranger naming a real member gets the refusal any stranger gets.
        // (After the capture: this hello holds the name itself.)
        answers.append(try strangerAsks(cluster.hosts[nodes[0]]!,
                                        Array("RMT1".utf8) + [UInt8(nodes[1].utf8.count)] + Array(nodes[1].utf8) + [UInt8](repeating: 1, count: 32)))
        XCTAssertEqual(answers.last, ChannelHandshake.refusal(ChannelHandshake.otherVersion))
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
        let segments = capture.tcpSegments
        XCTAssertGreaterThan(segments.count, 10, "the capture saw task channels")
        let taskSecrets = secrets + [(what: "the task's name", bytes: Array("secrettask".utf8))]
        let tcpHits = LoopbackCapture.leaks(of: taskSecrets, in: segments, unit: "TCP segment")
            + LoopbackCapture.streamLeaks(of: taskSecrets, in: segments)
        XCTAssertTrue(tcpHits.isEmpty, "in clear on the task channel (\(tcpHits.count)): \(tcpHits.prefix(20))")
        for a in answers {
            XCTAssertTrue(LoopbackCapture.leaks(of: taskSecrets, in: [a]).isEmpty, "a stranger was told a name: \(String(decoding: a, as: UTF8.self))")
        }
        XCTAssertTrue(packets.allSatisfy { $0.count <= Envelope.maxSize })
        let dropped = cluster.statusJSON("secretnode1")?["dropped"]
        XCTAssertEqual(dropped?["bad_mac"]?.int, 0)
    }

    /// Connects as a stranger, sends `hello`, and returns what comes back before the node closes.
    func strangerAsks(_ host: String, _ hello: [UInt8]) throws -> [UInt8] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = UDPProbe.sockaddrIn(host, cluster.port)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(rc, 0)
        _ = hello.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // After the answer to a sealed hello the node waits for a proof: send 16 bytes of nothing.
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<4 {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
            if out.count == ChannelHandshake.answerSize {
                _ = [UInt8](repeating: 0, count: 16).withUnsafeBytes { send(fd, $0.baseAddress, 16, Int32(MSG_NOSIGNAL)) }
            }
        }
        return out
    }
}
