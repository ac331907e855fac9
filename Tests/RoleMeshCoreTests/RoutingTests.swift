import XCTest
import RoleMeshCore

/// The five routing rules over hand-built views.
final class RoutingTests: XCTestCase {
    func m(_ name: String, _ state: MemberState = .alive, roles: [String] = [], backup: [String: Int] = [:],
           draining: Bool = false, load: Double? = 0.2, mem: Double? = 0.5, onBattery: Bool? = false,
           battery: Double? = nil, throttled: Bool? = false) -> MemberSnapshot {
        MemberSnapshot(name: name, address: WireAddress(ip: [127, 0, 0, 1], port: 1), state: state, incarnation: 1,
                       roles: roles, backup: backup, draining: draining,
                       signals: Signals(load: load, cpus: 4, memFree: mem, battery: battery, onBattery: onBattery, throttled: throttled),
                       lastHeardMs: 0, isSelf: false)
    }

    func testHighestScoringAliveHolderWins() {
        let view = [m("a", roles: ["x"], load: 0.9), m("b", roles: ["x"], load: 0.1), m("c")]
        let r = Routing.route("x", heavy: false, members: view)
        XCTAssertEqual(r.node, "b")
        XCTAssertEqual(r.skipped.map(\.node), ["a"])
        XCTAssertTrue(r.skipped[0].reason.hasPrefix("lower score 0.40 < 0.80"), r.skipped[0].reason)
    }

    /// Finding 11 of the hardening review: a member known only through others (a restarted node
    /// learning the mesh from a full-state sync) may be long dead; it takes no work until heard from.
    func testAMemberKnownOnlySecondHandIsSkippedUntilHeardFrom() {
        var ghost = m("a", roles: ["x"], load: 0.0)
        ghost.secondHand = true
        let view = [ghost, m("b", backup: ["x": 1], load: 0.9)]
        let r = Routing.route("x", heavy: false, members: view)
        XCTAssertEqual(r.node, "b")
        XCTAssertEqual(r.skipped.first?.node, "a")
        XCTAssertTrue(r.skipped.first?.reason.hasPrefix("suspect") == true, r.skipped.first?.reason ?? "")
        ghost.secondHand = false
        XCTAssertEqual(Routing.route("x", heavy: false, members: [ghost, view[1]]).node, "a")
    }

    func testTiesBreakByName() {
        let view = [m("zeta", roles: ["x"]), m("alpha", roles: ["x"])]
        let r = Routing.route("x", heavy: false, members: view)
        XCTAssertEqual(r.node, "alpha")
        XCTAssertTrue(r.skipped[0].reason.hasPrefix("lower score") && r.skipped[0].reason.contains("tie broken by name"))
    }

    func testDeadLeftAndDrainingHoldersAreSkippedForBackups() {
        let view = [m("h1", .dead, roles: ["x"]), m("h3", .left, roles: ["x"]),
                    m("h4", roles: ["x"], draining: true), m("b2", backup: ["x": 2]), m("b1", backup: ["x": 1], load: 0.99)]
        let r = Routing.route("x", heavy: false, members: view)
        XCTAssertEqual(r.node, "b1", "backups by priority before health")
        let reasons = Dictionary(uniqueKeysWithValues: r.skipped.map { ($0.node, $0.reason) })
        XCTAssertEqual(reasons["h1"], "dead")
        XCTAssertEqual(reasons["h3"], "left")
        XCTAssertEqual(reasons["h4"], "draining")
        XCTAssertTrue(reasons["b2"]!.hasPrefix("lower priority"))
    }

    /// Calm under loss (issue 9): a suspicion alone moves nothing, not even to a healthier holder;
    /// confirmed death does.
    func testASuspectHolderKeepsItsRoleUntilConfirmedDead() {
        let view = [m("h", .suspect, roles: ["x"], load: 0.5), m("b", backup: ["x": 1], load: 0.0)]
        XCTAssertEqual(Routing.route("x", heavy: false, members: view).node, "h")
        // Among holders, suspicion does not change the ranking either.
        let two = [m("h", .suspect, roles: ["x"], load: 0.1), m("k", roles: ["x"], load: 0.2)]
        XCTAssertEqual(Routing.route("x", heavy: false, members: two).node, "h")
        let dead = [m("h", .dead, roles: ["x"], load: 0.5), m("b", backup: ["x": 1], load: 0.0)]
        XCTAssertEqual(Routing.route("x", heavy: false, members: dead).node, "b")
    }

    func testHealthBreaksTiesWithinABackupPriority() {
        let view = [m("b", backup: ["x": 1], load: 0.8), m("c", backup: ["x": 1], load: 0.1), m("d", backup: ["x": 2], load: 0)]
        XCTAssertEqual(Routing.route("x", heavy: false, members: view).node, "c")
    }

    func testBackupsAreNotUsedWhileAHolderIsAvailable() {
        let view = [m("h", roles: ["x"], load: 0.99), m("b", backup: ["x": 1], load: 0)]
        let r = Routing.route("x", heavy: false, members: view)
        XCTAssertEqual(r.node, "h")
        XCTAssertTrue(r.skipped.first { $0.node == "b" }!.reason.hasPrefix("lower priority"))
    }

    func testHeavyWorkSkipsBatteryAndThrottledButLightWorkDoesNot() {
        let view = [m("laptop", roles: ["x"], load: 0, onBattery: true, battery: 0.4), m("pi", roles: ["x"], load: 0.9, throttled: true),
                    m("server", backup: ["x": 1], load: 0.9)]
        let heavy = Routing.route("x", heavy: true, members: view)
        XCTAssertEqual(heavy.node, "server", "an unfit holder counts as absent for heavy work")
        XCTAssertEqual(heavy.skipped.first { $0.node == "laptop" }?.reason, "on battery (40%)")
        XCTAssertEqual(heavy.skipped.first { $0.node == "pi" }?.reason, "throttled")
        let light = Routing.route("x", heavy: false, members: view)
        XCTAssertEqual(light.node, "laptop")
    }

