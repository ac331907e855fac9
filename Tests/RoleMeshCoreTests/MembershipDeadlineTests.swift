import XCTest
import RoleMeshCore

/// `Membership.nextDeadline()`: a mesh whose nodes tick only once their deadline has come must act
/// exactly like one whose nodes tick every `tick` (the same datagrams, events and view changes at
/// the same times), through joining, a crash and its death, a suspended node's return, a
/// revocation and a signal change, with every seventh datagram lost.
final class MembershipDeadlineTests: XCTestCase {
    final class Mesh {
        let names = (1...6).map { "n\($0)" }
        let profile: TimingProfile
        let skipping: Bool
        var nodes: [String: Membership] = [:]
        var inbox: [(MembershipAction, from: String, to: String)] = []
        var log: [String] = []
        var ticks = 0, sent = 0
        var now: Millis = 0
        /// Every this-many-th datagram is lost.
        var lossEvery = 7

        init(profile: TimingProfile, skipping: Bool) {
            self.profile = profile
            self.skipping = skipping
            let keys = Dictionary(uniqueKeysWithValues: names.map { ($0, Ed25519.KeyPair(seed: Array(repeating: $0.last!.asciiValue!, count: 32))) })
            let trusted = keys.mapValues(\.publicKey)
            for (i, n) in names.enumerated() {
                nodes[n] = Membership(config: .init(name: n, address: address(n), profile: profile, bootstrap: [address("n1")]),
                                      crypto: KeyRing(keyPair: keys[n]!, trusted: trusted), seed: UInt64(i + 1), now: now)
                record(n, nodes[n]!.start(now: now))
            }
        }

        func address(_ name: String) -> WireAddress { WireAddress(ip: [127, 0, 0, name.last!.asciiValue! - 47], port: 7946) }

        func record(_ node: String, _ actions: [MembershipAction]) {
            for a in actions {
                log.append("\(now) \(node) \(a)")
                let to: WireAddress
                switch a {
                case .send(_, let t), .beat(_, let t): to = t
                default: continue
                }
                guard let target = names.first(where: { address($0) == to }) else { continue }
                sent += 1
                if sent % lossEvery != 0 { inbox.append((a, node, target)) }
            }
        }

        /// 10 ms steps: what was sent in the last step arrives, then ticks on the `tick` grid.
        func run(_ ms: Millis, down: Set<String> = []) {
            let end = now + ms
            while now < end {
                now += 10
                let batch = inbox
                inbox = []
                for (a, from, to) in batch where !down.contains(to) && !down.contains(from) {
                    switch a {
                    case .send(let d, _): record(to, nodes[to]!.receive(d, from: address(from), now: now))
                    case .beat(let b, _): record(to, nodes[to]!.receive(b, sender: from, now: now))
                    default: break
                    }
                }
                guard now % profile.tick == 0 else { continue }
                for n in names where !down.contains(n) {
                    if skipping, now < nodes[n]!.nextDeadline() { continue }
                    ticks += 1
                    record(n, nodes[n]!.tick(now: now))
                }
            }
        }

        func scenario() {
            run(8_000)
            run(8_000, down: ["n6"])
            XCTAssertEqual(nodes["n1"]!.state(of: "n6"), .dead, "the crash must run its course to a death")
            run(4_000)      // n6 back after the gap: it resumes as after a suspension
            XCTAssertEqual(nodes["n1"]!.state(of: "n6"), .alive)
            nodes["n2"]!.revoke("n5")
            run(2_000)
            record("n3", nodes["n3"]!.updateSelf(now: now) { $0.signals.load = 3; $0.signals.onBattery = true })
            run(4_000)
        }
    }

    func check(_ profile: TimingProfile, fewerTicksThan share: Double) {
        let every = Mesh(profile: profile, skipping: false), skipping = Mesh(profile: profile, skipping: true)
        every.scenario()
        skipping.scenario()
        if let i = every.log.indices.first(where: { $0 < skipping.log.count && every.log[$0] != skipping.log[$0] }) {
            XCTFail("\(profile.name): first difference at action \(i):\n every tick: \(every.log[i])\n deadlines:  \(skipping.log[i])")
        }
        XCTAssertEqual(every.log.count, skipping.log.count, profile.name)
        // The point of the deadline: many ticks are skipped (lan beats every 4.5 ticks, fast every 2; this
        // scenario is busier than an idle mesh: loss, a death, a return).
        XCTAssertLessThan(Double(skipping.ticks), share * Double(every.ticks), "\(profile.name): \(skipping.ticks) ticks at deadlines vs \(every.ticks)")
    }

    /// An idle mesh wakes each node about once per heartbeat, on the beat: nothing else of the
    /// core's (the join check, sync, dead retry) asks for a tick of its own. The join check once
    /// did, every heartbeat between two beats, and doubled an idle agent's core wakeups.
    func testAnIdleMeshTicksOncePerHeartbeat() {
        for profile in [TimingProfile.lan, .travel] {
            let mesh = Mesh(profile: profile, skipping: true)
            mesh.lossEvery = .max
            mesh.run(profile.suspectAfter * 4)
            XCTAssertTrue(mesh.names.allSatisfy { n in mesh.names.allSatisfy { mesh.nodes[n]!.state(of: $0) == .alive } })
            mesh.ticks = 0
            let seconds: Millis = 60
            mesh.run(seconds * 1_000)
            let beats = Double(mesh.names.count) * Double(seconds * 1_000) / Double(profile.heartbeat)
            XCTAssertLessThanOrEqual(Double(mesh.ticks), beats * 1.05, "\(profile.name): \(mesh.ticks) ticks for \(Int(beats)) beats")
        }
    }

    func testTickingAtDeadlinesActsLikeTickingEveryTick() {
        check(.lan, fewerTicksThan: 0.5)
        check(.fast, fewerTicksThan: 0.85)
    }
}
