import XCTest
import RoleMeshCore

/// Counts signature checks, with the real Ed25519 key ring underneath.
final class CountingCrypto: StatementCrypto {
    let inner: KeyRing
    var verifies = 0
    init(_ inner: KeyRing) { self.inner = inner }
    func sign(_ message: [UInt8]) -> [UInt8] { inner.sign(message) }
    func verify(signature: [UInt8], message: [UInt8], origin: String) -> Bool? {
        verifies += 1
        return inner.verify(signature: signature, message: message, origin: origin)
    }
    func isTrusted(_ origin: String) -> Bool { inner.isTrusted(origin) }
}

/// Regression tests for the security review of the membership core (crash by one signed datagram,
/// address hijack by replay, CPU cost of junk, reflection). Real Ed25519 throughout.
final class HardeningTests: XCTestCase {
    var keys: [String: Ed25519.KeyPair] = [:]

    func key(_ name: String) -> Ed25519.KeyPair {
        if let k = keys[name] { return k }
        var seed = Array(name.utf8.prefix(31))
        seed += [UInt8](repeating: 0x5a, count: 32 - seed.count)
        let k = Ed25519.KeyPair(seed: seed)
        keys[name] = k
        return k
    }

    /// n1 → 10.0.0.1, r3 → 10.0.1.3 ...
    func address(_ name: String) -> WireAddress {
        let digits = UInt8(name.dropFirst().prefix { $0.isNumber }) ?? 200
        let group: UInt8 = name.hasPrefix("n") ? 0 : 1
        return WireAddress(ip: [10, 0, group, digits], port: 7946)
    }

    func signed(_ s: Statement, by signer: String) -> SignedEntry {
        let body = Wire.encodeBody(s)
        return SignedEntry(statement: s, body: body, signature: key(signer).sign(Wire.signedMessage(for: s, body: body)))
    }

    func heartbeat(_ name: String, inc: UInt64 = 1, seq: UInt64, address: WireAddress? = nil, sync: Bool = false) -> SignedEntry {
        signed(.heartbeat(Heartbeat(name: name, incarnation: inc, seq: seq, address: address ?? self.address(name),
                                    syncRequest: sync)), by: name)
    }

    func accusation(_ accuser: String, _ kind: AccusationKind, _ target: String, _ inc: UInt64) -> SignedEntry {
        signed(.accusation(Accusation(accuser: accuser, kind: kind, target: target, incarnation: inc)), by: accuser)
    }

    func core(_ name: String, trusting names: [String], incarnation: UInt64 = 1, profile: TimingProfile = .fast,
              bootstrap: [WireAddress] = []) -> (Membership, CountingCrypto) {
        var trusted: [String: [UInt8]] = [:]
        for n in names + [name] { trusted[n] = key(n).publicKey }
        let crypto = CountingCrypto(KeyRing(keyPair: key(name), trusted: trusted))
        let m = Membership(config: .init(name: name, address: address(name), incarnation: incarnation, profile: profile,
                                         bootstrap: bootstrap),
                           crypto: crypto, seed: 1, now: 0)
        return (m, crypto)
    }

    func sends(_ actions: [MembershipAction]) -> [(Datagram, WireAddress)] {
        actions.compactMap { if case .send(let d, let to) = $0 { return (d, to) }; return nil }
    }

    func gossip(_ entries: [SignedEntry]) -> [UInt8] { Wire.encode(Datagram(kind: .gossip, entries: entries)) }

    func state(_ m: Membership, _ node: String) -> MemberState? { m.state(of: node) }

    // MARK: - 1. Crash by one signed datagram

