import Foundation
import XCTest
import RoleMeshCore

/// Invite codes and the rules for trust statements (RoleMeshCore/Trust).
final class TrustTests: XCTestCase {
    // MARK: Invite codes

    func sampleCode() -> InviteCode {
        InviteCode(inviter: "homeserver", inviterKey: Array(repeating: 9, count: 32), secret: Array(0..<16),
                   expires: 1_800_000_000, name: "laptop", addresses: ["192.168.1.10:7946", "[fe80::1]:7946"])
    }

    func testCodeRoundTripsAndForgivesCaseAndBlanks() throws {
        let code = sampleCode()
        let text = code.text
        XCTAssertTrue(text.hasPrefix("rm1-"))
        XCTAssertTrue(text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }, text)
        XCTAssertEqual(try InviteCode.parse(text), code)
        XCTAssertEqual(try InviteCode.parse("  " + text.uppercased() + "\n"), code)
    }

    func testBadCodesSayWhyAndNeverCrash() {
        let text = sampleCode().text
        func problem(_ s: String) -> InviteCode.Problem? {
            do { _ = try InviteCode.parse(s); return nil } catch { return error }
        }
        XCTAssertEqual(problem(""), .notACode)
        XCTAssertEqual(problem("hello"), .notACode)
        XCTAssertEqual(problem("rm1-"), .truncated)
        XCTAssertEqual(problem("rm1-0189"), .truncated)          // outside the alphabet
        XCTAssertEqual(problem(text + "aa"), .truncated)
        // Every prefix of a code is refused with a reason, none crashes.
        for n in 4..<text.count { XCTAssertNotNil(problem(String(text.prefix(n))), "prefix \(n)") }
        var bad = sampleCode(); bad.name = "no spaces"
        XCTAssertEqual(problem(bad.text), .badName)
        bad = sampleCode(); bad.addresses = []
        XCTAssertEqual(problem(bad.text), .noAddress)
        XCTAssertEqual(problem("rm1-" + Base32.encode([2, 0, 0])), .badVersion)
        // Random bytes after the prefix: a reason, never a crash.
        var rng = SplitMix64(seed: 11)
        for _ in 0..<2000 {
            let bytes = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = problem("rm1-" + Base32.encode([1] + bytes))
        }
    }

    func testBase32KnownVectors() {
        // RFC 4648 section 10, lowercase and without padding.
        let vectors = ["": "", "f": "my", "fo": "mzxq", "foo": "mzxw6", "foob": "mzxw6yq", "fooba": "mzxw6ytb", "foobar": "mzxw6ytboi"]
        for (plain, coded) in vectors {
            XCTAssertEqual(Base32.encode(Array(plain.utf8)), coded)
            XCTAssertEqual(Base32.decode(coded), Array(plain.utf8))
        }
        XCTAssertNil(Base32.decode("mzxw6yr"))     // leftover bits that are not zero
    }

    // MARK: Trust statements

    let a = Ed25519.KeyPair.generate(), b = Ed25519.KeyPair.generate(), c = Ed25519.KeyPair.generate()
    let newcomer = Ed25519.KeyPair.generate()

    func view(me: String = "c", introducers: [String]? = nil, extra: [String: [UInt8]] = [:]) -> TrustLedger.View {
        var trusted = ["a": a.publicKey, "b": b.publicKey, "c": c.publicKey]
        for (k, v) in extra { trusted[k] = v }
        return TrustLedger.View(me: me, trusted: trusted, introducers: introducers)
    }

    func statement(_ kind: TrustStatement.Kind, by: String, _ signer: Ed25519.KeyPair, name: String, key: [UInt8], time: Int64 = 1) -> TrustStatement {
        TrustStatement.make(kind, by: by, name: name, key: key, time: time, sign: signer.sign)
    }

    func testAnIntroductionFromATrustedIntroducerIsAppliedOnce() {
        var ledger = TrustLedger()
        let s = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(s, view()), .introduce(s))
        XCTAssertEqual(ledger.consider(s, view()), .known)
        XCTAssertEqual(ledger.statements, [s])
        // Heard from a second introducer once trusted: held, nothing to write.
        let t = statement(.introduce, by: "b", b, name: "laptop", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(t, view(extra: ["laptop": newcomer.publicKey])), .held)
    }

    func testStatementsMustBeSignedByATrustedAcceptedIntroducer() {
        var ledger = TrustLedger()
        let stranger = Ed25519.KeyPair.generate()
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "x", stranger, name: "laptop", key: newcomer.publicKey), view()))
        // Signed by someone else than it claims.
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "a", b, name: "laptop", key: newcomer.publicKey), view()))
        // Tampered after signing.
        var s = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey)
        s.name = "phone"
        XCTAssertRefused(ledger.consider(s, view()))
        // introducers = ["b"]: a's word does not count; b's and our own do.
        let fromA = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey)
        XCTAssertRefused(ledger.consider(fromA, view(introducers: ["b"])))
        let fromB = statement(.introduce, by: "b", b, name: "laptop", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(fromB, view(introducers: ["b"])), .introduce(fromB))
        let own = statement(.introduce, by: "c", c, name: "tablet", key: Ed25519.KeyPair.generate().publicKey)
        XCTAssertEqual(ledger.consider(own, view(introducers: [])), .introduce(own))
        XCTAssertEqual(ledger.statements, [fromB, own])
    }

    func testARevocationBeatsAnIntroductionInEitherOrder() {
        let intro = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 100)
        let revoke = statement(.revoke, by: "b", b, name: "laptop", key: newcomer.publicKey, time: 50)
        // Introduction first: applied, then revoked.
        var first = TrustLedger()
        XCTAssertEqual(first.consider(intro, view()), .introduce(intro))
        XCTAssertEqual(first.consider(revoke, view(extra: ["laptop": newcomer.publicKey])), .revoke(revoke))
        XCTAssertEqual(first.statements, [revoke], "the introduction stops spreading")
        // Revocation first (even with an older time): the introduction never applies.
        var second = TrustLedger()
        XCTAssertEqual(second.consider(revoke, view()), .held)
        XCTAssertRefused(second.consider(intro, view()))
        let later = statement(.introduce, by: "c", c, name: "laptop", key: newcomer.publicKey, time: 10_000)
        XCTAssertRefused(second.consider(later, view()))
        // A key a person put in keys/revoked/ is not re-admitted either.
        var third = TrustLedger()
        var v = view()
        v.revokedOnDisk = [newcomer.publicKey]
        XCTAssertRefused(third.consider(intro, v))
        // A new key under the same name is another device: it may be introduced.
        let replacement = statement(.introduce, by: "a", a, name: "laptop", key: Ed25519.KeyPair.generate().publicKey, time: 200)
        XCTAssertEqual(second.consider(replacement, view()), .introduce(replacement))
    }

    func testARevokedNodeCannotRevokeOrIntroduceAfterwards() {
        var ledger = TrustLedger()
        let revokeB = statement(.revoke, by: "a", a, name: "b", key: b.publicKey, time: 100)
        XCTAssertEqual(ledger.consider(revokeB, view()), .revoke(revokeB))
        // Even while b's key is still in keys/ (the move not seen yet), and even backdated.
        XCTAssertRefused(ledger.consider(statement(.revoke, by: "b", b, name: "a", key: a.publicKey, time: 1), view()))
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "b", b, name: "evil", key: newcomer.publicKey, time: 1), view()))
        // And once it is gone from keys/, not signed by a trusted key at all.
        var v = view()
        v.trusted["b"] = nil
        XCTAssertRefused(ledger.consider(statement(.revoke, by: "b", b, name: "a", key: a.publicKey, time: 200), v))
    }

    func testAnIntroductionNeverReplacesAKeyAndANodeNeverRevokesItself() {
        var ledger = TrustLedger()
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "a", a, name: "b", key: newcomer.publicKey), view()))
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "a", a, name: "c", key: newcomer.publicKey), view()))
        let revokeMe = statement(.revoke, by: "a", a, name: "c", key: c.publicKey)
        XCTAssertEqual(ledger.consider(revokeMe, view()), .held, "held and passed on, but not applied to itself")
        // A revocation of a key this node does not trust (another key under that name): held only.
        let other = statement(.revoke, by: "a", a, name: "b", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(other, view()), .held)
    }

    func testStatementsSurviveJSONAndARestart() throws {
        let s = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 1_700_000_000_000)
        let data = try JSONEncoder().encode(s)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"sig\""))
        let back = try JSONDecoder().decode(TrustStatement.self, from: data)
        XCTAssertEqual(back, s)
        XCTAssertTrue(back.isSigned(by: a.publicKey))
        var restarted = TrustLedger([s, s])
        XCTAssertEqual(restarted.statements.count, 1)
        XCTAssertEqual(restarted.consider(s, view()), .known)
    }
}

func XCTAssertRefused(_ outcome: TrustLedger.Outcome, file: StaticString = #filePath, line: UInt = #line) {
    if case .refused = outcome { return }
    XCTFail("expected a refusal, got \(outcome)", file: file, line: line)
}
