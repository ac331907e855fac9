import RoleMeshPlatform
import Foundation
import RoleMeshAgent
import RoleMeshCore
import RoleMeshTaskChannel

/// `verify`: signed heartbeats per second through `Membership.receive(bytes:from:now:)` (decode,
/// signature check, state update, relay queue) versus a bare `Ed25519.verify` (`crypto_sign_verify_detached`) loop
/// over the same signed messages, on one core.
enum VerifyBench {
    static let target = 0.80

    struct Prepared {
        var datagrams: [[UInt8]] = []
        var messages: [[UInt8]] = []
        var signatures: [[UInt8]] = []
    }

    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["seconds"])
        let seconds = try opts.double("seconds", 3, min: 0.3, max: 600)
        let cpu = pinToOneCore()
        say("verify: \(fmt(seconds, 1)) s per loop, pinned to cpu \(cpu.map(String.init) ?? "? (pinning failed)"); \(machineDescription())")
        guard Ed25519.ready else {
            say("libsodium did not initialise"); printResult("verify", [("error", .string("sodium_init failed"))]); return
        }

        let own = Ed25519.KeyPair.generate(), peer = Ed25519.KeyPair.generate()
        let from = WireAddress(host: "127.0.0.2", port: 7946)!
        // Calibrate: how many datagrams the windows can consume (the bare loop is the faster one).
        let probe = prepare(peer, from: from, seqs: 1...2_000)
        let calib = bareLoop(probe, seconds: 0.3, pk: peer.publicKey)
        let needed = min(Int(calib.rate * seconds * 1.3) + 2_000, 600_000)
        note("bare verify ≈ \(Int(calib.rate))/s; pre-building \(needed) signed heartbeat datagrams")
        let t0 = monoNow()
        let prepared = prepare(peer, from: from, seqs: 1...UInt64(needed))
        note("built in \(fmt(monoNow() - t0, 1)) s (\(prepared.datagrams.first?.count ?? 0)-byte datagrams, \(prepared.messages.first?.count ?? 0)-byte signed messages)")

        let ring = KeyRing(keyPair: own, trusted: ["peer": peer.publicKey])
        let core = Membership(config: .init(name: "bench", address: WireAddress(host: "127.0.0.1", port: 7946)!, profile: .lan),
                              crypto: ring, seed: 1, now: 0)
        _ = core.start(now: 0)
        // The first heartbeat (seq 0) makes the peer a member; timed ones are all newer beats.
        let first = prepare(peer, from: from, seqs: 0...0)
        _ = core.receive(bytes: first.datagrams[0], from: from, now: 1)

        // Alternate the two loops in three rounds so drift in clock speed hits both alike.
        let rounds = 3
        var bareCount = 0.0, bareTime = 0.0, realCount = 0.0, realTime = 0.0
        var next = 0
        for _ in 0..<rounds {
            let b = bareLoop(prepared, seconds: seconds / Double(rounds), pk: peer.publicKey)
            bareCount += b.count; bareTime += b.time
            let r = realLoop(core, prepared, from: from, start: next, seconds: seconds / Double(rounds))
            realCount += Double(r.consumed); realTime += r.time
            next += r.consumed
        }
        let decode = decodeLoop(prepared, seconds: min(0.5, seconds / 3))

        // Proof the timed path really verified: a new beat with a broken signature must be dropped.
        let before = core.dropped
        var bad = prepare(peer, from: from, seqs: UInt64(needed + 10)...UInt64(needed + 10)).datagrams[0]
        bad[bad.count - 1] ^= 0x55
        _ = core.receive(bytes: bad, from: from, now: 2)
        let checked = core.dropped.badSignature == before.badSignature + 1
        let clean = before.badSignature == 0 && before.replay == 0 && before.malformed == 0 && before.unknownKey == 0
        let peerAlive = core.state(of: "peer") == .alive

        let bareRate = bareCount / bareTime, realRate = realCount / realTime
        let ratio = realRate / bareRate
        say(table([
            ["LOOP", "VERIFIED", "SECONDS", "PER SECOND"],
            ["crypto_sign_verify_detached (bare)", String(Int(bareCount)), fmt(bareTime), String(Int(bareRate))],
            ["Membership.receive(bytes:) (real path)", String(Int(realCount)), fmt(realTime), String(Int(realRate))],
            ["Wire.decode only (no signature)", String(Int(decode.count)), fmt(decode.time), String(Int(decode.rate))],
        ]))
        say("")
        say("real / bare = \(fmt(ratio * 100, 1)) % (target ≥ \(Int(target * 100)) %): \(metText(ratio >= target && checked && clean))")
        say("checks: every timed datagram accepted (no drops: \(clean)), peer alive: \(peerAlive), broken signature dropped: \(checked)")
        if next >= prepared.datagrams.count { say("note: the real loop used up all pre-built datagrams; its window was shorter than asked") }
        say("Anchor: libsodium 1.0.18 on this machine verifies ~18k/s (200-byte messages), anchors.md.")
        printResult("verify", [
            ("seconds", .double(seconds)), ("cpu", .optional(cpu)),
            ("bare_per_s", .double(bareRate.rounded())), ("real_per_s", .double(realRate.rounded())),
            ("decode_per_s", .double(decode.rate.rounded())),
            ("ratio", .double(ratio)), ("target_ratio", .double(target)), ("met", .bool(ratio >= target && checked && clean)),
            ("datagram_bytes", .int(prepared.datagrams.first?.count ?? 0)),
            ("signed_message_bytes", .int(prepared.messages.first?.count ?? 0)),
            ("checks_ok", .bool(checked && clean && peerAlive)),
        ])
    }

    /// Pins this thread to the CPU it runs on; that CPU's number.
    static func pinToOneCore() -> Int? {
        guard let getcpu = GNU.getcpu, let setAffinity = GNU.setAffinity else { return nil }
        let c = getcpu()
        guard c >= 0, c < 1024 else { return nil }
        var set = cpu_set_t()
        withUnsafeMutableBytes(of: &set) { b in
            for i in 0..<b.count { b[i] = 0 }
            b[Int(c) / 8] |= UInt8(1 << (Int(c) % 8))
        }
        let rc = withUnsafeBytes(of: &set) { setAffinity(0, MemoryLayout<cpu_set_t>.size, $0.baseAddress!) }
        return rc == 0 ? Int(c) : nil
    }

    /// Distinct signed heartbeats from `peer`, one per datagram, as a real agent sends them.
    static func prepare(_ peer: Ed25519.KeyPair, from: WireAddress, seqs: ClosedRange<UInt64>) -> Prepared {
        var p = Prepared()
        p.datagrams.reserveCapacity(seqs.count); p.messages.reserveCapacity(seqs.count); p.signatures.reserveCapacity(seqs.count)
        for seq in seqs {
            let hb = Heartbeat(name: "peer", incarnation: 1, seq: seq, address: from, roles: ["svc", "storage"],
                               backup: ["transcode": 1],
                               signals: Signals(load: 0.3, cpus: 8, memFree: 0.61, battery: nil, onBattery: false, throttled: false))
            let s = Statement.heartbeat(hb)
            let body = Wire.encodeBody(s)
            let msg = Wire.signedMessage(for: s, body: body)
            let sig = peer.sign(msg)
            p.datagrams.append(Wire.encode(Datagram(kind: .gossip, entries: [SignedEntry(statement: s, body: body, signature: sig)])))
            p.messages.append(msg)
            p.signatures.append(sig)
        }
        return p
    }

    /// Verifies the prepared messages round-robin (the bare loop is stateless, so repeats are fair).
    static func bareLoop(_ p: Prepared, seconds: Double, pk: [UInt8]) -> (count: Double, time: Double, rate: Double) {
        var ok = 0, i = 0
        let t0 = monoNow(), deadline = t0 + seconds
        let maxIterations = 50_000_000
        var now = t0
        while i < maxIterations {
            let k = i % p.messages.count
            if Ed25519.verify(signature: p.signatures[k], message: p.messages[k], publicKey: pk) { ok += 1 }   // libsodium's, through the one façade
            i += 1
            if i & 63 == 0 { now = monoNow(); if now >= deadline { break } }
        }
        now = monoNow()
        let t = now - t0
        return (Double(ok), t, Double(ok) / t)
    }

    /// Feeds never-seen datagrams, in order, to the real receive path. The core budgets signature
    /// checks per source IP (256/s), so the datagrams come from 4,000 rotating loopback sources
    /// (as a big mesh's relays would) and the core's clock is the real one: the budget bookkeeping
    /// is part of what is timed, its limit is not.
    static func realLoop(_ core: Membership, _ p: Prepared, from: WireAddress, start: Int, seconds: Double) -> (consumed: Int, time: Double) {
        var i = start
        let t0 = monoNow(), deadline = t0 + seconds
        let sources = (0..<4_000).map { WireAddress(ip: [127, 1, UInt8($0 >> 8), UInt8($0 & 0xff)], port: from.port) }
        while i < p.datagrams.count {
            _ = core.receive(bytes: p.datagrams[i], from: sources[i % sources.count], now: 1_000 + Millis(monoNow() * 1000))
            i += 1
            if i & 63 == 0, monoNow() >= deadline { break }
        }
        return (i - start, monoNow() - t0)
    }

    static func decodeLoop(_ p: Prepared, seconds: Double) -> (count: Double, time: Double, rate: Double) {
        var i = 0, ok = 0
        let t0 = monoNow(), deadline = t0 + seconds
        while i < 50_000_000 {
            if (try? Wire.decode(p.datagrams[i % p.datagrams.count])) != nil { ok += 1 }
            i += 1
            if i & 255 == 0, monoNow() >= deadline { break }
        }
        let t = monoNow() - t0
        return (Double(ok), t, Double(ok) / t)
    }
}
