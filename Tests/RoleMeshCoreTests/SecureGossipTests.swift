import XCTest
import RoleMeshCore
import Dispatch

/// Private gossip (protocol.md 2): pair keys, envelopes, proof of key before content.
final class SecureGossipTests: XCTestCase {
    let keys: [String: Ed25519.KeyPair] = Dictionary(uniqueKeysWithValues: ["desk", "laptop", "pi"].enumerated().map {
        ($0.element, Ed25519.KeyPair(seed: [UInt8](repeating: UInt8(10 + $0.offset), count: 32)))
    })
    var trusted: [String: [UInt8]] { keys.mapValues(\.publicKey) }
    let deskAt = WireAddress(ip: [127, 0, 0, 2], port: 7946)
    let laptopAt = WireAddress(ip: [127, 0, 0, 3], port: 7946)

    func link(_ name: String) -> SecureGossip { SecureGossip(myName: name, keyPair: keys[name]!, trusted: trusted) }

    func testBothEndsDeriveTheSamePairKeyAndTag() {
        let a = PairKey(me: keys["desk"]!, peer: "laptop", peerPublic: keys["laptop"]!.publicKey)!
        let b = PairKey(me: keys["laptop"]!, peer: "desk", peerPublic: keys["desk"]!.publicKey)!
        XCTAssertEqual(a.key, b.key)
        XCTAssertEqual(a.tag, b.tag)
        let c = PairKey(me: keys["desk"]!, peer: "pi", peerPublic: keys["pi"]!.publicKey)!
        XCTAssertNotEqual(a.key, c.key)
        XCTAssertNotEqual(a.tag, c.tag)
        XCTAssertEqual(a.tag.count, 8)
    }

    /// Nothing about the mesh goes to a new address until the device there answered a challenge;
    /// then what waited goes out sealed, and only the pair can open it.
    func testProofOfKeyComesBeforeContent() {
        let desk = link("desk"), laptop = link("laptop")
        let secret = Array("laptop's state: role build, battery 0.42".utf8)
        // desk knows only a seed address: one hello per trusted device, no content.
        let first = desk.send(secret, to: laptopAt, expected: nil, now: 0)
        XCTAssertEqual(first.count, 2, "a hello to each other trusted device")
        XCTAssertTrue(first.allSatisfy { $0.bytes.count == Envelope.overhead + 32 }, "hellos are small and fixed-size")
        XCTAssertTrue(desk.send(secret, to: laptopAt, expected: nil, now: 10).isEmpty, "hellos are not repeated within 500 ms")

        // laptop opens the one meant for it and answers; the other is not its pair (unknown).
        var replies: [SecureGossip.Outgoing] = []
        for h in first {
            let (got, out) = laptop.receive(h.bytes, from: deskAt, now: 20)
            guard case .nothing = got else { return XCTFail("a hello carries no gossip") }
            replies += out
        }
        XCTAssertEqual(laptop.counters.unknownPair, 1)
        XCTAssertEqual(replies.count, 1)
        XCTAssertNil(laptop.provenPeer(at: deskAt), "desk has not answered laptop's challenge yet")

        // desk: the answer echoes its challenge → laptop proven; its echo and the parked gossip go out.
        let (_, out) = desk.receive(replies[0].bytes, from: laptopAt, now: 30)
        XCTAssertEqual(desk.provenPeer(at: laptopAt), "laptop")
        XCTAssertEqual(out.count, 3, "the echo, then the two parked datagrams")
        var delivered: [[UInt8]] = []
        for o in out {
            XCTAssertEqual(o.to, laptopAt)
            if case .gossip(let plain, let peer) = laptop.receive(o.bytes, from: deskAt, now: 40).0 {
                XCTAssertEqual(peer, "desk"); delivered.append(plain)
            }
        }
        XCTAssertEqual(delivered, [secret, secret])
        XCTAssertEqual(laptop.provenPeer(at: deskAt), "desk")
        // Now sends are sealed at once, and nothing readable is on the wire.
        let sealed = laptop.send(secret, to: deskAt, expected: "desk", now: 50)
        XCTAssertEqual(sealed.count, 1)
        XCTAssertEqual(sealed[0].bytes.count, secret.count + Envelope.overhead)
        for o in first + replies + out + sealed {
            XCTAssertNil(find(Array("laptop".utf8), in: o.bytes)); XCTAssertNil(find(Array("desk".utf8), in: o.bytes))
            XCTAssertNil(find(Array("build".utf8), in: o.bytes))
        }
    }

