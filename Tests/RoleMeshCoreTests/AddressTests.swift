import XCTest
import RoleMeshCore

/// Addresses follow devices (protocol.md 7.5): a member is reached where its fresh, signed direct
/// datagrams come from; relayed or forged copies never move it.
final class AddressTests: XCTestCase {
    var keys: [String: Ed25519.KeyPair] = [:]
    var nodes: [String: Membership] = [:]
    var now: Millis = 0

    func address(_ name: String) -> WireAddress { WireAddress(ip: [127, 0, 0, UInt8(name.last!.asciiValue! - 48 + 1)], port: 7946) }
    let moved = WireAddress(ip: [127, 0, 0, 99], port: 7000)

    func make(_ names: [String]) {
        for n in names { keys[n] = Ed25519.KeyPair(seed: Array(repeating: n.last!.asciiValue!, count: 32)) }
        let trusted = keys.mapValues(\.publicKey)
        for n in names {
            nodes[n] = Membership(config: .init(name: n, address: address(n), profile: .fast, bootstrap: [address(names[0])]),
                                  crypto: KeyRing(keyPair: keys[n]!, trusted: trusted), seed: 1, now: now)
        }
    }

    /// Runs the mesh for `ms`, with n2's datagrams arriving from `n2From` and whatever is sent to
    /// `n2From` delivered to n2. Returns every (sender, destination) and the events seen.
    @discardableResult
    func run(_ ms: Millis, n2From: WireAddress) -> (sends: [(String, WireAddress)], events: [MeshEvent]) {
        var queue: [(String, [MembershipAction])] = nodes.keys.sorted().map { ($0, nodes[$0]!.start(now: now)) }
        var sends: [(String, WireAddress)] = [], events: [MeshEvent] = []
        let end = now + ms
        while now < end {
            var guardCount = 0
            while !queue.isEmpty, guardCount < 10_000 {
                guardCount += 1
                let (from, actions) = queue.removeFirst()
                for a in actions {
                    switch a {
                    case .send(let d, let to):
                        sends.append((from, to))
                        let target = to == n2From ? "n2" : nodes.keys.first { address($0) == to }
                        guard let target, target != from else { continue }
                        let source = from == "n2" ? n2From : address(from)
                        queue.append((target, nodes[target]!.receive(d, from: source, now: now)))
                    case .beat(let b, let to):
                        sends.append((from, to))
                        let target = to == n2From ? "n2" : nodes.keys.first { address($0) == to }
                        guard let target, target != from else { continue }
                        queue.append((target, nodes[target]!.receive(b, sender: from, now: now)))
                    case .event(let e): events.append(e)
                    default: break
                    }
                }
            }
            now += 10
            for n in nodes.keys.sorted() { queue.append((n, nodes[n]!.tick(now: now))) }
        }
        return (sends, events)
    }

    func addressOf(_ node: String, at viewer: String) -> WireAddress? {
        nodes[viewer]!.snapshot(now: now).first { $0.name == node }?.address
    }

    func testAMemberWhoseSourceChangesIsReachedThereWithoutSuspicion() {
        make(["n1", "n2", "n3"])
        run(1_000, n2From: address("n2"))
        XCTAssertEqual(addressOf("n2", at: "n1"), address("n2"))
        let incarnation = nodes["n2"]!.me.incarnation
        // n2's datagrams now come from elsewhere (a new network); its announced address is unchanged.
        let after = run(3_000, n2From: moved)
        for viewer in ["n1", "n3"] {
            XCTAssertEqual(addressOf("n2", at: viewer), moved, "\(viewer) reaches n2 where it speaks from")
            XCTAssertEqual(nodes[viewer]!.state(of: "n2"), .alive)
        }
        XCTAssertFalse(after.events.contains { $0.node == "n2" && $0.kind != .memberUpdated }, "no suspicion, no state change")
        XCTAssertEqual(nodes["n2"]!.me.incarnation, incarnation, "no refutation was needed")
        let late = after.sends.suffix(after.sends.count / 2)
        XCTAssertTrue(late.contains { $0.0 != "n2" && $0.1 == self.moved })
        XCTAssertFalse(late.contains { $0.1 == self.address("n2") }, "nothing goes to the old address any more")
    }

    func signed(_ s: Statement, by key: Ed25519.KeyPair) -> SignedEntry {
        let body = Wire.encodeBody(s)
        return SignedEntry(statement: s, body: body, signature: key.sign(Wire.signedMessage(for: s, body: body)))
    }

    func testRelayedOrForgedCopiesNeverMoveAnAddress() {
        make(["n1", "n2", "n3"])
        run(1_000, n2From: address("n2"))
        guard let held = nodes["n1"]!.snapshot(now: now).first(where: { $0.name == "n2" }) else { return XCTFail() }
        // A newer heartbeat of n2, genuinely signed, relayed by n3 from n3's address.
        let newer = signed(.heartbeat(Heartbeat(name: "n2", incarnation: held.incarnation, seq: 1_000_000, address: address("n2"))), by: keys["n2"]!)
        let lead = signed(.heartbeat(Heartbeat(name: "n3", incarnation: nodes["n3"]!.me.incarnation, seq: 1_000_000, address: address("n3"))), by: keys["n3"]!)
        _ = nodes["n1"]!.receive(Datagram(kind: .gossip, entries: [lead, newer]), from: moved, now: now)
        XCTAssertEqual(addressOf("n2", at: "n1"), address("n2"), "a relayed heartbeat never moves its origin")
        // n2's name on entry 0, signed with another key, from a new address.
        let forged = signed(.heartbeat(Heartbeat(name: "n2", incarnation: held.incarnation, seq: 2_000_000, address: moved)),
                            by: Ed25519.KeyPair(seed: Array(repeating: 200, count: 32)))
        _ = nodes["n1"]!.receive(Datagram(kind: .gossip, entries: [forged]), from: moved, now: now)
        XCTAssertEqual(addressOf("n2", at: "n1"), address("n2"))
        XCTAssertEqual(nodes["n1"]!.dropped.badSignature, 1)
        // A byte-identical replay of n2's own datagram from elsewhere: a duplicate, moves nothing.
        _ = nodes["n1"]!.receive(Datagram(kind: .gossip, entries: [newer]), from: address("n2"), now: now)
        _ = nodes["n1"]!.receive(Datagram(kind: .gossip, entries: [newer]), from: moved, now: now)
        XCTAssertEqual(addressOf("n2", at: "n1"), address("n2"))
        // A datagram authenticated by one device's pair key but led by another's heartbeat is dropped.
        let bytes = Wire.encode(Datagram(kind: .gossip, entries: [signed(.heartbeat(Heartbeat(name: "n2", incarnation: held.incarnation,
                                                                                                  seq: 3_000_000, address: moved)), by: keys["n2"]!)]))
        let replays = nodes["n1"]!.dropped.replay
        _ = nodes["n1"]!.receive(bytes: bytes, from: moved, sender: "n3", now: now)
        XCTAssertEqual(nodes["n1"]!.dropped.replay, replays + 1)
        XCTAssertEqual(addressOf("n2", at: "n1"), address("n2"))
    }
}