    func testNumbersOutOfRangeAreMalformed() throws {
        let ok = gossip([heartbeat("n2", inc: Wire.maxIncarnation, seq: Wire.maxSeq)])
        XCTAssertNoThrow(try Wire.decode(ok))
        XCTAssertThrowsError(try Wire.decode(gossip([heartbeat("n2", inc: Wire.maxIncarnation + 1, seq: 1)])))
        XCTAssertThrowsError(try Wire.decode(gossip([heartbeat("n2", inc: 1, seq: Wire.maxSeq + 1)])))
        XCTAssertThrowsError(try Wire.decode(gossip([heartbeat("n2", inc: UInt64.max, seq: UInt64.max)])))
        XCTAssertThrowsError(try Wire.decode(gossip([heartbeat("n2", seq: 1),
                                                     accusation("n2", .dead, "n1", Wire.maxIncarnation + 1)])))
        XCTAssertNoThrow(try Wire.decode(gossip([heartbeat("n2", seq: 1), accusation("n2", .dead, "n1", Wire.maxIncarnation)])))
    }

    func testDeadClaimAboutUs_AtUInt64Max_IsDroppedNotATrap() {
        let (n1, _) = core("n1", trusting: ["n2"])
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 1)]), from: address("n2"), now: 10)
        let claim = accusation("n2", .dead, "n1", UInt64.max)
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 2), claim]), from: address("n2"), now: 20)
        // The same datagram handed over already decoded (the simulation's path) meets the same rule.
        _ = n1.receive(Datagram(kind: .gossip, entries: [heartbeat("n2", seq: 3), claim]), from: address("n2"), now: 30)
        XCTAssertEqual(n1.me.incarnation, 1)
        XCTAssertEqual(n1.dropped.malformed, 2)
    }

    func testClaimAboveOurIncarnationIsIgnored_ClaimAtItIsRefuted() {
        let (n1, _) = core("n1", trusting: ["n2"], incarnation: 5)
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 1)]), from: address("n2"), now: 10)
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 2), accusation("n2", .dead, "n1", 6)]), from: address("n2"), now: 20)
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 3), accusation("n2", .suspect, "n1", 1_000)]), from: address("n2"), now: 30)
        XCTAssertEqual(n1.me.incarnation, 5, "a claim above our own incarnation cannot be legitimate")
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 4), accusation("n2", .suspect, "n1", 5)]), from: address("n2"), now: 40)
        XCTAssertEqual(n1.me.incarnation, 6)
    }

    func testRefutationSaturatesAtMaxIncarnation() {
        let (n1, _) = core("n1", trusting: ["n2"], incarnation: Wire.maxIncarnation)
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 1)]), from: address("n2"), now: 10)
        let seq = n1.me.seq
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 2), accusation("n2", .dead, "n1", Wire.maxIncarnation)]),
                       from: address("n2"), now: 20)
        XCTAssertEqual(n1.me.incarnation, Wire.maxIncarnation)
        XCTAssertGreaterThan(n1.me.seq, seq, "still a newer version")
        // A config above the range is clamped, so our own heartbeat stays decodable.
        let (n9, _) = core("n9", trusting: [], incarnation: UInt64.max)
        XCTAssertEqual(n9.me.incarnation, Wire.maxIncarnation)
    }

    /// A member of n1's five-node mesh that n1 does not watch, and its two watchers (n1's rings).
    func watchedByOthers() -> (target: String, watchers: [String], others: [String]) {
        let names = ["n1", "n2", "n3", "n4", "n5"]
        let rings = WatchRings(names: names, k: 2, keys: { WatchRings.keys($0, k: 2) })
        for t in names.dropFirst() {
            let w = rings.watchers(of: t, keys: { WatchRings.keys($0, k: 2) })
            if !w.contains("n1") { return (t, w, names.filter { $0 != t && $0 != "n1" && !w.contains($0) }) }
        }
        fatalError("every member is watched by n1")
    }

    func testOneDeadClaimDoesNotKill_ItsWatchersWordsDo() {
        let (target, watchers, others) = watchedByOthers()
        let (n1, _) = core("n1", trusting: ["n2", "n3", "n4", "n5"])
        for n in ["n2", "n3", "n4", "n5"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        _ = n1.tick(now: 20)
        // The target silent for 300 ms (fast: suspectAfter/2 = 200); the others speak.
        let t: Millis = 310
        let out = n1.receive(bytes: gossip([heartbeat(watchers[0], seq: 2), accusation(watchers[0], .dead, target, 1)]),
                             from: address(watchers[0]), now: t)
        XCTAssertEqual(state(n1, target), .alive, "one trusted key's dead claim killed a member")
        XCTAssertTrue(sends(out).contains { $0.1 == address(target) && $0.0.kind == .syncRequest },
                      "one claim makes n1 ask the member itself (a check)")
        // A member has two watchers: both words (a dead claim and a suspicion, from two keys) are
        // enough, with silence.
        _ = n1.receive(bytes: gossip([heartbeat(watchers[1], seq: 2), accusation(watchers[1], .suspect, target, 1)]),
                       from: address(watchers[1]), now: t)
        XCTAssertEqual(state(n1, target), .dead, "two words from its two watchers, after silence")
        // Words of keys that do not watch it kill nothing by themselves: n1 checks.
        let (n6, _) = core("n1", trusting: ["n2", "n3", "n4", "n5"])
        for n in ["n2", "n3", "n4", "n5"] { _ = n6.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        _ = n6.tick(now: 20)
        _ = n6.receive(bytes: gossip([heartbeat(others[0], seq: 2), accusation(others[0], .dead, target, 1)]), from: address(others[0]), now: t)
        _ = n6.receive(bytes: gossip([heartbeat(watchers[0], seq: 2), accusation(watchers[0], .suspect, target, 1)]), from: address(watchers[0]), now: t)
        XCTAssertEqual(state(n6, target), .alive, "a non-watcher's claim and one watcher's word are not enough at once")
        // The member answers the check itself: still alive, and n1 tells it of the claim (it refutes).
        let answer = n6.receive(bytes: gossip([heartbeat(target, seq: 5)]), from: address(target), now: t + 20)
        _ = n6.tick(now: t + 400)
        XCTAssertEqual(state(n6, target), .alive)
        XCTAssertTrue(sends(answer).contains { d, to in
            to == address(target) && d.entries.contains { if case .accusation(let a) = $0.statement { return a.kind == .dead }; return false }
        }, "the member that answered is told of the dead claim, so it refutes")
    }

    func testACheckThatNobodyAnswersKills() {
        let (target, _, others) = watchedByOthers()
        let (n1, _) = core("n1", trusting: ["n2", "n3", "n4", "n5"])
        for n in ["n2", "n3", "n4", "n5"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        _ = n1.tick(now: 20)
        _ = n1.receive(bytes: gossip([heartbeat(others[0], seq: 2), accusation(others[0], .dead, target, 1)]), from: address(others[0]), now: 310)
        XCTAssertEqual(state(n1, target), .alive)
        // Neither the member nor anyone n1 asked answers within the check (fast: suspectAfter/2).
        var t: Millis = 310
        while t < 310 + 400 { t += 50; _ = n1.tick(now: t) }
        XCTAssertEqual(state(n1, target), .dead, "unreachable from here and from the helpers: dead to this side")
    }

    /// A crashed node's last heartbeat may still be travelling (a relay, a sync sample) after the
    /// words against it arrived: it is not evidence it spoke since, so it wipes neither the words
    /// nor the silence, and the death goes through (it used to leave one survivor holding it alive).
    func testARelayedRecordAfterTheWordsDoesNotUndoThem() {
        let (target, w, others) = watchedByOthers()
        let (n1, _) = core("n1", trusting: ["n2", "n3", "n4", "n5"])
        for n in ["n2", "n3", "n4", "n5"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        _ = n1.tick(now: 20)
        _ = n1.receive(bytes: gossip([heartbeat(w[0], seq: 2), accusation(w[0], .dead, target, 1)]), from: address(w[0]), now: 150)
        _ = n1.receive(bytes: gossip([heartbeat(others[0], seq: 2), heartbeat(target, seq: 7)]), from: address(others[0]), now: 160)
        // A suspicion while we still heard it lately (within suspectAfter/2) is not a word here; after it is.
        _ = n1.receive(bytes: gossip([heartbeat(w[1], seq: 2), accusation(w[1], .suspect, target, 1)]), from: address(w[1]), now: 215)
        XCTAssertEqual(state(n1, target), .dead, "the relayed record moved neither the silence nor the held dead word")
        // Its own datagram is evidence: a fresh direct heartbeat at the same incarnation clears the words.
        let (n6, _) = core("n1", trusting: ["n2", "n3", "n4", "n5"])
        for n in ["n2", "n3", "n4", "n5"] { _ = n6.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        _ = n6.tick(now: 20)
        _ = n6.receive(bytes: gossip([heartbeat(w[0], seq: 2), accusation(w[0], .dead, target, 1)]), from: address(w[0]), now: 150)
        _ = n6.receive(bytes: gossip([heartbeat(target, seq: 7)]), from: address(target), now: 160)
        _ = n6.receive(bytes: gossip([heartbeat(w[1], seq: 2), accusation(w[1], .suspect, target, 1)]), from: address(w[1]), now: 215)
        _ = n6.tick(now: 320)
        XCTAssertEqual(state(n6, target), .alive, "the member spoke after the dead claim: that claim no longer counts")
    }

    func testDeadClaimNeedsSilence() {
        let (n1, _) = core("n1", trusting: ["n2", "n3", "n4", "n5"])
        for n in ["n2", "n3", "n4", "n5"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        for n in ["n3", "n4", "n5"] {
            _ = n1.receive(bytes: gossip([heartbeat(n, seq: 2), accusation(n, .dead, "n2", 1)]), from: address(n), now: 100)
        }
        XCTAssertEqual(state(n1, "n2"), .alive, "heard 90 ms ago: hearsay does not kill it")
    }

    func testDeadClaimAboutANewerIncarnationIsIgnored() {
        let (n1, _) = core("n1", trusting: ["n2", "n3"])
        for n in ["n2", "n3"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        _ = n1.receive(bytes: gossip([heartbeat("n3", seq: 2), accusation("n3", .dead, "n2", 2)]), from: address("n3"), now: 5_000)
        XCTAssertEqual(state(n1, "n2"), .alive)
        _ = n1.receive(bytes: gossip([heartbeat("n3", seq: 3), accusation("n3", .dead, "n2", Wire.maxIncarnation)]),
                       from: address("n3"), now: 5_010)
        XCTAssertEqual(state(n1, "n2"), .alive)
    }

    func testASecondHandMemberArrivingWithItsDeathClaimIsDead() {
        let (n1, _) = core("n1", trusting: ["n2", "n3", "n4"])
        // A full-state sync from n3: n2's last record and n4's claim that it died.
        _ = n1.receive(bytes: Wire.encode(Datagram(kind: .syncReply, entries: [heartbeat("n3", seq: 1), heartbeat("n2", seq: 9),
                                                                               accusation("n4", .dead, "n2", 1)])),
                       from: address("n3"), now: 10)
        XCTAssertEqual(state(n1, "n2"), .dead)
        XCTAssertEqual(state(n1, "n3"), .alive)
    }

    func testNonFiniteSignalsBecomeUnknownNotATrap() throws {
        let s = Signals(load: .nan, cpus: Int.max, memFree: .infinity, battery: -.infinity)
        XCTAssertNil(s.quantized.load)
        XCTAssertNil(s.quantized.memFree)
        XCTAssertNil(s.quantized.battery)
        let h = Heartbeat(name: "n2", incarnation: 1, seq: 1, address: address("n2"), signals: s)
        guard case .heartbeat(let back) = try Wire.decode(gossip([signed(.heartbeat(h), by: "n2")])).entries[0].statement
        else { return XCTFail() }
        XCTAssertEqual(back.signals.cpus, 65535)
        XCTAssertNil(back.signals.load)
    }

    // MARK: - 6. Address hijack by replay

    func testReplayFromAnotherAddressDoesNotMoveTheObservedAddress() {
        let (n1, _) = core("n1", trusting: ["n2"])
        let wildcard = WireAddress(ip: [0, 0, 0, 0], port: 7946)
        let captured = gossip([heartbeat("n2", seq: 1, address: wildcard)])
        _ = n1.receive(bytes: captured, from: WireAddress(ip: [10, 0, 0, 2], port: 7946), now: 10)
        func seen() -> WireAddress? { n1.snapshot(now: 20).first { $0.name == "n2" }?.address }
        XCTAssertEqual(seen(), WireAddress(ip: [10, 0, 0, 2], port: 7946))
        _ = n1.receive(bytes: captured, from: WireAddress(ip: [192, 0, 2, 66], port: 4444), now: 20)
        XCTAssertEqual(seen(), WireAddress(ip: [10, 0, 0, 2], port: 7946), "an identical replay moved the member's address")
        // A fresh version from a new place does move it (a laptop changed networks).
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 2, address: wildcard)]), from: WireAddress(ip: [10, 0, 0, 7], port: 7946), now: 30)
        XCTAssertEqual(seen(), WireAddress(ip: [10, 0, 0, 7], port: 7946))
    }

    // MARK: - 7. CPU cost of junk

    func junkAccusations(_ count: Int, inc: UInt64 = 1, seed: UInt8 = 1) -> [SignedEntry] {
        (0..<count).map { i in
            let a = Accusation(accuser: i % 2 == 0 ? "n3" : "n4", kind: i % 3 == 0 ? .dead : .suspect,
                               target: "n2", incarnation: inc)
            let s = Statement.accusation(a)
            return SignedEntry(statement: s, body: Wire.encodeBody(s), signature: [UInt8](repeating: seed &+ UInt8(i), count: 64))
        }
    }

    func testJunkBehindADuplicateHeartbeatCostsOneCheck() {
        let (n1, crypto) = core("n1", trusting: ["n2", "n3", "n4"])
        for n in ["n2", "n3", "n4"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        let current = heartbeat("n2", seq: 1)              // held: a duplicate, no check
        let attacker = WireAddress(ip: [192, 0, 2, 1], port: 5000)
        let junk = junkAccusations(11)
        let bytes = gossip([current] + junk)
        XCTAssertLessThanOrEqual(bytes.count, Wire.maxDatagramSize)
        crypto.verifies = 0
        _ = n1.receive(bytes: bytes, from: attacker, now: 20)
        XCTAssertLessThanOrEqual(crypto.verifies, 1, "checks stop at the first bad signature")
        XCTAssertEqual(n1.dropped.badSignature, 1)

        // Irrelevant junk (another incarnation, unknown target, untrusted accuser) costs nothing.
        crypto.verifies = 0
        var irrelevant = junkAccusations(4, inc: 7)
        for (accuser, target) in [("n3", "x1"), ("zz", "n2")] {
            let s = Statement.accusation(Accusation(accuser: accuser, kind: .dead, target: target, incarnation: 1))
            irrelevant.append(SignedEntry(statement: s, body: Wire.encodeBody(s), signature: [UInt8](repeating: 9, count: 64)))
        }
        _ = n1.receive(bytes: gossip([current] + irrelevant), from: attacker, now: 30)
        XCTAssertEqual(crypto.verifies, 0)
    }

    func testJunkFromOneIPIsBoundedByItsVerifyBudget() {
        let (n1, crypto) = core("n1", trusting: ["n2", "n3", "n4"])
        for n in ["n2", "n3", "n4"] { _ = n1.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: address(n), now: 10) }
        crypto.verifies = 0
        // 1000 datagrams within one second, from 1000 ports of one IP, each with fresh junk.
        for i in 0..<1000 {
            let bytes = gossip([heartbeat("n2", seq: 1)] + junkAccusations(11, seed: UInt8(truncatingIfNeeded: i)))
            _ = n1.receive(bytes: bytes, from: WireAddress(ip: [192, 0, 2, 1], port: UInt16(2000 + i)), now: 20 + Millis(i))
        }
        // 256 tokens at once, 256/s refill, 8 per failed check: ~ (256 + 256) / 8 = 64 checks.
        XCTAssertLessThanOrEqual(crypto.verifies, 70, "\(crypto.verifies) signature checks for 1000 junk datagrams")
        XCTAssertGreaterThan(n1.dropped.rateLimited, 0)
        // Another source is not starved by it.
        let before = crypto.verifies
        _ = n1.receive(bytes: gossip([heartbeat("n3", seq: 2)]), from: address("n3"), now: 1_100)
        XCTAssertEqual(crypto.verifies, before + 1)
        XCTAssertEqual(n1.snapshot(now: 1_100).first { $0.name == "n3" }?.lastHeardMs, 0)
    }

    func testAFullStateSyncOfSixtyMembersPasses() throws {
        let others = (10..<70).map { "n\($0)" }
        let (a, _) = core("n1", trusting: others + ["n2"])
        for (i, n) in others.enumerated() {
            _ = a.receive(bytes: gossip([heartbeat(n, seq: 1)]), from: WireAddress(ip: [10, 1, 0, UInt8(i)], port: 7946), now: 10)
        }
        XCTAssertEqual(a.memberCount, 61)
        let (b, bCrypto) = core("n2", trusting: others + ["n1"], bootstrap: [address("n1")])
        let requests = sends(b.start(now: 20))
        XCTAssertFalse(requests.isEmpty)
        var replies: [Datagram] = []
        for (d, to) in requests where to == address("n1") {
            XCTAssertEqual(d.kind, .syncRequest)
            // Besides the replies, n1 pushes the news of n2 to a few members (gossip).
            replies += sends(a.receive(bytes: Wire.encode(d), from: address("n2"), now: 30))
                .filter { $0.0.kind == .syncReply }.map(\.0)
        }
        XCTAssertGreaterThanOrEqual(replies.count, 2, "full state of 60 members spans several datagrams")
        for d in replies {
            _ = b.receive(bytes: Wire.encode(d), from: address("n1"), now: 40)
        }
        XCTAssertEqual(b.memberCount, 62)
        XCTAssertEqual(b.dropped, DropCounters())
        XCTAssertLessThan(bCrypto.verifies, 100)
    }

    // MARK: - 8. Reflection

    func testAFlippedKindIsMalformedAndUnanswered() {
        let (n1, _) = core("n1", trusting: ["n2"])
        var captured = gossip([heartbeat("n2", seq: 1)])
        captured[3] = DatagramKind.syncRequest.rawValue
        XCTAssertTrue(sends(n1.receive(bytes: captured, from: WireAddress(ip: [192, 0, 2, 1], port: 1), now: 10)).isEmpty)
        XCTAssertEqual(n1.dropped.malformed, 1)
        // And the other way: a sync request's flagged lead under a gossip header.
        var request = Wire.encode(Datagram(kind: .syncRequest, entries: [heartbeat("n2", seq: 2, sync: true)]))
        request[3] = DatagramKind.gossip.rawValue
        _ = n1.receive(bytes: request, from: address("n2"), now: 20)
        XCTAssertEqual(n1.dropped.malformed, 2)
        XCTAssertNil(n1.state(of: "n2"))
    }

    func testAReplayedSyncRequestGetsNoReply() {
        let (n1, _) = core("n1", trusting: ["n2", "n3"])
        _ = n1.receive(bytes: gossip([heartbeat("n3", seq: 1)]), from: address("n3"), now: 5)
        let request = Wire.encode(Datagram(kind: .syncRequest, entries: [heartbeat("n2", seq: 7, sync: true)]))
        let first = sends(n1.receive(bytes: request, from: address("n2"), now: 10))
        XCTAssertTrue(first.contains { $0.0.kind == .syncReply && $0.1 == self.address("n2") }, "a fresh request is answered")
        for (i, from) in [WireAddress(ip: [192, 0, 2, 1], port: 9), address("n2")].enumerated() {
            let again = sends(n1.receive(bytes: request, from: from, now: 10_000 + Millis(i) * 10_000))
            XCTAssertTrue(again.isEmpty, "a replayed request was answered: \(again.map(\.1))")
        }
    }

    /// n1 holds n2 dead at incarnation 1 (learned second-hand with its death claim).
    func coreHoldingN2Dead() -> (Membership, CountingCrypto) {
        let (n1, crypto) = core("n1", trusting: ["n2", "n3", "n4"])
        _ = n1.receive(bytes: Wire.encode(Datagram(kind: .syncReply, entries: [heartbeat("n3", seq: 1), heartbeat("n2", seq: 9),
                                                                               accusation("n4", .dead, "n2", 1)])),
                       from: address("n3"), now: 10)
        XCTAssertEqual(n1.state(of: "n2"), .dead)
        return (n1, crypto)
    }

    func testAFinalCaseWithABadSignatureGetsNoNotice() {
        let (n1, _) = coreHoldingN2Dead()
        var forged = heartbeat("n2", seq: 999)
        forged.signature = [UInt8](repeating: 1, count: 64)
        let out = sends(n1.receive(bytes: gossip([forged]), from: WireAddress(ip: [192, 0, 2, 1], port: 53), now: 20))
        XCTAssertTrue(out.isEmpty, "a notice went to an unverified source")
        XCTAssertEqual(n1.dropped.badSignature, 1)
        // The real node, speaking at its dead incarnation, is told (once per fresh version).
        let real = gossip([heartbeat("n2", seq: 1_000)])
        let notice = sends(n1.receive(bytes: real, from: address("n2"), now: 30))
        XCTAssertEqual(notice.count, 1)
        XCTAssertEqual(notice.first?.0.entries.count, 3, "own heartbeat, n2's record, the death claim")
        XCTAssertTrue(sends(n1.receive(bytes: real, from: address("n2"), now: 10_000)).isEmpty, "a replay earns no notice")
    }

    func testNoticesFrom200PortsOfOneIPGetOneReply() {
        let (n1, _) = coreHoldingN2Dead()
        var answered = 0
        for i in 0..<200 {
            let bytes = gossip([heartbeat("n2", seq: 1_000 + UInt64(i))])
            let out = sends(n1.receive(bytes: bytes, from: WireAddress(ip: [192, 0, 2, 1], port: UInt16(1_000 + i)), now: 20 + Millis(i)))
            if !out.isEmpty { answered += 1 }
        }
        XCTAssertEqual(answered, 1, "notices are limited per source IP, whatever the port")
    }

    func testAStaleSenderGetsNoNotice() {
        let (n1, _) = core("n1", trusting: ["n2"])
        _ = n1.receive(bytes: gossip([heartbeat("n2", seq: 10)]), from: address("n2"), now: 10)
        let out = sends(n1.receive(bytes: gossip([heartbeat("n2", seq: 3)]), from: WireAddress(ip: [192, 0, 2, 1], port: 1), now: 20))
        XCTAssertTrue(out.isEmpty)
        XCTAssertEqual(n1.dropped.replay, 1)
    }
}

// MARK: - Fuzz: validly signed rogue statements against the core

extension HardeningTests {
    /// Four trusted "rogue" keys (stolen laptops) throw random and mutated, validly signed
    /// heartbeats and accusations at a node, with extreme numbers, random kinds, and the names of
    /// real members and of the node itself, while a victim keeps beating. The core must not trap,
    /// must keep its incarnation in range, and must never declare the beating victim dead.
    func testFuzzValidlySignedRogueStatements() {
        var rng = SplitMix64(seed: 0x5EC0_2026)
        let rogues = ["r1", "r2", "r3", "r4"]
        let names = ["n1", "n2", "n3"] + rogues + ["x9"]
        let (n1, _) = core("n1", trusting: ["n2", "n3"] + rogues)
        let extremes: [UInt64] = [0, 1, 2, Wire.maxIncarnation - 1, Wire.maxIncarnation, Wire.maxIncarnation + 1,
                                  Wire.maxSeq, Wire.maxSeq + 1, UInt64.max - 1, UInt64.max]
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        func number() -> UInt64 {
            switch rng.next() % 10 {
            case 0..<4: return pick(extremes)
            case 4..<6: return n1.me.incarnation + (rng.next() % 3) - 1
            case 6: return 1
            default: return rng.next() >> (rng.next() % 64)
            }
        }
        var rogueSeq: [String: UInt64] = [:]
        var now: Millis = 0
        var victimSeq: UInt64 = 0
        var nextVictimBeat: Millis = 0
        _ = n1.receive(bytes: gossip([heartbeat("n3", seq: 1)]), from: address("n3"), now: 0)
        var fed = 0, decodedMutants = 0

        for _ in 0..<2_500 {
            now += Millis(1 + rng.next() % 20)
            if now >= nextVictimBeat {
                victimSeq += 1
                nextVictimBeat = now + 100
                _ = n1.receive(bytes: gossip([heartbeat("n2", seq: victimSeq)]), from: address("n2"), now: now)
            }
            let rogue = pick(rogues)
            let kind = pick([DatagramKind.gossip, .syncRequest, .syncReply])
            var entries: [SignedEntry] = []
            // Entry 0: the rogue's own heartbeat, mostly well-formed and fresh, sometimes extreme.
            var seq = rogueSeq[rogue, default: 0] + 1
            var inc: UInt64 = 1
            if rng.next() % 4 == 0 { inc = number(); seq = number() }
            rogueSeq[rogue] = seq & (Wire.maxSeq - 1)
            let sync = rng.next() % 8 == 0 ? kind != .syncRequest : kind == .syncRequest
            entries.append(signed(.heartbeat(Heartbeat(name: rng.next() % 16 == 0 ? pick(names) : rogue, incarnation: inc, seq: seq,
                                                       address: address(rogue), syncRequest: sync)), by: rogue))
            for _ in 0..<Int(rng.next() % 9) {
                let signer = pick(rogues)
                switch rng.next() % 3 {
                case 0, 1:
                    let a = Accusation(accuser: rng.next() % 8 == 0 ? pick(names) : signer,
                                       kind: rng.next() % 2 == 0 ? .suspect : .dead, target: pick(names), incarnation: number())
                    entries.append(signed(.accusation(a), by: signer))
                default:
                    let h = Heartbeat(name: rng.next() % 2 == 0 ? signer : pick(names), incarnation: number(), seq: number(),
                                      status: rng.next() % 6 == 0 ? .left : .alive, draining: rng.next() % 2 == 0,
                                      address: address(pick(names)), roles: rng.next() % 3 == 0 ? ["web"] : [])
                    entries.append(signed(.heartbeat(h), by: signer))
                }
            }
            var bytes = Wire.encode(Datagram(kind: kind, entries: entries))
            if rng.next() % 3 == 0 {
                for _ in 0...(rng.next() % 4) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: 1 | rng.next())
                }
                if let d = try? Wire.decode(bytes) {
                    // Still well-formed: sign it again with the origin's key when a rogue holds it.
                    decodedMutants += 1
                    let resigned = d.entries.map { e -> SignedEntry in
                        rogues.contains(e.statement.origin) ? signed(e.statement, by: e.statement.origin) : e
                    }
                    bytes = Wire.encode(Datagram(kind: d.kind, entries: resigned))
                }
            }
            let from = WireAddress(ip: address(rogue).ip, port: rng.next() % 4 == 0 ? UInt16(truncatingIfNeeded: rng.next()) : 7946)
            _ = n1.receive(bytes: bytes, from: from, now: now)
            fed += 1
            if rng.next() % 2 == 0 { _ = n1.tick(now: now) }
            XCTAssertLessThanOrEqual(n1.me.incarnation, Wire.maxIncarnation)
            XCTAssertNotEqual(n1.state(of: "n2"), .dead, "a beating victim was declared dead at t=\(now)")
            if n1.state(of: "n2") == .dead { break }
        }
        XCTAssertEqual(fed, 2_500)
        XCTAssertGreaterThan(decodedMutants, 0)
        XCTAssertEqual(n1.state(of: "n2"), .alive)
    }
}