    /// A captured hello replayed later, or a captured answer, proves nothing.
    func testAReplayedAnswerProvesNothing() {
        let desk = link("desk"), laptop = link("laptop")
        let hello = desk.send([1], to: laptopAt, expected: "laptop", now: 0)
        XCTAssertEqual(hello.count, 1)
        let answer = laptop.receive(hello[0].bytes, from: deskAt, now: 0).1
        _ = desk.receive(answer[0].bytes, from: laptopAt, now: 0)
        XCTAssertEqual(desk.provenPeer(at: laptopAt), "laptop")
        // Elsewhere, the attacker replays laptop's answer to desk from a new address.
        let elsewhere = WireAddress(ip: [10, 0, 0, 9], port: 7946)
        _ = desk.send([2], to: elsewhere, expected: "laptop", now: 1_000)
        _ = desk.receive(answer[0].bytes, from: elsewhere, now: 1_000)
        XCTAssertNil(desk.provenPeer(at: elsewhere), "the old echo does not match the new challenge")
    }

    /// A tampered or random datagram costs one AEAD check at most, changes nothing, is counted.
    func testTamperedAndRandomInputIsCountedAndChangesNothing() {
        let desk = link("desk"), laptop = link("laptop")
        let hello = desk.send([1], to: laptopAt, expected: "laptop", now: 0)[0].bytes
        var bad = hello; bad[bad.count - 1] ^= 1
        let (got, out) = laptop.receive(bad, from: deskAt, now: 0)
        guard case .nothing = got else { return XCTFail() }
        XCTAssertTrue(out.isEmpty)
        XCTAssertEqual(laptop.counters.badMac, 1)
        var rng = SplitMix64(seed: 9)
        for i in 0..<20_000 {
            var d = (0..<Int.random(in: 0...1300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if i % 2 == 0, d.count > 8 { d.replaceSubrange(0..<8, with: hello[0..<8]) }   // a known tag, junk after it
            _ = laptop.receive(d, from: deskAt, now: 0)
        }
        let c = laptop.counters
        XCTAssertEqual(c.badMac + c.unknownPair + c.malformed, 20_001)
        XCTAssertNil(laptop.provenPeer(at: deskAt))
    }

    /// Cost per datagram of sealing and opening (the figure in docs/benchmarks.md).
    func testSealAndOpenCostPerDatagram() {
        let desk = link("desk"), laptop = link("laptop")
        let answer = laptop.receive(desk.send([0], to: laptopAt, expected: "laptop", now: 0)[0].bytes, from: deskAt, now: 0).1
        _ = desk.receive(answer[0].bytes, from: laptopAt, now: 0)
        let h = Heartbeat(name: "desk", incarnation: 4, seq: 7, address: deskAt, roles: ["build", "storage"],
                          signals: Signals(load: 0.3, cpus: 8, memFree: 0.61, battery: 0.42, onBattery: true, throttled: false))
        let body = Wire.encodeBody(.heartbeat(h))
        let entry = SignedEntry(statement: .heartbeat(h), body: body, signature: keys["desk"]!.sign(Wire.signedMessage(for: .heartbeat(h), body: body)))
        let d = Datagram(kind: .gossip, entries: [entry, entry, entry])
        let n = 20_000
        var sealed: [UInt8] = []
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<n { sealed = desk.send(Wire.encode(d), to: laptopAt, expected: nil, now: 1)[0].bytes }
        let t1 = DispatchTime.now().uptimeNanoseconds
        var ok = 0
        for _ in 0..<n {
            if case .gossip(let plain, _) = laptop.receive(sealed, from: deskAt, now: 1).0, (try? Wire.decode(plain)) != nil { ok += 1 }
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        XCTAssertEqual(ok, n)
        print(String(format: "gossip envelope, %d-byte datagram: encode+seal %.2f µs, open+decode %.2f µs",
                     sealed.count, Double(t1 - t0) / Double(n) / 1000, Double(t2 - t1) / Double(n) / 1000))
    }

    func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        for i in 0...(hay.count - needle.count) where Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }
}
