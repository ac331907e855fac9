import XCTest
import RoleMeshCore

/// Beats between signed heartbeats (protocol.md 3.6, 6.6, 7.2): cheap, and never fresh twice.
extension MembershipTests {
    func beats(_ actions: [MembershipAction]) -> [(Beat, WireAddress)] {
        actions.compactMap { if case .beat(let b, let to) = $0 { return (b, to) }; return nil }
    }

    /// A quiet mesh sends beats, with a signed round only every `refreshEvery`; nobody is suspected.
    func testAQuietMeshSendsBeatsAndSignsOnlyNowAndThen() {
        make(["n1", "n2", "n3", "n4"])
        run(1_000)
        var signed = 0, beat = 0
        let seqBefore = nodes["n1"]!.me.seq
        let end = now + 1_000
        while now < end {
            now += 10
            for n in nodes.keys.sorted() {
                let actions = nodes[n]!.tick(now: now)
                if n == "n1" {
                    beat += beats(actions).count
                    signed += actions.filter { if case .send = $0 { return true }; return false }.count
                }
                route(actions, from: n)
            }
            run(0)
            while !inbox.isEmpty { run(10) }
        }
        XCTAssertGreaterThan(beat, 10, "ten rounds of beats to two watchers")
        XCTAssertLessThanOrEqual(signed, 2 * 2, "at most a signed round or so in 1 s (fast: refresh every 2 s)")
        XCTAssertLessThan(nodes["n1"]!.me.seq - seqBefore, 6, "beats do not raise seq (sync answers and refreshes do)")
        for (_, core) in nodes { XCTAssertEqual(core.snapshot(now: now).filter { $0.state == .alive }.count, 4) }
    }

    /// The same beat twice, a beat naming the receiver (reflected back under the shared pair key),
    /// or one naming another device than the one whose key sealed it: none counts as heard.
    func testABeatIsFreshOnceAndOnlyFromItsOwnDevice() {
        make(["n1", "n2", "n3"])
        run(500)
        let n1 = nodes["n1"]!
        let held = n1.snapshot(now: now).first { $0.name == "n2" }!
        let v = nodes["n2"]!.me
        let b = Beat(name: "n2", incarnation: v.incarnation, seq: v.seq, count: 1_000)
        let replays = n1.dropped.replay
        _ = n1.receive(b, sender: "n2", now: now + 100)
        XCTAssertEqual(n1.dropped.replay, replays)
        _ = n1.receive(b, sender: "n2", now: now + 200)
        XCTAssertEqual(n1.dropped.replay, replays + 1, "the second copy is a replay")
        _ = n1.receive(Beat(name: "n1", incarnation: 1, seq: 1_000, count: 5_000), sender: "n2", now: now + 300)
        _ = n1.receive(Beat(name: "n3", incarnation: 9, seq: 1, count: 1), sender: "n2", now: now + 300)
        XCTAssertEqual(n1.dropped.replay, replays + 3, "reflected, and another device's name")
        var older = b
        older.seq = held.incarnation == v.incarnation ? 0 : v.seq
        older.count = 5_000
        _ = n1.receive(older, sender: "n2", now: now + 300)
        XCTAssertEqual(n1.dropped.replay, replays + 4, "a beat older than the heartbeat held")
    }

    /// Beats captured from a node that then dies do not keep it alive when played back.
    func testReplayedBeatsDoNotKeepADeadNodeAlive() {
        make(["n1", "n2", "n3", "n4"])
        run(500)
        // Capture what n4 sends for a while (it is delivered too).
        var captured: [(Beat, WireAddress)] = []
        let end = now + 500
        while now < end {
            now += 10
            for n in nodes.keys.sorted() {
                let actions = nodes[n]!.tick(now: now)
                if n == "n4" { captured += beats(actions) }
                route(actions, from: n)
            }
            run(0)
        }
        XCTAssertFalse(captured.isEmpty)
        // n4 dies; an attacker plays its beats back to everyone, again and again.
        for _ in 0..<16 {
            for (b, to) in captured {
                if let target = nodes.keys.first(where: { address($0) == to }), target != "n4" {
                    route(nodes[target]!.receive(b, sender: "n4", now: now), from: target)
                }
            }
            run(100, down: ["n4"])
        }
        for n in ["n1", "n2", "n3"] { XCTAssertEqual(nodes[n]!.state(of: "n4"), .dead, "\(n) still holds n4") }
    }

