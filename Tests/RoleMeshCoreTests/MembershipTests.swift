import XCTest
import RoleMeshCore

/// The membership core driven by hand, with real Ed25519 signatures.
final class MembershipTests: XCTestCase {
    var keys: [String: Ed25519.KeyPair] = [:]
    var nodes: [String: Membership] = [:]
    /// A datagram or a beat (the other is nil), its source and its destination.
    var inbox: [(Datagram?, Beat?, WireAddress, String)] = []
    var now: Millis = 0

    func address(_ name: String) -> WireAddress { WireAddress(ip: [127, 0, 0, UInt8(name.last!.asciiValue! - 48 + 1)], port: 7946) }

    func make(_ names: [String], profile: TimingProfile = .fast) {
        for n in names { keys[n] = Ed25519.KeyPair(seed: Array(repeating: n.last!.asciiValue!, count: 32)) }
        let trusted = keys.mapValues(\.publicKey)
        for n in names {
            nodes[n] = Membership(config: .init(name: n, address: address(n), profile: profile, bootstrap: [address(names[0])]),
                                  crypto: KeyRing(keyPair: keys[n]!, trusted: trusted), seed: 1, now: now)
            route(nodes[n]!.start(now: now), from: n)
        }
    }

    func route(_ actions: [MembershipAction], from: String) {
        for a in actions {
            switch a {
            case .send(let d, let to):
                if let target = nodes.keys.first(where: { address($0) == to }) { inbox.append((d, nil, address(from), target)) }
            case .beat(let b, let to):
                if let target = nodes.keys.first(where: { address($0) == to }) { inbox.append((nil, b, address(from), target)) }
            default: break
            }
        }
    }

    /// Advances virtual time, delivering everything except to/from `down` nodes.
    func run(_ ms: Millis, down: Set<String> = []) {
        let end = now + ms
        while now < end {
            now += 10
            var guardCount = 0
            while !inbox.isEmpty, guardCount < 100_000 {
                guardCount += 1
                let (d, b, from, to) = inbox.removeFirst()
                let sender = nodes.keys.first { address($0) == from }!
                if down.contains(to) || down.contains(sender) { continue }
                if let d { route(nodes[to]!.receive(d, from: from, now: now), from: to) }
                if let b { route(nodes[to]!.receive(b, sender: sender, now: now), from: to) }
            }
            for (n, core) in nodes where !down.contains(n) { route(core.tick(now: now), from: n) }
        }
    }

    func testThreeNodesMeetThroughOneSeed() {
        make(["n1", "n2", "n3"])
        run(500)
        for (_, core) in nodes { XCTAssertEqual(core.snapshot(now: now).filter { $0.state == .alive }.count, 3) }
    }

    /// `status` lists members by name, this node in its place among them (first, middle, last).
    func testTheSnapshotIsInNameOrderWithThisNodeInItsPlace() {
        make(["n2", "n1", "n3"])
        run(500)
        for (name, core) in nodes {
            let view = core.snapshot(now: now)
            XCTAssertEqual(view.map(\.name), ["n1", "n2", "n3"])
            XCTAssertEqual(view.filter(\.isSelf).map(\.name), [name])
        }
    }

    func testCrashIsDeadOnlyAfterConfirmation() {
        make(["n1", "n2", "n3", "n4"])
        run(500)
        run(450, down: ["n4"])
        XCTAssertNotEqual(nodes["n1"]!.state(of: "n4"), .dead, "too early: suspicion must run its course")
        run(600, down: ["n4"])
        for n in ["n1", "n2", "n3"] { XCTAssertEqual(nodes[n]!.state(of: "n4"), .dead) }
    }