    func testNoCandidateNamesWhyEachNodeWasSkipped() {
        let view = [m("laptop", roles: ["x"], onBattery: true), m("old", .dead, backup: ["x": 1])]
        let r = Routing.route("x", heavy: true, members: view)
        XCTAssertNil(r.node)
        XCTAssertEqual(r.failureSentence, "no node can take heavy x now (laptop: on battery; old: dead)")
        XCTAssertEqual(Routing.route("nothing", heavy: false, members: view).failureSentence, "no node holds or backs up role nothing")
    }

    /// The submitter's exclusions (lost mid-run, unreachable, no address yet) are skips like any other.
    func testExcludedNodesAreSkippedWithTheCallersReason() {
        let view = [m("h1", roles: ["x"], load: 0), m("h2", roles: ["x"], load: 0.5), m("b", backup: ["x": 1]), m("c")]
        let r = Routing.route("x", heavy: false, members: view, excluding: ["h1": "was lost mid-run", "c": "could not be reached"])
        XCTAssertEqual(r.node, "h2", "the best holder is excluded: the next one takes it")
        XCTAssertEqual(r.skipped.map(\.node), ["h1", "b"], "a node that is no candidate is not listed")
        XCTAssertEqual(r.skipped.first?.reason, "was lost mid-run")

        // Every holder excluded: the backup takes it, as for dead holders.
        let toBackup = Routing.route("x", heavy: false, members: view,
                                     excluding: ["h1": "was lost mid-run", "h2": "could not be reached (connection refused)"])
        XCTAssertEqual(toBackup.node, "b")

        // Nothing left: the sentence names every skip, exclusions and others alike.
        let none = Routing.route("x", heavy: false, members: [m("h1", roles: ["x"]), m("b", .dead, backup: ["x": 1])],
                                 excluding: ["h1": "has not told this node its address yet"])
        XCTAssertNil(none.node)
        XCTAssertEqual(none.failureSentence, "no node can take x now (h1: has not told this node its address yet; b: dead)")
        XCTAssertEqual(Routing.route("x", heavy: false, members: view, excluding: [:]), Routing.route("x", heavy: false, members: view))
    }

    func testUnknownSignalsCountAsNeutral() {
        XCTAssertEqual(Score.of(Signals()), 0.6)
        XCTAssertEqual(Score.of(Signals(load: 0, memFree: 1, onBattery: false)), 1.0)
        XCTAssertEqual(Score.of(Signals(load: 2, memFree: 0, battery: 0.1, onBattery: true)), 0.02)
    }

    func testEveryOrderOfTheViewGivesTheSameAnswer() {
        var view = [m("a", roles: ["x"], load: 0.5), m("b", roles: ["x"], load: 0.5), m("c", backup: ["x": 1]), m("d", roles: ["x"], load: 0.4)]
        let expected = Routing.route("x", heavy: false, members: view)
        var rng = SplitMix64(seed: 3)
        for _ in 0..<20 {
            view.shuffle(using: &rng)
            XCTAssertEqual(Routing.route("x", heavy: false, members: view), expected)
            XCTAssertEqual(Routing.route("x", heavy: false, members: view, excluding: ["d": "was lost mid-run"]).node, "a")
        }
    }

    /// Roles are granted: a member announcing a role its key was not granted is no candidate for
    /// it, with the reason `not granted`; the role goes to the next one as if it were absent.
    func testAnUngrantedHolderIsSkippedAsNotGranted() {
        let view = [m("laptop", roles: ["build"], load: 0.0, mem: 1.0), m("desk", roles: ["build"], load: 0.8),
                    m("pi", backup: ["build": 1])]
        let everything = Routing.route("build", heavy: false, members: view)
        XCTAssertEqual(everything.node, "laptop", "with no grant lines, the best score wins")
        var grants = GrantTable()
        grants["laptop"] = RoleGrants(["transcode"])!
        let r = Routing.route("build", heavy: false, members: view, grants: grants)
        XCTAssertEqual(r.node, "desk")
        XCTAssertEqual(r.skipped.first { $0.node == "laptop" }?.reason, "not granted")
        // Only backup:build: it may stand by, not hold the role.
        grants["desk"] = RoleGrants(["backup:build"])!
        let backups = Routing.route("build", heavy: false, members: view, grants: grants)
        XCTAssertEqual(backups.node, "pi")
        XCTAssertEqual(backups.skipped.first { $0.node == "desk" }?.reason, "not granted")
        grants["pi"] = RoleGrants()
        let none = Routing.route("build", heavy: false, members: view, grants: grants)
        XCTAssertNil(none.node)
        XCTAssertEqual(none.failureSentence, "no node can take build now (desk: not granted; laptop: not granted; pi: not granted)")
        // A caller's own exclusion reads first.
        XCTAssertEqual(Routing.route("build", heavy: false, members: view, excluding: ["laptop": "was lost mid-run"], grants: grants)
            .skipped.first { $0.node == "laptop" }?.reason, "was lost mid-run")
        XCTAssertTrue(RoleGrants(["backup:build"])!.allows("build", backup: true))
        XCTAssertFalse(RoleGrants(["backup:build"])!.allows("build", backup: false))
        XCTAssertTrue(RoleGrants(["build"])!.allows("build", backup: true))
        XCTAssertNil(RoleGrants(["no spaces"]))
    }
}