    /// A sync request is answered with a heartbeat the asker does not hold yet: between signed rounds
    /// it holds our current one, and the same bytes again would be a duplicate that proves nothing
    /// (a watcher whose rings differ from ours asks exactly to learn whether we are up). The same
    /// goes for a push of news.
    func testASyncReplyLeadsWithAFreshHeartbeat() {
        make(["n1", "n2"])
        run(500)
        let before = nodes["n2"]!.me.version
        var ask = nodes["n1"]!.me
        ask.seq += 100
        ask.syncRequest = true
        let body = Wire.encodeBody(.heartbeat(ask))
        let lead = SignedEntry(statement: .heartbeat(ask), body: body, signature: keys["n1"]!.sign(Wire.signedMessage(for: .heartbeat(ask), body: body)))
        let actions = nodes["n2"]!.receive(Datagram(kind: .syncRequest, entries: [lead]), from: address("n1"), now: now + 1)
        let replies = actions.compactMap { if case .send(let d, _) = $0, d.kind == .syncReply { return d } else { return nil } }
        XCTAssertEqual(replies.count, 1)
        guard case .heartbeat(let first)? = replies.first?.entries.first?.statement else { return XCTFail("no reply") }
        XCTAssertGreaterThan(first.version, before, "the reply's lead is news to the asker")
    }

    /// A node that keeps asking us (sync requests) although our rings do not make it our watcher gets
    /// our beats for a while: its rings differ from ours, it thinks it watches us, and otherwise it
    /// would question us every 3/4 `suspectAfter` and suspect us at the first slow answer.
    func testAnAskerOutsideOurWatchersGetsOurBeatsForAWhile() {
        let names = (1...6).map { "n\($0)" }
        make(names)
        run(1_000)
        // Someone that n1's beats do not go to.
        var sentTo: Set<WireAddress> = []
        for t in 1...30 {
            for a in nodes["n1"]!.tick(now: now + Millis(t * 10)) {
                switch a {
                case .beat(_, let to), .send(_, let to): sentTo.insert(to)
                default: break
                }
            }
        }
        now += 300
        guard let outsider = names.dropFirst().first(where: { !sentTo.contains(address($0)) }) else { return XCTFail("n1 beats to everyone") }
        var ask = nodes[outsider]!.me
        ask.seq += 100
        ask.syncRequest = true
        let body = Wire.encodeBody(.heartbeat(ask))
        let lead = SignedEntry(statement: .heartbeat(ask), body: body, signature: keys[outsider]!.sign(Wire.signedMessage(for: .heartbeat(ask), body: body)))
        func sendAsk(_ seq: UInt64, at t: Millis) {
            var hb = ask
            hb.seq = seq
            let body = Wire.encodeBody(.heartbeat(hb))
            let lead = SignedEntry(statement: .heartbeat(hb), body: body, signature: keys[outsider]!.sign(Wire.signedMessage(for: .heartbeat(hb), body: body)))
            _ = nodes["n1"]!.receive(Datagram(kind: .syncRequest, entries: [lead]), from: address(outsider), now: t)
        }
        _ = lead
        sendAsk(ask.seq, at: now)
        now += 300
        sendAsk(ask.seq + 1, at: now)
        var reached = false
        for t in 1...20 {
            for a in nodes["n1"]!.tick(now: now + Millis(t * 10)) {
                switch a {
                case .beat(_, let to), .send(_, let to): if to == address(outsider) { reached = true }
                default: break
                }
            }
        }
        XCTAssertTrue(reached, "\(outsider) asked n1 and got no beat")
    }

    /// A beat ahead of the heartbeat held (that round's signed heartbeat was lost) counts as heard
    /// and asks the sender for its heartbeat.
    func testABeatAheadOfTheHeldHeartbeatAsksForIt() {
        make(["n1", "n2"])
        run(500)
        let v = nodes["n2"]!.me
        let actions = nodes["n1"]!.receive(Beat(name: "n2", incarnation: v.incarnation, seq: v.seq + 5, count: 1),
                                           sender: "n2", now: now + 1)
        let asks = actions.compactMap { if case .send(let d, let to) = $0, d.kind == .syncRequest { return to }; return nil }
        XCTAssertEqual(asks, [address("n2")])
        XCTAssertTrue(nodes["n1"]!.receive(Beat(name: "n2", incarnation: v.incarnation, seq: v.seq + 5, count: 2),
                                           sender: "n2", now: now + 2).allSatisfy {
            if case .send = $0 { return false }; return true
        }, "asked once, not on every beat")
    }
}

