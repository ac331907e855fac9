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

    /// A probe request (entry type 3, protocol.md 5a): the example bytes, its own signature domain,
    /// a round trip, and an earlier reader's view (an unknown entry type is skipped).
    func testAProbeRequestIsTheProtocolsExampleAndTravels() throws {
        let p = ProbeRequest(asker: "desk", target: "laptop", incarnation: 3)
        XCTAssertEqual(Wire.encodeBody(.probe(p)), [0x01, 0x04, 0x64, 0x65, 0x73, 0x6b, 0x03, 0x06, 0x6c, 0x61, 0x70, 0x74, 0x6f, 0x70, 0x04, 0x01, 0x03])
        let entry = signed(.probe(p))
        XCTAssertEqual(Array(entry.signedMessage.prefix(17)), Array("rolemesh/2 probe\0".utf8))
        let d = Datagram(kind: .gossip, entries: [signed(.heartbeat(heartbeat())), entry])
        let bytes = Wire.encode(d)
        XCTAssertEqual(bytes[2 + d.entries[0].encodedSize], 3, "entry type 3")
        XCTAssertEqual(try Wire.decode(bytes), d)
        // The same entry under a type this version does not know is skipped, as an earlier reader skips type 3.
        var unknown = bytes
        unknown[2 + d.entries[0].encodedSize] = 9
        XCTAssertEqual(try Wire.decode(unknown).entries.count, 1)
    }

    func testHeartbeatAndAccusationRoundTrip() throws {
        var request = heartbeat()
        request.syncRequest = true      // a sync request's entry 0 carries the signed flag (4, 0x02)
        let hb = signed(.heartbeat(request))
        let acc = signed(.accusation(Accusation(accuser: "desk", kind: .dead, target: "laptop", incarnation: 9)))
        let d = Datagram(kind: .syncRequest, entries: [hb, acc])
        let bytes = Wire.encode(d)
        XCTAssertEqual(bytes.count, d.encodedSize)
        XCTAssertEqual(Array(bytes.prefix(3)), [2, 2, 1])      // version 2, sync request, a heartbeat entry
        let back = try Wire.decode(bytes)
        XCTAssertEqual(back, d)
        XCTAssertTrue(Ed25519.verify(signature: back.entries[0].signature, message: back.entries[0].signedMessage, publicKey: pair.publicKey))
    }

    /// Entries share their storage between copies (a relayed record is held by every member table);
    /// a copy that is changed must not change the others, and equality is by content.
    func testASignedEntryCopyIsAValue() throws {
        let original = signed(.heartbeat(heartbeat()))
        var forged = original
        forged.signature = [UInt8](repeating: 1, count: 64)
        XCTAssertNotEqual(forged, original)
        XCTAssertNotEqual(original.signature, forged.signature)
        XCTAssertTrue(Ed25519.verify(signature: original.signature, message: original.signedMessage, publicKey: pair.publicKey))
        var edited = original
        edited.statement = .heartbeat(heartbeat(seq: 8))
        XCTAssertEqual(original.heartbeat?.seq, 7)
        XCTAssertEqual(edited.heartbeat?.seq, 8)
        XCTAssertEqual(edited.body, original.body, "only the field that was set changes")
        // Equal content in separate storage is equal; a decoded copy is equal to what was encoded.
        XCTAssertEqual(signed(.heartbeat(heartbeat())), original)
        XCTAssertEqual(try Wire.decode(Wire.encode(Datagram(kind: .gossip, entries: [original]))).entries[0], original)
        XCTAssertNil(signed(.accusation(Accusation(accuser: "a", kind: .suspect, target: "b", incarnation: 1))).heartbeat)
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

    /// Idle: field 22 (a boolean) and field 23 (whole minutes, saturating).
    func testIdleTravelsAsAFieldAndMinutes() throws {
        var h = heartbeat()
        h.signals = Signals(idle: true, idleSeconds: 5_430)
        let body = Wire.encodeBody(.heartbeat(h))
        XCTAssertEqual(Array(body.suffix(7)), [22, 1, 1, 23, 2, 0x00, 90])     // idle = 1, 90 minutes
        guard case .heartbeat(let back) = try Wire.decode(Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(h))]))).entries[0].statement
        else { return XCTFail() }
        XCTAssertEqual(back.signals, Signals(idle: true, idleSeconds: 5_400))
        XCTAssertEqual(back.signals, h.signals.quantized)

        h.signals = Signals(idle: false)
        XCTAssertEqual(Array(Wire.encodeBody(.heartbeat(h)).suffix(3)), [22, 1, 0])
        h.signals = Signals(idle: true, idleSeconds: 10_000_000)      // beyond 65535 minutes: saturates
        XCTAssertEqual(Array(Wire.encodeBody(.heartbeat(h)).suffix(2)), [0xFF, 0xFF])

        // A known field with a bad value or length rejects the statement.
        let bare = Wire.encodeBody(.heartbeat(Heartbeat(name: "n", incarnation: 1, seq: 1, address: WireAddress(ip: [], port: 1))))
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, bare + [22, 1, 2]), "a boolean is 0 or 1")
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, bare + [22, 2, 0, 1]), "a boolean is one byte")
    }

    /// The version rules (protocol.md 2.3): a field or an entry type this version does not know is
    /// skipped, the body is kept byte for byte (so its signature still verifies and relays carry it).
    func testUnknownFieldsAndEntriesAreSkipped() throws {
        let h = heartbeat()
        var body = Wire.encodeBody(.heartbeat(h))
        body += [200, 3, 0xAA, 0xBB, 0xCC]       // a later version's field, after the known ones
        let sig = pair.sign(Wire.signedMessage(for: .heartbeat(h), body: body))
        var w = [UInt8]([2, 1])
        w += [1, UInt8((body.count + 64) >> 8), UInt8((body.count + 64) & 0xff)] + body + sig
        w += [99, 0, 4, 1, 2, 3, 4]              // a later version's entry type
        let d = try Wire.decode(w)
        XCTAssertEqual(d.entries.count, 1)
        XCTAssertEqual(d.entries[0].body, body, "the unknown field stays in the body")
        guard case .heartbeat(let back) = d.entries[0].statement else { return XCTFail() }
        XCTAssertEqual(back, h)
        XCTAssertTrue(Ed25519.verify(signature: d.entries[0].signature, message: d.entries[0].signedMessage, publicKey: pair.publicKey))
        XCTAssertEqual(Wire.encode(Datagram(kind: .gossip, entries: d.entries)), Array(w.prefix(w.count - 7)),
                       "re-encoding a relayed entry gives back the bytes it came with")

        // Order rules: fields out of order or a single-valued field twice reject the statement;
        // a repeated role is fine; required fields must be there.
        let name: [UInt8] = [1, 1, 0x6e], inc: [UInt8] = [2, 8, 0, 0, 0, 0, 0, 0, 0, 1], seq: [UInt8] = [3, 8, 0, 0, 0, 0, 0, 0, 0, 1]
        XCTAssertNoThrow(try Wire.decodeBody(type: 1, name + inc + seq + [7, 1, 0x61, 7, 1, 0x62]))
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, inc + name + seq))
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, name + inc + inc + seq))
        XCTAssertThrowsError(try Wire.decodeBody(type: 1, name + inc), "seq is required")
        XCTAssertNil(try Wire.decodeBody(type: 42, name), "an unknown type is not an error")
        // An unknown first entry: the sender's heartbeat must lead.
        XCTAssertThrowsError(try Wire.decode([2, 1, 99, 0, 0] + Array(w.dropFirst(2))))
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
        XCTAssertThrowsError(try Wire.decode([UInt8](repeating: 0, count: Wire.maxDatagramSize + 1)))   // oversized
        XCTAssertThrowsError(try Wire.decode(Array(good.dropLast())))                   // truncated
        XCTAssertThrowsError(try Wire.decode(good + [0]))                               // a torn entry after the last
        var v = good; v[0] = 3
        XCTAssertThrowsError(try Wire.decode(v))                                        // version
        var k = good; k[1] = 9
        XCTAssertThrowsError(try Wire.decode(k))                                        // kind
        XCTAssertThrowsError(try Wire.decode([2, 1]))                                   // no entries
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
                d = Array(seeds[0].prefix(2)) + (0..<Int.random(in: 0...400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:
                d = seeds[i % 2]
                let at = Int.random(in: 0..<d.count, using: &rng)
                d.insert(contentsOf: (0..<Int.random(in: 1...20, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            }
            if (try? Wire.decode(d)) != nil { decoded += 1 } else { rejected += 1 }
        }
        print("decoder fuzz: \(decoded) decoded, \(rejected) rejected, no crash")
        // What the decoder rejects, the core counts as malformed and nothing else.
        let core = Membership(config: .init(name: "me", address: WireAddress(ip: [127, 0, 0, 1], port: 1)),
                              crypto: KeyRing(keyPair: pair, trusted: [:]), seed: 1, now: 0)
        var fed = 0
        for i in 0..<2_000 {
            let d = Array(seeds[i % 2].prefix(Int.random(in: 0..<seeds[i % 2].count, using: &rng)))
            guard (try? Wire.decode(d)) == nil else { continue }
            fed += 1
            XCTAssertTrue(core.receive(bytes: d, from: WireAddress(ip: [127, 0, 0, 9], port: 1), now: 0).isEmpty)
        }
        XCTAssertEqual(core.dropped.malformed, fed)
        XCTAssertEqual(core.dropped, { var c = DropCounters(); c.malformed = fed; return c }())
        XCTAssertEqual(decoded + rejected, 100_000)
        XCTAssertGreaterThan(rejected, 50_000)
    }

    /// A heartbeat from a later version, with a field this one does not know, is accepted (its
    /// signature covers the body as carried) and relayed with the field intact.
    func testAnUnknownFieldIsRelayedIntact() throws {
        let keys = ["n1", "n2", "n3"].map { ($0, Ed25519.KeyPair(seed: [UInt8](repeating: $0.last!.asciiValue!, count: 32))) }
        let trusted = Dictionary(uniqueKeysWithValues: keys.map { ($0.0, $0.1.publicKey) })
        let key = Dictionary(uniqueKeysWithValues: keys)
        func at(_ n: String) -> WireAddress { WireAddress(ip: [127, 0, 0, n.last!.asciiValue! - 47], port: 7946) }
        let n1 = Membership(config: .init(name: "n1", address: at("n1"), profile: .fast),
                            crypto: KeyRing(keyPair: key["n1"]!, trusted: trusted), seed: 1, now: 0)
        func entry(_ h: Heartbeat, extra: [UInt8] = []) -> SignedEntry {
            let body = Wire.encodeBody(.heartbeat(h)) + extra
            return SignedEntry(statement: .heartbeat(h), body: body, signature: key[h.name]!.sign(Wire.signedMessage(for: .heartbeat(h), body: body)))
        }
        let future = entry(Heartbeat(name: "n2", incarnation: 1, seq: 1, address: at("n2"), roles: ["build"]), extra: [240, 3, 7, 7, 7])
        var actions = n1.receive(bytes: Wire.encode(Datagram(kind: .gossip, entries: [entry(Heartbeat(name: "n3", incarnation: 1, seq: 1, address: at("n3"))), future])),
                                 from: at("n3"), now: 10)
        XCTAssertEqual(n1.snapshot(now: 10).first { $0.name == "n2" }?.roles, ["build"])
        XCTAssertEqual(n1.dropped, DropCounters())
        for t in 1...40 { actions += n1.tick(now: 10 + Millis(t * 50)) }
        let relayed = actions.flatMap { a -> [SignedEntry] in
            if case .send(let d, let to) = a, to == at("n3") { return try! Wire.decode(Wire.encode(d)).entries } else { return [] }
        }
        let copy = try XCTUnwrap(relayed.first { $0.body == future.body }, "n2's heartbeat went on to n3 with its unknown field")
        XCTAssertEqual(copy.signature, future.signature)
        XCTAssertTrue(Ed25519.verify(signature: copy.signature, message: copy.signedMessage, publicKey: trusted["n2"]!))
    }
}