    func testForgedHeartbeatIsCountedAndIgnored() {
        make(["n1", "n2"])
        run(300)
        // n2's name, signed with a key that is not n2's.
        let forger = Ed25519.KeyPair(seed: Array(repeating: 99, count: 32))
        let hb = Statement.heartbeat(Heartbeat(name: "n2", incarnation: 50, seq: 1, address: address("n2"), roles: ["evil"]))
        let body = Wire.encodeBody(hb)
        let entry = SignedEntry(statement: hb, body: body, signature: forger.sign(Wire.signedMessage(for: hb, body: body)))
        _ = nodes["n1"]!.receive(Datagram(kind: .gossip, entries: [entry]), from: address("n2"), now: now)
        XCTAssertEqual(nodes["n1"]!.dropped.badSignature, 1)
        XCTAssertEqual(nodes["n1"]!.snapshot(now: now).first { $0.name == "n2" }?.roles, [])
    }

    func testSuspectedNodeRefutesByRaisingItsIncarnation() {
        make(["n1", "n2"])
        run(300)
        let inc = nodes["n2"]!.me.incarnation
        let claim = Statement.accusation(Accusation(accuser: "n1", kind: .suspect, target: "n2", incarnation: inc))
        let body = Wire.encodeBody(claim)
        let entry = SignedEntry(statement: claim, body: body, signature: keys["n1"]!.sign(Wire.signedMessage(for: claim, body: body)))
        let n1Entry = nodes["n1"]!.snapshot(now: now)   // n1 must lead its datagram with its own heartbeat
        _ = n1Entry
        let actions = nodes["n2"]!.receive(Datagram(kind: .gossip, entries: [selfEntry("n1"), entry]), from: address("n1"), now: now)
        XCTAssertEqual(nodes["n2"]!.me.incarnation, inc + 1)
        XCTAssertTrue(actions.contains { if case .persistIncarnation(inc + 1) = $0 { return true }; return false })
    }

    func selfEntry(_ name: String) -> SignedEntry {
        let core = nodes[name]!
        let s = Statement.heartbeat(core.me)
        let body = Wire.encodeBody(s)
        return SignedEntry(statement: s, body: body, signature: keys[name]!.sign(Wire.signedMessage(for: s, body: body)))
    }

    func testUnknownSenderIsCounted() {
        make(["n1"])
        let stranger = Ed25519.KeyPair(seed: Array(repeating: 5, count: 32))
        let hb = Statement.heartbeat(Heartbeat(name: "x9", incarnation: 1, seq: 1, address: address("n9")))
        let body = Wire.encodeBody(hb)
        let entry = SignedEntry(statement: hb, body: body, signature: stranger.sign(Wire.signedMessage(for: hb, body: body)))
        _ = nodes["n1"]!.receive(bytes: Wire.encode(Datagram(kind: .gossip, entries: [entry])), from: address("n9"), now: now)
        _ = nodes["n1"]!.receive(bytes: [1, 2, 3], from: address("n9"), now: now)
        XCTAssertEqual(nodes["n1"]!.dropped.unknownKey, 1)
        XCTAssertEqual(nodes["n1"]!.dropped.malformed, 1)
        XCTAssertNil(nodes["n1"]!.state(of: "x9"))
    }
}

extension MembershipTests {
    /// A member heard of only through relays, advertising 0.0.0.0, gets nothing until it speaks.
    func testNoDatagramGoesToAnUnspecifiedAddress() {
        make(["n1", "n2"])
        run(300)
        let ghost = Ed25519.KeyPair(seed: Array(repeating: 7, count: 32))
        keys["x7"] = ghost
        let relay = Membership(config: .init(name: "n1", address: address("n1"), profile: .fast),
                               crypto: KeyRing(keyPair: keys["n1"]!, trusted: keys.mapValues(\.publicKey)), seed: 2, now: now)
        let hb = Statement.heartbeat(Heartbeat(name: "x7", incarnation: 1, seq: 1, address: WireAddress(host: "0.0.0.0", port: 7946)!))
        let body = Wire.encodeBody(hb)
        let entry = SignedEntry(statement: hb, body: body, signature: ghost.sign(Wire.signedMessage(for: hb, body: body)))
        _ = relay.receive(Datagram(kind: .gossip, entries: [selfEntry("n2"), entry]), from: address("n2"), now: now)
        XCTAssertEqual(relay.state(of: "x7"), .alive)
        var sent: [WireAddress] = []
        for t in 1...20 {
            for case .send(_, let to) in relay.tick(now: now + Millis(t * 50)) { sent.append(to) }
        }
        XCTAssertFalse(sent.isEmpty)
        XCTAssertFalse(sent.contains { $0.isUnspecified }, "sent to 0.0.0.0")
    }
}