final class BeatWireTests: XCTestCase {
    func testRoundTripAndUnknownFieldsAreSkipped() throws {
        let b = Beat(name: "laptop", incarnation: 7, seq: 300, count: 12)
        XCTAssertEqual(try Beat.decode(Beat.encode(b)), b)
        XCTAssertLessThanOrEqual(Beat.encode(b).count, 20, "a beat is small")
        // A later version's field (tag 9) is skipped.
        XCTAssertEqual(try Beat.decode(Beat.encode(b) + [9, 2, 0xaa, 0xbb]), b)
    }

    /// The example in protocol.md 3.6, byte for byte.
    func testTheProtocolExampleIsTrue() throws {
        let bytes: [UInt8] = [0x01, 0x04, 0x64, 0x65, 0x73, 0x6b, 0x02, 0x01, 0x04, 0x03, 0x01, 0x07, 0x04, 0x01, 0x03]
        XCTAssertEqual(Beat.encode(Beat(name: "desk", incarnation: 4, seq: 7, count: 3)), bytes)
        XCTAssertEqual(bytes.count + Envelope.overhead, 48)
    }

    func testMalformedBeatsAreRejected() {
        let good = Beat.encode(Beat(name: "pi", incarnation: 1, seq: 1, count: 1))
        for cut in 0..<good.count { XCTAssertThrowsError(try Beat.decode(Array(good.prefix(cut)))) }
        XCTAssertThrowsError(try Beat.decode(Beat.encode(Beat(name: "pi", incarnation: 1, seq: 1, count: 0))), "count starts at 1")
        XCTAssertThrowsError(try Beat.decode(Beat.encode(Beat(name: "pi", incarnation: 1 << 50, seq: 1, count: 1))))
        XCTAssertThrowsError(try Beat.decode([1, 2, 0x2f, 0x2f, 2, 1, 1, 3, 1, 1, 4, 1, 1]), "not a name")
        XCTAssertThrowsError(try Beat.decode([2, 1, 1, 1, 2, 0x70, 0x69, 3, 1, 1, 4, 1, 1]), "fields out of order")
    }

    /// Sealed as envelope frame 3 and opened as a beat from the pair's other device; one parked
    /// behind a hello goes out as a beat once the address is proven.
    func testABeatTravelsAsItsOwnFrame() {
        let keys = ["desk", "laptop"].enumerated().map { ($0.element, Ed25519.KeyPair(seed: [UInt8](repeating: UInt8(30 + $0.offset), count: 32))) }
        let trusted = Dictionary(uniqueKeysWithValues: keys.map { ($0.0, $0.1.publicKey) })
        let desk = SecureGossip(myName: "desk", keyPair: keys[0].1, trusted: trusted)
        let laptop = SecureGossip(myName: "laptop", keyPair: keys[1].1, trusted: trusted)
        let deskAt = WireAddress(ip: [127, 0, 0, 2], port: 7946), laptopAt = WireAddress(ip: [127, 0, 0, 3], port: 7946)
        let beat = Beat.encode(Beat(name: "desk", incarnation: 1, seq: 4, count: 2))
        let hello = desk.send(beat, frame: .beat, to: laptopAt, expected: "laptop", now: 0)
        XCTAssertEqual(hello.count, 1)
        let answer = laptop.receive(hello[0].bytes, from: deskAt, now: 1).1
        let out = desk.receive(answer[0].bytes, from: laptopAt, now: 2).1
        var got: [[UInt8]] = []
        for o in out { if case .beat(let plain, let peer) = laptop.receive(o.bytes, from: deskAt, now: 3).0, peer == "desk" { got.append(plain) } }
        XCTAssertEqual(got, [beat])
        let direct = desk.send(beat, frame: .beat, to: laptopAt, expected: "laptop", now: 4)
        XCTAssertEqual(direct.count, 1)
        XCTAssertEqual(direct[0].bytes.count, Envelope.overhead + beat.count)
    }
}
