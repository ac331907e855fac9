import XCTest
import RoleMeshCore

/// The task channel's handshake, version 2 (issue 24: names in the clear, and a name oracle), and
/// the rules for connections before authentication.
final class ChannelHandshakeTests: XCTestCase {
    let desk = Ed25519.KeyPair.generate(), laptop = Ed25519.KeyPair.generate(), stranger = Ed25519.KeyPair.generate()

    /// One whole exchange: what each side ends with.
    func run(_ identity: ChannelHandshake.Identity, clientKey: Ed25519.KeyPair, serverKnows: [UInt8]?, psk: [UInt8]? = nil,
             serverPSK: [UInt8]? = nil, to server: Ed25519.KeyPair? = nil) -> (client: ChannelHandshake.SessionKeys?, server: ChannelHandshake.SessionKeys?, identity: ChannelHandshake.Identity?) {
        let s = server ?? desk
        var c = ChannelHandshake.Client(server: desk.publicKey, as: identity, psk: psk)!
        XCTAssertEqual(c.hello.count, ChannelHandshake.helloSize)
        var srv = ChannelHandshake.Server(hello: c.hello, keyPair: s)
        let answer = srv.answer(clientKey: serverKnows, psk: serverPSK)
        XCTAssertEqual(answer.count, ChannelHandshake.answerSize)
        guard let (proof, keys) = c.finish(answer: answer, keyPair: clientKey) else {
            // The client gives up; the server would see no proof, or garbage.
            return (nil, srv.check(proof: [UInt8](repeating: 0, count: 16), keyPair: s), srv.identity)
        }
        return (keys, srv.check(proof: proof, keyPair: s), srv.identity)
    }

    func testATrustedClientAndServerAgreeOnKeys() throws {
        let r = run(.task("laptop"), clientKey: laptop, serverKnows: laptop.publicKey)
        let c = try XCTUnwrap(r.client), s = try XCTUnwrap(r.server)
        XCTAssertEqual(c.send, s.receive)
        XCTAssertEqual(c.receive, s.send)
        XCTAssertNotEqual(c.send, c.receive)
        XCTAssertEqual(r.identity, .task("laptop"))
    }

    /// No name (nor its length) travels in clear: hellos of a short and a long name are the same
    /// size, and neither holds the name's bytes.
    func testTheHelloHidesTheNameAndItsLength() {
        for name in ["a", "laptop", String(repeating: "n", count: 63)] {
            let hello = ChannelHandshake.Client(server: desk.publicKey, as: .task(name))!.hello
            XCTAssertEqual(hello.count, ChannelHandshake.helloSize)
            if name.count > 3 { XCTAssertNil(hello.firstRange(of: Array(name.utf8)), name) }
        }
        let join = ChannelHandshake.Client(server: desk.publicKey, as: .join("tablet", key: laptop.publicKey, invite: [1, 2, 3, 4, 5, 6, 7, 8]),
                                           psk: Array(repeating: 3, count: 16))!.hello
        XCTAssertEqual(join.count, ChannelHandshake.helloSize)
        XCTAssertNil(join.firstRange(of: laptop.publicKey), "the joining key is sealed too")
    }

    /// A name the server does not trust, a stranger's key, a hello sealed to another key, random
    /// bytes: the answer has the same size each time, opens for nobody, and the server accepts nothing.
    func testEveryFailureLooksTheSame() {
        // Untrusted name: the server has no key for it.
        var r = run(.task("laptop"), clientKey: laptop, serverKnows: nil)
        XCTAssertNil(r.client); XCTAssertNil(r.server)
        // A stranger claiming a trusted name.
        r = run(.task("laptop"), clientKey: stranger, serverKnows: laptop.publicKey)
        XCTAssertNil(r.client); XCTAssertNil(r.server)
        // Sealed to desk, answered by another device: it cannot even read who asks.
        r = run(.task("laptop"), clientKey: laptop, serverKnows: laptop.publicKey, to: stranger)
        XCTAssertNil(r.identity); XCTAssertNil(r.client); XCTAssertNil(r.server)
        // Random bytes of the right size, and of a wrong one.
        for junk in [Ed25519.randomBytes(ChannelHandshake.helloSize), Ed25519.randomBytes(20)] {
            var srv = ChannelHandshake.Server(hello: junk, keyPair: desk)
            XCTAssertNil(srv.identity)
            XCTAssertEqual(srv.answer(clientKey: nil, psk: nil).count, ChannelHandshake.answerSize)
            XCTAssertNil(srv.check(proof: Ed25519.randomBytes(16), keyPair: desk))
        }
    }

