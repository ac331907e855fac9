import XCTest
import RoleMeshCore

final class WireTests: XCTestCase {
    let pair = Ed25519.KeyPair(seed: [UInt8](repeating: 7, count: 32))

    func heartbeat(_ name: String = "desk", seq: UInt64 = 7) -> Heartbeat {
        Heartbeat(name: name, incarnation: 4, seq: seq, draining: true, address: WireAddress(host: "127.0.0.2", port: 7946)!,
                  roles: ["metabolism", "storage"], backup: ["transcode": 1, "backup-x": 3],
                  signals: Signals(load: 0.3, cpus: 8, memFree: 0.61, battery: 0.42, onBattery: true, throttled: false))
    }

    func signed(_ s: Statement) -> SignedEntry {
        let body = Wire.encodeBody(s)
        return SignedEntry(statement: s, body: body, signature: pair.sign(Wire.signedMessage(for: s, body: body)))
    }

    func testHeartbeatAndAccusationRoundTrip() throws {
        var request = heartbeat()
        request.syncRequest = true      // a sync request's entry 0 carries the signed flag (4, 0x02)
        let hb = signed(.heartbeat(request))
        let acc = signed(.accusation(Accusation(accuser: "desk", kind: .dead, target: "laptop", incarnation: 9)))
        let d = Datagram(kind: .syncRequest, entries: [hb, acc])
        let bytes = Wire.encode(d)
        XCTAssertEqual(bytes.count, d.encodedSize)
        XCTAssertEqual(Array(bytes.prefix(5)), [0x52, 0x4D, 1, 2, 2])
        let back = try Wire.decode(bytes)
        XCTAssertEqual(back, d)
        XCTAssertTrue(Ed25519.verify(signature: back.entries[0].signature, message: back.entries[0].signedMessage, publicKey: pair.publicKey))
    }

    func testIPv6AddressRoundTrips() throws {
        var h = heartbeat()
        h.address = WireAddress(host: "[::1]", port: 9000)!
        let d = Datagram(kind: .gossip, entries: [signed(.heartbeat(h))])
        guard case .heartbeat(let back) = try Wire.decode(Wire.encode(d)).entries[0].statement else { return XCTFail() }
        XCTAssertEqual(back.address.description, "[::1]:9000")
    }

