import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// Who may change trust (docs/contract.md, "Who may change trust"), with real agents and a thief:
/// a test peer that signs statements and slot records with a stolen device's secret key file.
/// A mesh is grown as a person grows it: `init` on desk (the first device, its own authority), then
/// `invite` on an introducer and `join` on each new device.
final class TrustIntegrationTests: XCTestCase {
    var cluster: Cluster!
    var recoveryCode = ""
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    // MARK: - Growing a mesh as a person does

    func host(_ name: String) {
        if cluster.hosts[name] == nil { cluster.hosts[name] = "127.0.1.\(10 + cluster.hosts.count)" }
    }

    /// `init desk` (the recovery code it prints is kept) and its agent.
    func first(_ name: String = "desk", extra: [String] = []) throws {
        host(name)
        let r = try cluster.cli(["init", name, "--dir", cluster.dir(name), "--listen", cluster.address(name), "--profile", "fast"] + extra)
        XCTAssertEqual(r.status, 0, r.stderr)
        recoveryCode = r.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("rmr1-") } ?? ""
        XCTAssertFalse(recoveryCode.isEmpty, "init prints a recovery code: \(r.stdout)")
        cluster.names.append(name)
        try cluster.startOne(name)
    }

    /// `invite NAME` on `inviter`, `join` on the new device, its agent started, every node up.
    func add(_ name: String, by inviter: String = "desk", invite inviteArgs: [String] = [], join joinArgs: [String] = []) throws {
        host(name)
        let code = try cluster.cli(["invite", name, "--dir", cluster.dir(inviter)] + inviteArgs)
        XCTAssertEqual(code.status, 0, code.stderr)
        let j = try cluster.cli(["join", code.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "--dir", cluster.dir(name),
                                 "--listen", cluster.address(name), "--profile", "fast"] + joinArgs)
        XCTAssertEqual(j.status, 0, j.stderr + cluster.log(inviter))
        cluster.names.append(name)
        try cluster.startOne(name)
        let running = cluster.names.filter { cluster.processes[$0] != nil }
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(running) }, "\(running.map { self.cluster.states(seenBy: $0) })")
    }

    func file(_ node: String, _ path: String) -> String? { try? String(contentsOfFile: cluster.dir(node) + "/" + path, encoding: .utf8) }
    func trusts(_ node: String, _ other: String) -> Bool { file(node, "keys/\(other).pub") != nil }
    func revoked(_ node: String, _ other: String) -> Bool { file(node, "keys/revoked/\(other).pub") != nil && !trusts(node, other) }

    func key(_ node: String, secret: Bool = false) throws -> [UInt8] {
        let text = try XCTUnwrap(file(node, "keys/\(node).\(secret ? "secret" : "pub")"))
        return [UInt8](try XCTUnwrap(Data(base64Encoded: String(text.split(whereSeparator: \.isWhitespace).last ?? ""))))
    }

    /// The thief: `node`'s key pair, read from its secret key file.
    func stolen(_ node: String) throws -> Ed25519.KeyPair { Ed25519.KeyPair(seed: try key(node, secret: true)) }

    /// One slot-record exchange with `server`, as `node` (its stolen key): these statements and records in.
    func push(as node: String, to server: String, trust: [TrustStatement] = [], records: [SlotRun] = []) throws {
        let pair = try stolen(node)
        let pub = try key(server)
        let address = WireAddress(host: cluster.hosts[server]!, port: cluster.port)!
        let ch = try blocking { try await SecureChannel.connect(to: address, expected: server, me: node, keyPair: pair,
                                                                trusted: [server: pub], from: nil) }
        defer { ch.close() }
        try ch.sendBlocking(Frame(.request, encoding: TaskRequest.slots(records, schedules: [], trust: trust)))
        XCTAssertEqual(try ch.receiveBlocking()?.type, .slots)
    }

    func sign(_ kind: TrustStatement.Kind, as node: String, name: String, key: [UInt8], grants: [String]? = nil) throws -> TrustStatement {
        TrustStatement.make(kind, by: node, name: name, key: key, time: Int64(Date().timeIntervalSince1970 * 1000), grants: grants,
                            sign: try stolen(node).sign)
    }

    func dropped(_ node: String, _ counter: String) -> Int { cluster.statusJSON(node)?["dropped"]?[counter]?.int ?? -1 }

    /// `watch --json` on `node` in the background; its lines so far.
    func watch(_ node: String) throws -> () -> [JSON] {
        let out = cluster.root.appendingPathComponent("watch.\(node)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Cluster.binary)
        p.arguments = ["watch", "--json", "--dir", cluster.dir(node)]
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        addTeardownBlock { if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() } }
        XCTAssertTrue(waitUntil(timeout: 5) { (try? Data(contentsOf: out))?.isEmpty == false || self.cluster.statusJSON(node) != nil })
        return { ((try? String(contentsOf: out, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { JSON.parse(String($0)) } }
    }

    // MARK: - Findings

    /// A stolen laptop (not an introducer) signs "revoke desk, homeserver, pi": nothing changes
    /// anywhere, and each refusal is counted. The owner's `revoke laptop` on desk then spreads
    /// within 10 s, the laptop learns it was revoked (status, watch, hooks, doctor), and its key
    /// never counts again.
    func testANonIntroducersRevocationOfEveryoneChangesNothingAndTheOwnersRevokeSpreads() throws {
        try first()
        try add("homeserver")
        try add("pi")
        try add("laptop")
        let hooked = cluster.root.path + "/hook.pi"
        let hooks = cluster.dir("pi") + "/hooks"
        try FileManager.default.createDirectory(atPath: hooks, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: hooks + "/log", contents: Data("#!/bin/sh\nread line\necho \"$line\" >> \(hooked)\n".utf8),
                                       attributes: [.posixPermissions: 0o755])
        let events = try watch("homeserver"), laptopEvents = try watch("laptop")

        var junk: [TrustStatement] = []
        for victim in ["desk", "homeserver", "pi"] { junk.append(try sign(.revoke, as: "laptop", name: victim, key: try key(victim))) }
        for server in ["desk", "homeserver", "pi"] { try push(as: "laptop", to: server, trust: junk) }
        for server in ["desk", "homeserver", "pi"] {
            XCTAssertEqual(dropped(server, "not_introducer"), 3, "\(server) counts the laptop's three statements once")
        }
        XCTAssertFalse(waitUntil(timeout: 2) { ["desk", "homeserver", "pi"].contains { n in ["desk", "homeserver", "pi"].contains { !self.trusts(n, $0) && n != $0 } } },
                       "a non-introducer's revocation changed a key file")
        XCTAssertFalse(file("homeserver", "state/trust.json")?.contains("\"kind\":\"revoke\"") ?? false, "nor is it held and passed on")
        // The refusals are in the audit.
        let audit = try XCTUnwrap(JSON.parse(try cluster.cli(["trust", "--json", "--dir", cluster.dir("pi")]).stdout))
        XCTAssertEqual(audit["refused"]?.array?.count, 3, "\(audit.serialized)")
        XCTAssertEqual(audit["refused"]?.array?.first?["by"]?.string, "laptop")

        // The laptop's own commands say plainly that it may not.
        let r = try cluster.cli(["revoke", "desk", "--dir", cluster.dir("laptop")])
        XCTAssertEqual(r.status, 77, r.stdout + r.stderr)
        XCTAssertTrue(r.stderr.contains("laptop is not an introducer") && r.stderr.contains("only desk may"), r.stderr)
        XCTAssertFalse(r.stdout.contains("moved"))

        // The owner revokes the laptop from desk: it spreads within 10 s.
        let t0 = Date()
        let out = try cluster.cli(["revoke", "laptop", "--dir", cluster.dir("desk")])
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stdout.contains("keys/laptop.pub moved to keys/revoked/"), out.stdout)
        XCTAssertTrue(waitUntil(timeout: 10 - Date().timeIntervalSince(t0)) { ["desk", "homeserver", "pi"].allSatisfy { self.revoked($0, "laptop") } },
                      "the owner's revocation did not spread within 10 s: \(cluster.log("pi"))")
        print("the owner's revocation reached every node \(String(format: "%.1f", Date().timeIntervalSince(t0))) s after `revoke`")
        // Everywhere: member-revoked, with node and by.
        XCTAssertTrue(waitUntil(timeout: 5) { events().contains { $0["event"]?.string == "member-revoked" && $0["node"]?.string == "laptop" && $0["by"]?.string == "desk" } },
                      "\(events().map(\.serialized))")
        XCTAssertTrue(waitUntil(timeout: 5) { ((try? String(contentsOfFile: hooked, encoding: .utf8)) ?? "").contains("\"event\":\"member-revoked\"") })
        // The laptop itself is told.
        XCTAssertTrue(waitUntil(timeout: 5) { laptopEvents().contains { $0["event"]?.string == "member-revoked" && $0["node"]?.string == "laptop" } },
                      "\(laptopEvents().map(\.serialized))")
        let status = try cluster.cli(["status", "--dir", cluster.dir("laptop")])
        XCTAssertTrue(status.stdout.hasPrefix("revoked by desk at 20"), status.stdout)
        XCTAssertEqual(cluster.statusJSON("laptop")?["revoked"]?["by"]?.string, "desk")
        let doctor = try cluster.cli(["doctor", "--dir", cluster.dir("laptop")], timeout: 30)
        XCTAssertTrue(doctor.stdout.contains("laptop was revoked by desk at"), doctor.stdout)
        XCTAssertFalse(doctor.stdout.contains("copy /"), "doctor does not suggest copying the key back: \(doctor.stdout)")

        // The stolen key's later word counts for nothing, even a statement it had signed before.
        let late = try sign(.introduce, as: "laptop", name: "nas", key: Ed25519.KeyPair.generate().publicKey)
        try? push(as: "laptop", to: "pi", trust: [late] + junk)
        XCTAssertFalse(trusts("pi", "nas"))
    }

    /// `invite`, `grant` and `introducers` on a device that is not an introducer: 77, naming the introducers.
    func testANonIntroducersInviteIsRefused() throws {
        try first()
        try add("laptop")
        for args in [["invite", "nas"], ["grant", "laptop", "build"], ["ungrant", "desk", "build"], ["introducers", "add", "laptop"]] {
            let r = try cluster.cli(args + ["--dir", cluster.dir("laptop")])
            XCTAssertEqual(r.status, 77, "\(args): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("laptop is not an introducer") && r.stderr.contains("only desk may"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        XCTAssertTrue(r(["invite", "nas"], on: "desk").status == 0, "the first device may")
        // Bypassing the command: the thief's own introduction is not taken by desk.
        try push(as: "laptop", to: "desk", trust: [try sign(.introduce, as: "laptop", name: "nas", key: Ed25519.KeyPair.generate().publicKey)])
        XCTAssertFalse(waitUntil(timeout: 2) { self.trusts("desk", "nas") })
        XCTAssertEqual(dropped("desk", "not_introducer"), 1)
    }

    func r(_ args: [String], on node: String) -> Cluster.Result {
        (try? cluster.cli(args + ["--dir", cluster.dir(node)])) ?? Cluster.Result(status: -1, stdout: "", stderr: "")
    }

    /// desk names homeserver an introducer; homeserver admits nas; `revoke homeserver --cascade`
    /// on desk takes both out everywhere, and lists what homeserver introduced.
    func testAKeyAnIntroducerAddedIsGoneEverywhereAfterARevokeWithCascade() throws {
        try first()
        try add("homeserver")
        try add("pi")
        let made = r(["introducers", "add", "homeserver"], on: "desk")
        XCTAssertEqual(made.status, 0, made.stderr)
        XCTAssertTrue(waitUntil(timeout: 10) { self.file("pi", "node.toml")?.contains("introducers = [\"desk\", \"homeserver\"]") ?? false },
                      file("pi", "node.toml") ?? "")
        try add("nas", by: "homeserver")
        XCTAssertTrue(file("nas", "node.toml")?.contains("introducers = [\"homeserver\", \"desk\"]") ?? false, "the inviter's chain")
        XCTAssertTrue(waitUntil(timeout: 10) { ["desk", "pi"].allSatisfy { self.trusts($0, "nas") } })
        XCTAssertTrue(file("pi", "keys/nas.pub")?.hasPrefix("# introduced by homeserver at 20") ?? false)

        let t0 = Date()
        let out = r(["revoke", "homeserver", "--cascade"], on: "desk")
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stdout.contains("homeserver introduced nas (20"), out.stdout)
        XCTAssertTrue(out.stdout.contains("also revoked (--cascade): nas"), out.stdout)
        XCTAssertTrue(waitUntil(timeout: 10) { ["desk", "pi"].allSatisfy { self.revoked($0, "homeserver") && self.revoked($0, "nas") } },
                      "\(["desk", "pi"].map { (self.trusts($0, "homeserver"), self.trusts($0, "nas")) }) \(cluster.log("pi"))")
        print("--cascade reached every node \(String(format: "%.1f", Date().timeIntervalSince(t0))) s after `revoke`")
        XCTAssertFalse(file("pi", "node.toml")?.contains("\"homeserver\"") ?? true, "a revoked introducer is no longer one")
        // Each revoked device was told.
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.statusJSON("nas")?["revoked"]?["by"]?.string == "desk" })
        // nas cannot bring anything back: it was never an introducer, and now it is revoked.
        try? push(as: "nas", to: "pi", trust: [try sign(.introduce, as: "nas", name: "laptop", key: Ed25519.KeyPair.generate().publicKey)])
        XCTAssertFalse(trusts("pi", "laptop"))
    }

    /// 600 junk revocations from a stolen laptop, and more than its cap from a stolen introducer,
    /// do not push desk's genuine revocation out: a device that was off when it was made still
    /// learns it from another node.
    func testJunkRevocationsDoNotEvictAGenuineOne() throws {
        try first()
        try add("homeserver")
        try add("pi")
        try add("tv")
        try add("laptop")
        XCTAssertEqual(r(["introducers", "add", "homeserver"], on: "desk").status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.file("laptop", "node.toml")?.contains("\"homeserver\"") ?? false })
        cluster.crash("pi")                 // off while tv is revoked
        XCTAssertEqual(r(["revoke", "tv"], on: "desk").status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.revoked("homeserver", "tv") })
        // The flood, at homeserver: a non-introducer's junk, then an introducer's own (homeserver is stolen too).
        var junk: [TrustStatement] = []
        for i in 0..<600 { junk.append(try sign(.revoke, as: "laptop", name: "x\(i)", key: Ed25519.KeyPair.generate().publicKey)) }
        try push(as: "laptop", to: "homeserver", trust: junk)
        var ownJunk: [TrustStatement] = []
        for i in 0..<(TrustLedger.perSigner + 100) {
            ownJunk.append(try sign(.revoke, as: "homeserver", name: "y\(i)", key: Ed25519.KeyPair.generate().publicKey))
        }
        try push(as: "homeserver", to: "laptop", trust: ownJunk)
        XCTAssertEqual(dropped("homeserver", "not_introducer"), 600)
        let held = file("laptop", "state/trust.json") ?? ""
        XCTAssertTrue(held.contains("\"name\":\"tv\""), "the genuine revocation was evicted")
        XCTAssertEqual(held.components(separatedBy: "\"by\":\"homeserver\"").count - 1, TrustLedger.perSigner, "capped per signer")
        // desk stops too: pi, back, can only learn it from the others.
        cluster.crash("desk")
        try cluster.startOne("pi")
        XCTAssertTrue(waitUntil(timeout: 15) { self.revoked("pi", "tv") }, "pi never learned of the revocation: \(cluster.log("pi"))")
    }

    /// desk holds `build`; the laptop was admitted granted nothing. Stolen, it takes `build` with
    /// perfect figures: desk's own `submit build/echo` still runs on desk, and `route` says why.
    func testAnUngrantedRoleIsNotRoutedTo() throws {
        try first(extra: ["--role", "build"])
        try add("laptop")
        for n in ["desk", "laptop"] {
            let d = cluster.dir(n) + "/roles/build"
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: d + "/echo", contents: Data("#!/bin/sh\necho \"ran on $ROLEMESH_NODE: $*\"\n".utf8),
                                           attributes: [.posixPermissions: 0o755])
        }
        XCTAssertTrue(file("desk", "keys/laptop.pub")?.contains("# granted:\n") ?? false, file("desk", "keys/laptop.pub") ?? "")
        let added = r(["roles", "add", "build"], on: "laptop")
        XCTAssertEqual(added.status, 0, added.stderr)
        XCTAssertTrue(added.stderr.contains("build is not granted to laptop"), added.stderr)
        XCTAssertEqual(r(["signal", "set", "load=0", "mem_free=1"], on: "laptop").status, 0)
        XCTAssertEqual(r(["signal", "set", "load=0.9", "mem_free=0.1"], on: "desk").status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.member("laptop", seenBy: "desk")?["roles"]?.array?.count == 1 })
        let route = r(["route", "build"], on: "desk")
        XCTAssertTrue(route.stdout.hasPrefix("build -> desk") && route.stdout.contains("skipped laptop: not granted"), route.stdout)
        let sub = try cluster.cli(["submit", "build/echo", "--dir", cluster.dir("desk"), "--", "--password", "hunter2"], stdin: Data("data".utf8))
        XCTAssertEqual(sub.status, 0, sub.stderr)
        XCTAssertEqual(sub.stdout, "ran on desk: --password hunter2\n")
        // Granting it is what makes the laptop a candidate (it scores better); taking it away, not.
        XCTAssertEqual(r(["grant", "laptop", "build"], on: "desk").status, 0)
        XCTAssertTrue(waitUntil(timeout: 10) { self.r(["route", "build"], on: "desk").stdout.hasPrefix("build -> laptop") })
        XCTAssertTrue(waitUntil(timeout: 10) { self.file("laptop", "keys/laptop.pub")?.contains("# granted: build\n") ?? false },
                      "the grant reaches the device itself")
        let un = r(["ungrant", "laptop", "build"], on: "desk")
        XCTAssertEqual(un.status, 0, un.stderr)
        XCTAssertTrue(waitUntil(timeout: 10) { self.r(["route", "build"], on: "desk").stdout.hasPrefix("build -> desk") })
        let audit = try XCTUnwrap(JSON.parse(r(["trust", "--json"], on: "desk").stdout))
        let laptop = try XCTUnwrap(audit["keys"]?.array?.first { $0["name"]?.string == "laptop" })
        XCTAssertEqual(laptop["granted"]?.array?.count, 0)
        XCTAssertEqual(laptop["introduced_by"]?.string, "desk")
        XCTAssertEqual(laptop["introducer"]?.bool, false)
        XCTAssertEqual(audit["keys"]?.array?.first { $0["name"]?.string == "desk" }?["introducer"]?.bool, true)
    }

    /// The only introducer, desk, is stolen; the thief revokes pi with its key. With the recovery
    /// code from `init`, the owner revokes desk and names homeserver an introducer on homeserver:
    /// desk's revocation of pi stops counting, every node follows, and homeserver admits a new device.
    func testRecoveryWorksWhenTheOnlyIntroducerIsStolen() throws {
        try first()
        try add("homeserver")
        try add("pi")
        cluster.crash("desk")           // the thief has it
        try push(as: "desk", to: "homeserver", trust: [try sign(.revoke, as: "desk", name: "pi", key: try key("pi"))])
        XCTAssertTrue(waitUntil(timeout: 10) { self.revoked("homeserver", "pi") })
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.statusJSON("pi")?["revoked"]?["by"]?.string == "desk" }, "pi was told")
        XCTAssertEqual(r(["invite", "tv"], on: "homeserver").status, 77, "homeserver is no introducer yet")
        // The revoked pi says so plainly rather than signing a revocation nobody would take.
        let refused = r(["revoke", "homeserver"], on: "pi")
        XCTAssertEqual(refused.status, 77, refused.stdout + refused.stderr)
        XCTAssertTrue(refused.stderr.contains("pi was revoked by desk at 20"), refused.stderr)
        XCTAssertFalse(refused.stdout.contains("moved"))

        // A wrong code changes nothing.
        let wrong = try cluster.cli(["revoke", "desk", "--recovery", "--dir", cluster.dir("homeserver")], stdin: Data((RecoveryCode.generate().text + "\n").utf8))
        XCTAssertEqual(wrong.status, 77, wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("not this mesh's recovery code"), wrong.stderr)

        let out = try cluster.cli(["revoke", "desk", "--recovery", "--dir", cluster.dir("homeserver")], stdin: Data((recoveryCode + "\n").utf8))
        XCTAssertEqual(out.status, 0, out.stderr)
        XCTAssertTrue(out.stdout.contains("revoked desk with the recovery code: keys/desk.pub moved"), out.stdout)
        XCTAssertTrue(out.stdout.contains("desk's revocations no longer count: pi"), out.stdout)
        let named = try cluster.cli(["introducers", "add", "homeserver", "--recovery", "--dir", cluster.dir("homeserver")],
                                    stdin: Data((recoveryCode + "\n").utf8))
        XCTAssertEqual(named.status, 0, named.stderr)
        // pi is back on homeserver, and pi hears of the recovery in turn.
        XCTAssertTrue(waitUntil(timeout: 10) { self.trusts("homeserver", "pi") }, cluster.log("homeserver"))
        XCTAssertTrue(waitUntil(timeout: 15) { self.revoked("pi", "desk") && (self.file("pi", "node.toml")?.contains("\"homeserver\"") ?? false) },
                      "\(file("pi", "node.toml") ?? "") \(cluster.log("pi"))")
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.statusJSON("pi")?["revoked"] == nil }, "pi's revocation no longer counts")
        XCTAssertFalse(file("pi", "node.toml")?.contains("\"desk\"") ?? true)
        // The thief's later word counts nowhere; homeserver now admits devices everyone accepts.
        try? push(as: "desk", to: "pi", trust: [try sign(.revoke, as: "desk", name: "homeserver", key: try key("homeserver"))])
        XCTAssertTrue(trusts("pi", "homeserver"))
        try add("tv", by: "homeserver")
        XCTAssertTrue(waitUntil(timeout: 10) { self.trusts("pi", "tv") })
    }
}