    /// A captured hello replayed: the server answers with a fresh key, and without the client's
    /// ephemeral secret the replayer can neither open it nor prove anything.
    func testAReplayedHelloGetsNowhere() {
        let c = ChannelHandshake.Client(server: desk.publicKey, as: .task("laptop"))!
        var srv = ChannelHandshake.Server(hello: c.hello, keyPair: desk)
        XCTAssertEqual(srv.identity, .task("laptop"))
        _ = srv.answer(clientKey: laptop.publicKey, psk: nil)
        // The replayer's best guess at a proof.
        XCTAssertNil(srv.check(proof: Ed25519.randomBytes(16), keyPair: desk))
    }

    /// A join: the answer opens only for the holder of the invite's secret, and the server reads
    /// the name, the new key and the invite's id.
    func testAJoinNeedsTheInvitesSecret() throws {
        let secret = Ed25519.randomBytes(16), id = ChannelHandshake.inviteID(secret: secret)
        let join = ChannelHandshake.Identity.join("tablet", key: laptop.publicKey, invite: id)
        let ok = run(join, clientKey: laptop, serverKnows: laptop.publicKey, psk: secret, serverPSK: secret)
        XCTAssertNotNil(ok.client); XCTAssertNotNil(ok.server)
        XCTAssertEqual(ok.identity, join)
        let wrong = run(join, clientKey: laptop, serverKnows: laptop.publicKey, psk: Ed25519.randomBytes(16), serverPSK: secret)
        XCTAssertNil(wrong.client); XCTAssertNil(wrong.server)
        let noInvite = run(join, clientKey: laptop, serverKnows: laptop.publicKey, psk: secret, serverPSK: nil)
        XCTAssertNil(noInvite.client); XCTAssertNil(noInvite.server)
    }

    // MARK: Before authentication

    func testPreAuthPlacesArePerSourceAndQueueBriefly() {
        var p = PreAuthPlaces(total: 4, perSource: 2, maxWaiting: 3, wait: 1_000)
        let a: [UInt8] = [10, 0, 0, 1], b: [UInt8] = [10, 0, 0, 2]
        XCTAssertEqual(p.arrive(id: 1, source: a, now: 0), .start)
        XCTAssertEqual(p.arrive(id: 2, source: a, now: 0), .start)
        XCTAssertEqual(p.arrive(id: 3, source: a, now: 0), .wait, "a's places are full: it waits")
        XCTAssertEqual(p.arrive(id: 4, source: b, now: 0), .start, "another source still gets a place at once")
        XCTAssertEqual(p.arrive(id: 5, source: a, now: 0), .wait)
        XCTAssertEqual(p.arrive(id: 6, source: a, now: 0), .refuse, "one source queues no more than it may hold")
        XCTAssertEqual(p.leave(source: a), [3], "a freed place goes to a's oldest waiter")
        XCTAssertEqual(p.expire(now: 999), [])
        XCTAssertEqual(p.expire(now: 1_000), [5])
        XCTAssertEqual(p.waitingCount, 0)
        XCTAssertEqual(p.inUse, 3)
    }

    func testRefusalsAreLoggedOnceThenSummed() {
        var log = RefusalLog()
        XCTAssertNotNil(log.note("it did not prove a key", source: "127.0.0.9", now: 0))
        for i in 1...1000 { XCTAssertNil(log.note("it did not prove a key", source: "127.0.0.\(i % 20)", now: Millis(i))) }
        let summary = log.flush(now: 10_000)
        XCTAssertNotNil(summary)
        XCTAssertTrue(summary!.contains("refused 1000 more"), summary!)
        XCTAssertTrue(summary!.contains("others"), "only a few sources are named: \(summary!)")
        XCTAssertNil(log.flush(now: 20_000), "nothing new, nothing said")
    }
}