    func testSignalsThatCannotBeReadStayNull() throws {
        var h = heartbeat()
        h.signals = Signals(load: 0.5)
        guard case .heartbeat(let back) = try Wire.decode(Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(h))]))).entries[0].statement
        else { return XCTFail() }
        XCTAssertEqual(back.signals, Signals(load: 0.5))
        XCTAssertNil(back.signals.battery)
        XCTAssertNil(back.signals.onBattery)
    }

    /// Idle: mask 0x40 with flags bit 0x04, and idle_s as whole minutes (saturating) under mask 0x80.
    func testIdleTravelsAsAFlagAndMinutes() throws {
        var h = heartbeat()
        h.signals = Signals(idle: true, idleSeconds: 5_430)
        let body = Wire.encodeBody(.heartbeat(h))
        XCTAssertEqual(Array(body.suffix(4)), [0xC0, 0x04, 0x00, 90])     // mask, flags, 90 minutes
        guard case .heartbeat(let back) = try Wire.decode(Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(h))]))).entries[0].statement
        else { return XCTFail() }
        XCTAssertEqual(back.signals, Signals(idle: true, idleSeconds: 5_400))
        XCTAssertEqual(back.signals, h.signals.quantized)

        h.signals = Signals(idle: false)
        XCTAssertEqual(Array(Wire.encodeBody(.heartbeat(h)).suffix(2)), [0x40, 0x00])
        h.signals = Signals(idle: true, idleSeconds: 10_000_000)      // beyond 65535 minutes: saturates
        XCTAssertEqual(Array(Wire.encodeBody(.heartbeat(h)).suffix(2)), [0xFF, 0xFF])

        // Flag bits above 0x04 are still rejected.
        var bytes = Wire.encodeBody(.heartbeat(Heartbeat(name: "n", incarnation: 1, seq: 1, address: WireAddress(ip: [], port: 1))))
        bytes[bytes.count - 1] = 0x08
        var r = ByteReader(bytes)
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, &r))
    }

    func testASignatureDoesNotCoverAnotherKindOfStatement() {
        let hb = Statement.heartbeat(heartbeat())
        let body = Wire.encodeBody(hb)
        let sig = pair.sign(Wire.signedMessage(for: hb, body: body))
        let asAccusation = Statement.accusation(Accusation(accuser: "x", kind: .dead, target: "y", incarnation: 1))
        XCTAssertFalse(Ed25519.verify(signature: sig, message: Wire.signedMessage(for: asAccusation, body: body), publicKey: pair.publicKey))
    }

    func testStructuralErrorsAreRejected() {
        let good = Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(heartbeat()))]))
        XCTAssertThrowsError(try Wire.decode([UInt8](repeating: 0, count: 1201)))        // oversized
        XCTAssertThrowsError(try Wire.decode(Array(good.dropLast())))                   // truncated
        XCTAssertThrowsError(try Wire.decode(good + [0]))                               // trailing
        var v = good; v[2] = 2
        XCTAssertThrowsError(try Wire.decode(v))                                        // version
        var m = good; m[0] = 0
        XCTAssertThrowsError(try Wire.decode(m))                                        // magic
        let acc = signed(.accusation(Accusation(accuser: "a", kind: .suspect, target: "b", incarnation: 1)))
        XCTAssertThrowsError(try Wire.decode(Wire.encode(Datagram(kind: .gossip, entries: [acc]))),
                             "the first entry must be the sender's heartbeat")
        XCTAssertThrowsError(try Wire.decode(Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(heartbeat("../etc")))]))),
                             "names must be valid node names")
    }

    func testFullDatagramFitsTheMTUBudget() {
        // The packer never exceeds 1200 bytes: check the arithmetic it relies on.
        let e = signed(.heartbeat(heartbeat()))
        let d = Datagram(kind: .gossip, entries: [SignedEntry](repeating: e, count: 6))
        XCTAssertEqual(Wire.encode(d).count, d.encodedSize)
        XCTAssertLessThanOrEqual(Datagram(kind: .gossip, entries: [e]).encodedSize, Wire.maxDatagramSize)
    }

    /// 100,000 random and mutated datagrams: the decoder only ever returns or throws.
    func testDecoderSurvivesRandomAndMutatedInput() {
        var rng = SplitMix64(seed: 42)
        let seeds: [[UInt8]] = [
            Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(heartbeat())),
                                                         signed(.accusation(Accusation(accuser: "a", kind: .suspect, target: "b", incarnation: 3)))])),
            Wire.encode(Datagram(kind: .syncReply, entries: [signed(.heartbeat(Heartbeat(name: "n", incarnation: 1, seq: 1, address: WireAddress(ip: [], port: 1))))])),
        ]
        var decoded = 0, rejected = 0
        for i in 0..<100_000 {
            var d: [UInt8]
            switch i % 5 {
            case 0:
                d = (0..<Int.random(in: 0...1300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:
                d = seeds[i % 2]
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    let at = Int.random(in: 0..<d.count, using: &rng)
                    d[at] = UInt8.random(in: 0...255, using: &rng)
                }
            case 2:
                d = Array(seeds[i % 2].prefix(Int.random(in: 0...seeds[i % 2].count, using: &rng)))
            case 3:
                // Keep the header valid so the body parsers get exercised.
                d = Array(seeds[0].prefix(5)) + (0..<Int.random(in: 0...400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:
                d = seeds[i % 2]
                let at = Int.random(in: 0..<d.count, using: &rng)
                d.insert(contentsOf: (0..<Int.random(in: 1...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            }
            if (try? Wire.decode(d)) != nil { decoded += 1 } else { rejected += 1 }
        }
        print("decoder fuzz: \(decoded) decoded, \(rejected) rejected, no crash")
        XCTAssertEqual(decoded + rejected, 100_000)
        XCTAssertGreaterThan(rejected, 50_000)
    }
}
