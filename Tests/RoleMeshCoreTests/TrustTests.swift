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
        XCTAssertEqual(problem("rm1-"), .mistyped)
        XCTAssertEqual(problem("rm1-0189"), .mistyped)          // outside the alphabet
        XCTAssertEqual(problem(text + "aa"), .mistyped)
        // Every prefix of a code is refused with a reason, none crashes.
        for n in 4..<text.count { XCTAssertNotNil(problem(String(text.prefix(n))), "prefix \(n)") }
        var bad = sampleCode(); bad.name = "no spaces"
        XCTAssertEqual(problem(bad.text), .badName)
        bad = sampleCode(); bad.addresses = []
        XCTAssertEqual(problem(bad.text), .noAddress)
        let v3 = [UInt8]([3, 0, 0])
        XCTAssertEqual(problem("rm1-" + Base32.encode(v3 + InviteCode.checksum(v3))), .badVersion)
        XCTAssertEqual(problem("rm1-" + Base32.encode([1] + Array(repeating: 7, count: 60))), .olderVersion)
        // Random bytes after the prefix: a reason, never a crash.
        var rng = SplitMix64(seed: 11)
        for _ in 0..<2000 {
            let bytes = (0..<Int(rng.next() % 120)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = problem("rm1-" + Base32.encode([1] + bytes))
        }
    }

    /// A mistyped letter anywhere (the key or the secret included) says "mistyped" before anything
    /// is sent, not that the inviter could not prove itself (issue 24).
    func testEveryOneLetterTypoIsCaughtAsMistyped() {
        let text = sampleCode().text
        let letters = Array(text), alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        for i in InviteCode.prefix.count..<letters.count {
            var typo = letters
            typo[i] = alphabet[(alphabet.firstIndex(of: letters[i])! + 1) % alphabet.count]
            do { _ = try InviteCode.parse(String(typo)); XCTFail("a typo at \(i) parsed") } catch {
                XCTAssertTrue(error == .mistyped || error == .olderVersion, "typo at \(i): \(error)")
            }
        }
    }

    /// Several invites for one name: each code names its own (the id comes from the secret).
    func testInviteIDsDifferPerSecret() {
        var a = sampleCode(), b = sampleCode()
        b.secret = Array(repeating: 1, count: 16)
        XCTAssertNotEqual(a.id, b.id)
        XCTAssertEqual(a.id.count, 8)
        a.expires += 1
        XCTAssertEqual(a.id, sampleCode().id, "the id depends on the secret only")
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
    let recovery = RecoveryCode.generate()

    /// c's view: a and b are its introducers unless told otherwise.
    func view(me: String = "c", introducers: [String] = ["a", "b"], extra: [String: [UInt8]] = [:]) -> TrustLedger.View {
        var trusted = ["a": a.publicKey, "b": b.publicKey, "c": c.publicKey]
        for (k, v) in extra { trusted[k] = v }
        return TrustLedger.View(me: me, trusted: trusted, introducers: introducers, recoveryKey: recovery.keyPair.publicKey)
    }

    func statement(_ kind: TrustStatement.Kind, by: String, _ signer: Ed25519.KeyPair, name: String, key: [UInt8], time: Int64 = 1,
                   grants: [String]? = nil) -> TrustStatement {
        TrustStatement.make(kind, by: by, name: name, key: key, time: time, grants: grants, sign: signer.sign)
    }

    func rescue(_ kind: TrustStatement.Kind, name: String, key: [UInt8], time: Int64 = 5) -> TrustStatement {
        TrustStatement.make(kind, by: "c", name: name, key: key, time: time, recovery: true, sign: recovery.keyPair.sign)
    }

    func testAnIntroductionFromATrustedIntroducerIsAppliedOnce() {
        var ledger = TrustLedger()
        let s = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, grants: ["build"])
        XCTAssertEqual(ledger.consider(s, view()), .accepted([.introduce(s, grants: ["build"])]))
        XCTAssertEqual(ledger.consider(s, view()), .known)
        XCTAssertEqual(ledger.statements, [s])
        // Heard from a second introducer once trusted: held, nothing to write (its grants are older).
        let t = statement(.introduce, by: "b", b, name: "laptop", key: newcomer.publicKey, time: 0, grants: ["x"])
        XCTAssertEqual(ledger.consider(t, view(extra: ["laptop": newcomer.publicKey])), .accepted([]))
    }

    func testStatementsMustBeSignedByATrustedAcceptedIntroducer() {
        var ledger = TrustLedger()
        let stranger = Ed25519.KeyPair.generate()
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "x", stranger, name: "laptop", key: newcomer.publicKey), view()))
        // Signed by someone else than it claims.
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "a", b, name: "laptop", key: newcomer.publicKey), view()))
        // Tampered after signing: the name, or the grants.
        var s = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, grants: ["build"])
        s.name = "phone"
        XCTAssertRefused(ledger.consider(s, view()))
        var g = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, grants: ["build"])
        g.grants = ["build", "gpu"]
        XCTAssertRefused(ledger.consider(g, view()))
        XCTAssertEqual(ledger.notIntroducer, 0, "only trusted signers that are not introducers are counted")
        // introducers = ["b"]: a's word does not count (and is counted once, however often it comes); b's and our own do.
        let fromA = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey)
        XCTAssertRefused(ledger.consider(fromA, view(introducers: ["b"])))
        XCTAssertRefused(ledger.consider(fromA, view(introducers: ["b"])))
        XCTAssertEqual(ledger.notIntroducer, 1)
        let fromB = statement(.introduce, by: "b", b, name: "laptop", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(fromB, view(introducers: ["b"])), .accepted([.introduce(fromB, grants: nil)]))
        let own = statement(.introduce, by: "c", c, name: "tablet", key: Ed25519.KeyPair.generate().publicKey)
        XCTAssertEqual(ledger.consider(own, view(introducers: [])), .accepted([.introduce(own, grants: nil)]))
        XCTAssertEqual(ledger.statements, [fromB, own])
    }

    func testANonIntroducersRevocationOfEveryoneChangesNothing() {
        var ledger = TrustLedger()
        let laptop = Ed25519.KeyPair.generate()
        let v = view(introducers: ["a"], extra: ["laptop": laptop.publicKey])
        for (n, k) in [("a", a.publicKey), ("b", b.publicKey), ("c", c.publicKey)] {
            XCTAssertRefused(ledger.consider(statement(.revoke, by: "laptop", laptop, name: n, key: k), v))
        }
        XCTAssertEqual(ledger.statements, [], "nothing held, nothing passed on")
        XCTAssertEqual(ledger.notIntroducer, 3)
        XCTAssertEqual(ledger.refusals.map(\.name), ["a", "b", "c"])
        XCTAssertFalse(ledger.isRevoked(c.publicKey))
        // The owner's introducer revokes the laptop: that counts, and the laptop's later word never does.
        let out = statement(.revoke, by: "a", a, name: "laptop", key: laptop.publicKey, time: 10)
        XCTAssertEqual(ledger.consider(out, v), .accepted([.revoke(out)]))
        XCTAssertEqual(ledger.standing(of: laptop.publicKey, hasRecoveryKey: true), .revoked(out))
    }

    func testARevocationBeatsAnIntroductionInEitherOrder() {
        let intro = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 100)
        let revoke = statement(.revoke, by: "b", b, name: "laptop", key: newcomer.publicKey, time: 50)
        // Introduction first: applied, then revoked.
        var first = TrustLedger()
        XCTAssertEqual(first.consider(intro, view()), .accepted([.introduce(intro, grants: nil)]))
        XCTAssertEqual(first.consider(revoke, view(extra: ["laptop": newcomer.publicKey])), .accepted([.revoke(revoke)]))
        XCTAssertEqual(first.statements, [revoke], "the introduction stops spreading")
        // Revocation first (even with an older time): the introduction never applies.
        var second = TrustLedger()
        XCTAssertEqual(second.consider(revoke, view()), .accepted([]))
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
        XCTAssertEqual(second.consider(replacement, view()), .accepted([.introduce(replacement, grants: nil)]))
    }

    func testARevokedKeysStatementsNeverCountAgainWheneverSigned() {
        var ledger = TrustLedger()
        // b (an introducer) introduced a device and revoked another before it was itself revoked.
        let gadget = Ed25519.KeyPair.generate(), victim = Ed25519.KeyPair.generate()
        let v = view(extra: ["victim": victim.publicKey])
        let intro = statement(.introduce, by: "b", b, name: "gadget", key: gadget.publicKey, time: 5)
        let hit = statement(.revoke, by: "b", b, name: "victim", key: victim.publicKey, time: 6)
        XCTAssertEqual(ledger.consider(intro, v), .accepted([.introduce(intro, grants: nil)]))
        XCTAssertEqual(ledger.consider(hit, v), .accepted([.revoke(hit)]))
        XCTAssertEqual(ledger.introduced(by: "b", key: b.publicKey), [intro])
        // a revokes b: everything b signed stops counting and spreading; b's revocation gives its key back.
        let revokeB = statement(.revoke, by: "a", a, name: "b", key: b.publicKey, time: 100)
        XCTAssertEqual(ledger.consider(revokeB, v), .accepted([.restore(hit), .revoke(revokeB), .introducer(name: "b", add: false)]))
        XCTAssertEqual(ledger.statements, [revokeB])
        XCTAssertFalse(ledger.isRevoked(victim.publicKey))
        // Even while b's key is still in keys/ (the move not seen yet), and even backdated.
        XCTAssertRefused(ledger.consider(statement(.revoke, by: "b", b, name: "a", key: a.publicKey, time: 1), v))
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "b", b, name: "evil", key: newcomer.publicKey, time: 1), v))
        XCTAssertEqual(ledger.consider(hit, v), .known, "a revocation it signed before is not taken again from a peer")
        // And once it is gone from keys/, not signed by a trusted key at all.
        var gone = v
        gone.trusted["b"] = nil
        XCTAssertRefused(ledger.consider(statement(.revoke, by: "b", b, name: "a", key: a.publicKey, time: 200), gone))
    }

    /// A stolen introducer made its accomplice an introducer and widened a grant: once it is
    /// revoked, neither counts, whatever order the statements came in.
    func testWhatARevokedIntroducerGrantedOrNamedIsUndone() {
        var ledger = TrustLedger()
        let accomplice = Ed25519.KeyPair.generate()
        var v = view(extra: ["tv": newcomer.publicKey, "acc": accomplice.publicKey])
        let grantA = statement(.grant, by: "a", a, name: "tv", key: newcomer.publicKey, time: 1, grants: ["media"])
        let grantB = statement(.grant, by: "b", b, name: "tv", key: newcomer.publicKey, time: 2, grants: ["media", "build"])
        let named = statement(.introducerAdd, by: "b", b, name: "acc", key: accomplice.publicKey, time: 3)
        _ = ledger.consider(grantA, v)
        _ = ledger.consider(grantB, v)
        XCTAssertEqual(ledger.consider(named, v), .accepted([.introducer(name: "acc", add: true)]))
        v.introducers.append("acc")
        let revokeB = statement(.revoke, by: "a", a, name: "b", key: b.publicKey, time: 10)
        guard case .accepted(let effects) = ledger.consider(revokeB, v) else { return XCTFail("the revocation was not accepted") }
        let expected: [TrustLedger.Effect] = [.grant(name: "tv", key: newcomer.publicKey, grants: ["media"]),
                                              .introducer(name: "acc", add: false), .revoke(revokeB), .introducer(name: "b", add: false)]
        XCTAssertEqual(effects.count, expected.count, "\(effects)")
        for e in expected { XCTAssertTrue(effects.contains(e), "\(e) is missing from \(effects)") }
        XCTAssertEqual(ledger.latestGrant(of: newcomer.publicKey), grantA)
        XCTAssertNil(ledger.introducerStatus(of: accomplice.publicKey))
    }

    func testJunkNeverEvictsAGenuineRevocation() {
        var ledger = TrustLedger()
        let genuine = statement(.revoke, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 1)
        XCTAssertEqual(ledger.consider(genuine, view()), .accepted([]))
        // An introducer gone bad floods revocations of random keys: it fills its own cap only.
        var held = 0
        for i in 0..<(TrustLedger.perSigner + 50) {
            if case .accepted = ledger.consider(statement(.revoke, by: "b", b, name: "n\(i)", key: Ed25519.KeyPair.generate().publicKey, time: 2), view()) {
                held += 1
            }
        }
        XCTAssertEqual(held, TrustLedger.perSigner)
        XCTAssertTrue(ledger.statements.contains(genuine))
        // A's next genuine statement still counts.
        let next = statement(.revoke, by: "a", a, name: "phone", key: Ed25519.KeyPair.generate().publicKey, time: 3)
        XCTAssertEqual(ledger.consider(next, view()), .accepted([]))
        // A non-introducer's junk is not held at all.
        let laptop = Ed25519.KeyPair.generate()
        let before = ledger.statements.count
        for i in 0..<600 {
            _ = ledger.consider(statement(.revoke, by: "laptop", laptop, name: "m\(i)", key: Ed25519.KeyPair.generate().publicKey),
                                view(extra: ["laptop": laptop.publicKey]))
        }
        XCTAssertEqual(ledger.statements.count, before)
        XCTAssertEqual(ledger.notIntroducer, 600)
        XCTAssertEqual(ledger.refusals.count, 64, "the audit keeps the latest refusals, bounded")
    }

    func testIntroductionsPerSignerAreCapped() {
        var ledger = TrustLedger()
        var accepted = 0
        for i in 0..<(TrustLedger.keysPerSigner + 10) {
            if case .accepted = ledger.consider(statement(.introduce, by: "a", a, name: "k\(i)", key: Ed25519.KeyPair.generate().publicKey), view()) {
                accepted += 1
            }
        }
        XCTAssertEqual(accepted, TrustLedger.keysPerSigner)
        // b is not held back by a's flood.
        let s = statement(.introduce, by: "b", b, name: "tv", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(s, view()), .accepted([.introduce(s, grants: nil)]))
    }

    func testGrantsAndIntroducerChangesTheLatestWinsInAnyOrder() {
        let v = view(extra: ["laptop": newcomer.publicKey])
        let intro = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 1, grants: ["build"])
        let more = statement(.grant, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 2, grants: ["build", "backup:gpu"])
        let less = statement(.grant, by: "b", b, name: "laptop", key: newcomer.publicKey, time: 3, grants: [])
        for order in [[intro, more, less], [less, more, intro], [more, less, intro]] {
            var ledger = TrustLedger()
            for s in order { _ = ledger.consider(s, v) }
            XCTAssertEqual(ledger.latestGrant(of: newcomer.publicKey), less, "order \(order.map(\.time))")
        }
        var ledger = TrustLedger()
        XCTAssertEqual(ledger.consider(more, v), .accepted([.grant(name: "laptop", key: newcomer.publicKey, grants: ["backup:gpu", "build"])]))
        XCTAssertEqual(ledger.consider(less, v), .accepted([.grant(name: "laptop", key: newcomer.publicKey, grants: [])]))
        XCTAssertEqual(ledger.consider(more, v), .known)
        XCTAssertEqual(ledger.statements, [more, less], "each signer's latest is held")
        let again = statement(.grant, by: "b", b, name: "laptop", key: newcomer.publicKey, time: 4, grants: ["gpu"])
        XCTAssertEqual(ledger.consider(again, v), .accepted([.grant(name: "laptop", key: newcomer.publicKey, grants: ["gpu"])]))
        XCTAssertEqual(ledger.statements, [more, again], "a signer's replaced grant stops spreading")
        XCTAssertEqual(ledger.consider(less, v), .known)

        let add = statement(.introducerAdd, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 1)
        let remove = statement(.introducerRemove, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 2)
        var l1 = TrustLedger(), l2 = TrustLedger()
        XCTAssertEqual(l1.consider(add, v), .accepted([.introducer(name: "laptop", add: true)]))
        var withIt = v
        withIt.introducers.append("laptop")
        XCTAssertEqual(l1.consider(remove, withIt), .accepted([.introducer(name: "laptop", add: false)]))
        XCTAssertEqual(l2.consider(remove, v), .accepted([]))
        XCTAssertEqual(l2.consider(add, v), .known, "the older add does not undo the later remove")
        XCTAssertEqual(l1.introducerStatus(of: newcomer.publicKey), false)
        XCTAssertEqual(l2.introducerStatus(of: newcomer.publicKey), false)
    }

    func testTheRecoveryKeyRevokesAndNamesIntroducersButIntroducesNobody() {
        var ledger = TrustLedger()
        // The only introducer a is stolen; c uses the code.
        let out = rescue(.revoke, name: "a", key: a.publicKey)
        XCTAssertEqual(ledger.consider(out, view(introducers: ["a"])), .accepted([.revoke(out), .introducer(name: "a", add: false)]))
        let makeB = rescue(.introducerAdd, name: "b", key: b.publicKey)
        XCTAssertEqual(ledger.consider(makeB, view(introducers: [])), .accepted([.introducer(name: "b", add: true)]))
        XCTAssertEqual(ledger.introducersByStatement, ["b"])
        // The thief's later statements with a's key count nowhere.
        XCTAssertRefused(ledger.consider(statement(.revoke, by: "a", a, name: "b", key: b.publicKey, time: 99), view(introducers: ["a", "b"])))
        // The code signs only revocations and introducer changes; a code that is not the mesh's counts for nothing.
        let intro = TrustStatement.make(.introduce, by: "c", name: "x", key: newcomer.publicKey, time: 1, recovery: true, sign: recovery.keyPair.sign)
        XCTAssertRefused(ledger.consider(intro, view()))
        let other = RecoveryCode.generate()
        let fake = TrustStatement.make(.revoke, by: "c", name: "b", key: b.publicKey, time: 1, recovery: true, sign: other.keyPair.sign)
        XCTAssertRefused(ledger.consider(fake, view()))
        var noKey = view()
        noKey.recoveryKey = nil
        XCTAssertRefused(ledger.consider(rescue(.revoke, name: "b", key: b.publicKey, time: 7), noKey))
    }

    func testRecoveryCodesRoundTripAndCatchTypos() throws {
        let code = RecoveryCode.generate()
        XCTAssertTrue(code.text.hasPrefix("rmr1-"))
        XCTAssertEqual(RecoveryCode.parse(code.text)?.seed, code.seed)
        XCTAssertEqual(RecoveryCode.parse("  " + code.text.uppercased().replacingOccurrences(of: "-", with: " ") + "\n")?.seed, code.seed)
        var letters = Array(code.text)
        letters[10] = letters[10] == "a" ? "b" : "a"
        XCTAssertNil(RecoveryCode.parse(String(letters)), "a mistyped letter is caught")
        XCTAssertNil(RecoveryCode.parse(String(code.text.dropLast(2))))
        XCTAssertNil(RecoveryCode.parse("rm1-" + code.text.dropFirst(5)))
    }

    func testStandingSaysWhoMayChangeTrust() {
        var ledger = TrustLedger()
        XCTAssertEqual(ledger.standing(of: c.publicKey, hasRecoveryKey: false), .introducer, "a mesh from before introducers")
        XCTAssertEqual(ledger.standing(of: c.publicKey, hasRecoveryKey: true), .notIntroducer)
        let first = rescue(.introducerAdd, name: "c", key: c.publicKey)
        XCTAssertEqual(ledger.consider(first, view(introducers: [])), .accepted([]))
        XCTAssertEqual(ledger.standing(of: c.publicKey, hasRecoveryKey: true), .introducer)
        XCTAssertEqual(ledger.standing(of: a.publicKey, hasRecoveryKey: true), .notIntroducer)
    }

    func testAnIntroductionNeverReplacesAKeyAndANodeNeverRevokesItself() {
        var ledger = TrustLedger()
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "a", a, name: "b", key: newcomer.publicKey), view()))
        XCTAssertRefused(ledger.consider(statement(.introduce, by: "a", a, name: "c", key: newcomer.publicKey), view()))
        let revokeMe = statement(.revoke, by: "a", a, name: "c", key: c.publicKey)
        XCTAssertEqual(ledger.consider(revokeMe, view()), .accepted([.revokedSelf(revokeMe)]), "held and passed on, and said, but not applied")
        // A revocation of a key this node does not trust (another key under that name): held only.
        let other = statement(.revoke, by: "a", a, name: "b", key: newcomer.publicKey)
        XCTAssertEqual(ledger.consider(other, view()), .accepted([]))
    }

    func testOnlyCurrentIntroducersStatementsAreKept() {
        var ledger = TrustLedger()
        let intro = statement(.introduce, by: "b", b, name: "tv", key: newcomer.publicKey)
        let revocation = statement(.revoke, by: "b", b, name: "old", key: Ed25519.KeyPair.generate().publicKey)
        _ = ledger.consider(intro, view())
        _ = ledger.consider(revocation, view())
        ledger.prune(view(introducers: ["a"]))
        XCTAssertEqual(ledger.statements, [revocation], "b is no introducer now: its introduction goes, its revocation stays")
    }

    func testStatementsSurviveJSONAndARestart() throws {
        let s = statement(.introduce, by: "a", a, name: "laptop", key: newcomer.publicKey, time: 1_700_000_000_000, grants: ["backup:x", "y"])
        let data = try JSONEncoder().encode(s)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"sig\""))
        let back = try JSONDecoder().decode(TrustStatement.self, from: data)
        XCTAssertEqual(back, s)
        XCTAssertTrue(back.isSigned(by: a.publicKey))
        var restarted = TrustLedger([s, s])
        XCTAssertEqual(restarted.statements.count, 1)
        XCTAssertEqual(restarted.consider(s, view()), .known)
        let r = rescue(.revoke, name: "b", key: b.publicKey)
        XCTAssertEqual(try JSONDecoder().decode(TrustStatement.self, from: JSONEncoder().encode(r)), r)
    }

    /// A statement of the first version (no fields) signs the same bytes as before: held files still verify.
    func testStatementsWithoutFieldsSignTheFirstVersionsBytes() {
        var w = ByteWriter()
        w.raw(Array("rolemesh/1 trust\0".utf8)); w.u8(2); w.shortString("a"); w.shortString("laptop"); w.raw(newcomer.publicKey); w.u64(42)
        XCTAssertEqual(TrustStatement.signedBytes(.revoke, by: "a", name: "laptop", key: newcomer.publicKey, time: 42), w.bytes)
        // Fields follow as type-length-value: grants marker, each grant sorted, then the recovery flag.
        let withFields = TrustStatement.signedBytes(.introduce, by: "a", name: "laptop", key: newcomer.publicKey, time: 42,
                                                   grants: ["y", "backup:x"], recovery: false)
        XCTAssertEqual(Array(withFields.suffix(2 + 10 + 3)), [1, 0, 2, 8] + Array("backup:x".utf8) + [2, 1] + Array("y".utf8))
    }
}

func XCTAssertRefused(_ outcome: TrustLedger.Outcome, file: StaticString = #filePath, line: UInt = #line) {
    if case .refused = outcome { return }
    XCTFail("expected a refusal, got \(outcome)", file: file, line: line)
}