extension MembershipTests {
    func viewChanges(_ actions: [MembershipAction]) -> [Int] {
        actions.indices.filter { if case .viewChanged = actions[$0] { return true }; return false }
    }

    /// The core computes no routes: it says when the view routing reads changed, once per input, last.
    func testAViewChangeIsReportedOncePerInputAndLast() {
        make(["n1", "n2"])
        run(300)
        let core = nodes["n1"]!
        XCTAssertEqual(viewChanges(core.tick(now: now)), [], "nothing changed")
        // Roles change: the core marks the view changed twice (the change, then the announcement).
        let changed = core.updateSelf(now: now) { $0.roles = ["x"] }
        route(changed, from: "n1")
        XCTAssertEqual(viewChanges(changed), [changed.count - 1])
        XCTAssertEqual(viewChanges(core.updateSelf(now: now) { $0.roles = ["x"] }), [], "the same roles again")
        // n2 hears of it: one more input that changed its view.
        var heard: [Int] = []
        while !inbox.isEmpty {
            let (d, _, from, to) = inbox.removeFirst()
            if to == "n2", let d { heard += viewChanges(nodes["n2"]!.receive(d, from: from, now: now)) }
        }
        XCTAssertEqual(heard.count, 1)
        XCTAssertEqual(viewChanges(core.leave(now: now)), [], "a node that left routes nothing")
    }

    /// Gossip v2: signals are announced (a new signed heartbeat that others see) only when they
    /// change meaningfully, flags at once, figures at most once per rate-limit interval.
    func testSignalsAreAnnouncedOnMeaningfulChangesOnly() {
        make(["n1", "n2"], profile: .lan)
        run(3_000)
        let core = nodes["n1"]!
        func seen() -> Signals? { nodes["n2"]!.snapshot(now: now).first { $0.name == "n1" }?.signals }
        func set(_ s: Signals) { route(core.updateSelf(now: now) { $0.signals = s }, from: "n1"); run(1_000) }
        let gap = TimingProfile.lan.signalMinInterval(memberCount: 2)
        set(Signals(load: 0.30, memFree: 0.50))
        run(gap)
        XCTAssertEqual(seen()?.load, 0.30, "announced within one rate-limit interval")
        run(gap)
        set(Signals(load: 0.90, memFree: 0.50))
        XCTAssertEqual(seen()?.load, 0.90, "a change of 0.6 cores is news")
        set(Signals(load: 0.95, memFree: 0.52))
        XCTAssertEqual(seen()?.load, 0.90, "a drift below the steps is not")
        // A change heavy routing reads goes to every member in the same input, not at the next beat.
        let unplugged = core.updateSelf(now: now) { $0.signals = Signals(load: 0.95, memFree: 0.52, onBattery: true) }
        XCTAssertTrue(unplugged.contains { if case .send(_, let to) = $0 { return to == self.address("n2") } else { return false } },
                      "on_battery is sent to every member at once")
        route(unplugged, from: "n1"); run(1_000)
        XCTAssertEqual(seen()?.onBattery, true, "a flag goes out at once")
        XCTAssertEqual(seen()?.load, 0.95, "with the figures of the moment")
        set(Signals(load: 2.0, memFree: 0.52, onBattery: true))
        XCTAssertEqual(seen()?.load, 0.95, "figures wait for the rate limit after an announcement")
        run(gap)
        XCTAssertEqual(seen()?.load, 2.0, "and go out at the first beat after it")
    }
}
