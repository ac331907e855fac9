import XCTest
import RoleMeshCore

/// schedule.toml, slots and the planner: the pure half of background work.
final class ScheduleTests: XCTestCase {
    let file = "roles/metabolism/schedule.toml"

    func testTheContractsExampleParses() throws {
        let text = """
        [reindex]                 # runs roles/ROLE/reindex
        every = "1d"
        window = "01:00-06:00"
        idle = "15m"
        power = "mains"
        heavy = true
        args = ["--full"]

        [embed]
        every = "20s"
        """
        let s = try ScheduleFile.parse(text, role: "metabolism", file: file)
        XCTAssertEqual(s, [Schedule(role: "metabolism", task: "reindex", every: 86_400, window: TimeWindow("01:00-06:00"),
                                    idle: 900, mains: true, heavy: true, args: ["--full"]),
                           Schedule(role: "metabolism", task: "embed", every: 20)])
        XCTAssertEqual(s[0].window?.description, "01:00-06:00")
    }

    func testErrorsNameFileLineAndKey() {
        func error(_ text: String) -> String {
            do { _ = try ScheduleFile.parse(text, role: "m", file: file); return "no error" } catch { return error.description }
        }
        XCTAssertEqual(error("[a]\nevery = \"5s\"\n"),
                       "roles/metabolism/schedule.toml line 2: key \"every\": expected a period from \"10s\" to \"90d\" (a number and s, m, h or d), found \"5s\"")
        XCTAssertTrue(error("[a]\nevery = \"91d\"").hasPrefix("roles/metabolism/schedule.toml line 2: key \"every\""))
        XCTAssertEqual(error("[a]\nevery = \"1h\"\nwindow = \"1:00-6:00\""),
                       "roles/metabolism/schedule.toml line 3: key \"window\": expected a local-time window like \"01:00-06:00\", found \"1:00-6:00\"")
        XCTAssertEqual(error("[a]\nevery = \"1h\"\nevery_day = 1"),
                       "roles/metabolism/schedule.toml line 3: unknown key \"every_day\" (known keys: every, window, idle, power, heavy, args)")
        XCTAssertEqual(error("every = \"1h\""),
                       "roles/metabolism/schedule.toml line 1: key \"every\": keys belong in a table named after the task, e.g. [reindex] above \"every = ...\"")
        XCTAssertEqual(error("[a]\nidle = \"1m\""), "roles/metabolism/schedule.toml line 2: table [a] lacks the required key \"every\"")
        XCTAssertEqual(error("[a]\nevery = \"1h\"\n[a]\nevery = \"2h\""), "roles/metabolism/schedule.toml line 3: key \"a\": duplicate table [a] (first on line 1)")
        XCTAssertEqual(error("[a]\nevery = \"1h\"\nheavy = \"yes\""), "roles/metabolism/schedule.toml line 3: key \"heavy\": expected a boolean, found a string")
        XCTAssertEqual(error("[a]\nevery = \"1h\"\npower = \"sun\""), "roles/metabolism/schedule.toml line 3: key \"power\": expected \"mains\" or \"any\", found \"sun\"")
        // node.toml itself still has no tables.
        XCTAssertThrowsError(try NodeConfig.parse("[x]\nname = \"a\""))
    }

    func testWindowsMayWrapPastMidnight() throws {
        let night = try XCTUnwrap(TimeWindow("22:00-06:00"))
        XCTAssertTrue(night.contains(minuteOfDay: 23 * 60))
        XCTAssertTrue(night.contains(minuteOfDay: 5 * 60 + 59))
        XCTAssertFalse(night.contains(minuteOfDay: 6 * 60))
        XCTAssertFalse(night.contains(minuteOfDay: 12 * 60))
        XCTAssertNil(TimeWindow("24:00-01:00"))
    }

    func testSlotsAlignToUTCMidnightAndRunIDsAreTheSlots() {
        let t: Int64 = 1_767_571_200 + 3 * 3600 + 17      // 2026-01-05T03:00:17Z
        XCTAssertEqual(Slots.rfc3339(Slots.start(of: t, every: 86_400)), "2026-01-05T00:00:00Z")
        XCTAssertEqual(Slots.rfc3339(Slots.start(of: t, every: 20)), "2026-01-05T03:00:00Z")
        // Multiples of the period since the epoch: a period that does not divide a day drifts across days.
        XCTAssertEqual(Slots.rfc3339(Slots.start(of: t, every: 7 * 3600)), "2026-01-05T02:00:00Z")
        let s = Schedule(role: "m", task: "reindex", every: 86_400)
        XCTAssertEqual(Slots.runID(s, slot: 1_767_571_200), Slots.runID(s, slot: 1_767_571_200))
        XCTAssertNotEqual(Slots.runID(s, slot: 1_767_571_200), Slots.runID(s, slot: 1_767_657_600))
        XCTAssertEqual(Slots.runID(s, slot: 0).count, 16)
        XCTAssertEqual(Slots.rfc3339(951_782_400), "2000-02-29T00:00:00Z")
    }

    func run(_ id: String, node: String, _ state: SlotRun.State, slot: Int64 = 0) -> SlotRun {
        SlotRun(role: "m", task: "t", slot: slot, id: id, runID: "00000000000000aa", node: node, state: state, started: 1)
    }

    func testLedgerRecordsOnlyMoveForwardInAnyOrder() {
        var a = SlotLedger(), b = SlotLedger()
        let records = [run("aaaaaaaa", node: "x", .running), run("aaaaaaaa", node: "x", .done), run("bbbbbbbb", node: "y", .running),
                       run("bbbbbbbb", node: "y", .lost)]
        for r in records { a.merge(r) }
        for r in records.reversed() { b.merge(r) }
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.runs["aaaaaaaa"]?.state, .done)
        XCTAssertEqual(a.runs["bbbbbbbb"]?.state, .lost)
        XCTAssertFalse(a.merge(run("aaaaaaaa", node: "x", .running)))
        XCTAssertFalse(a.merge(run("not hex!", node: "x", .running)))    // a peer's junk is not taken
    }

    func member(_ name: String, roles: [String] = [], backup: [String: Int] = [:], state: MemberState = .alive,
                signals: Signals = Signals(idle: true)) -> MemberSnapshot {
        MemberSnapshot(name: name, address: WireAddress(ip: [127, 0, 0, 1], port: 1), state: state, incarnation: 1, roles: roles,
                       backup: backup, draining: false, signals: signals, lastHeardMs: 0, isSelf: name == "a")
    }

    func testThePlannerFiresOnTheRouteOnlyAndOncePerSlot() {
        let s = Schedule(role: "m", task: "t", every: 86_400, window: TimeWindow("01:00-06:00"), idle: 0)
        let view = [member("a", roles: ["m"]), member("b", backup: ["m": 1])]
        var ledger = SlotLedger()
        func plan(_ me: String, minute: Int = 120, view: [MemberSnapshot] = view, active: Set<String> = []) -> SlotPlan.Status {
            SchedulePlanner.plan(s, now: 7_200, localMinute: minute, me: me, view: view, ledger: ledger, active: active).status
        }
        XCTAssertEqual(plan("a", minute: 30), .waiting("outside window 01:00-06:00"))
        XCTAssertEqual(plan("a"), .due)
        XCTAssertEqual(plan("b"), .waiting("starting on a"))
        ledger.merge(SlotRun(role: "m", task: "t", slot: 0, id: "aaaaaaaa", runID: "x1", node: "a", state: .running, started: 7_200))
        XCTAssertEqual(plan("a", active: ["aaaaaaaa"]), .running(node: "a"))
        XCTAssertEqual(plan("a"), .due, "our own record from before a restart is a lost attempt")
        XCTAssertEqual(plan("b"), .running(node: "a"))
        // a dies mid-run: b, now the route, runs the slot again.
        let failover = [member("a", roles: ["m"], state: .dead), member("b", backup: ["m": 1])]
        XCTAssertEqual(plan("b", view: failover), .due)
        ledger.merge(SlotRun(role: "m", task: "t", slot: 0, id: "bbbbbbbb", runID: "x1", node: "b", state: .done, started: 8_000))
        XCTAssertEqual(plan("b", view: failover), .done)
        XCTAssertEqual(plan("a"), .done)
    }

    func testBlockersSayTheOneConditionWaitedFor() {
        let s = Schedule(role: "m", task: "t", every: 3600, idle: 900, mains: true)
        XCTAssertEqual(SchedulePlanner.blocker(s, signals: Signals(onBattery: true, idle: true), localMinute: 0, node: "desk"), "on battery")
        XCTAssertEqual(SchedulePlanner.blocker(s, signals: Signals(idle: true, idleSeconds: 180), localMinute: 0, node: "desk"),
                       "desk busy (idle 3m of 15m)")
        XCTAssertEqual(SchedulePlanner.blocker(s, signals: Signals(idle: false), localMinute: 0, node: "desk"), "desk busy (not idle)")
        XCTAssertNil(SchedulePlanner.blocker(s, signals: Signals(idle: true), localMinute: 0, node: "desk"), "a pinned idle meets any duration")
        XCTAssertNil(SchedulePlanner.blocker(s, signals: Signals(idle: true, idleSeconds: 900), localMinute: 0, node: "desk"))
    }

    /// Slot records count only about the sender's own runs, or signed by the node that ran them.
    func testSlotRecordsCountFromTheirRunnerOrWithItsSignature() {
        let a = Ed25519.KeyPair.generate(), b = Ed25519.KeyPair.generate()
        let keys = ["a": a.publicKey, "b": b.publicKey, "c": Ed25519.KeyPair.generate().publicKey]
        let mine = run("aaaaaaaa", node: "b", .done)
        XCTAssertTrue(mine.counts(from: "b", keys: keys), "about the sender's own run")
        XCTAssertFalse(mine.counts(from: "c", keys: keys), "c forwarding b's record without b's signature")
        let signed = mine.signed(b.sign)
        XCTAssertTrue(signed.counts(from: "c", keys: keys), "relayed with the runner's signature")
        var tampered = signed
        tampered.state = .lost
        XCTAssertFalse(tampered.counts(from: "c", keys: keys))
        XCTAssertFalse(mine.signed(a.sign).counts(from: "c", keys: keys), "signed by another node than the runner")
        XCTAssertFalse(run("aaaaaaaa", node: "x", .done).signed(a.sign).counts(from: "c", keys: keys), "an unknown runner")
        // JSON keeps the signature; a record without one still reads.
        let back = try? JSONDecoder().decode(SlotRun.self, from: JSONEncoder().encode(signed))
        XCTAssertEqual(back, signed)
        XCTAssertTrue(back?.counts(from: "c", keys: keys) ?? false)
        // The runner's signed copy replaces an unsigned one kept here at the same stage.
        var ledger = SlotLedger([mine])
        XCTAssertTrue(ledger.merge(signed))
        XCTAssertEqual(ledger.runs["aaaaaaaa"]?.signature, signed.signature)
        XCTAssertFalse(ledger.merge(mine))
    }

    func testOneNodesFloodOfRecordsPushesOutOnlyItsOwn() {
        var ledger = SlotLedger()
        let genuine = run("00000001", node: "a", .done, slot: 0)
        ledger.merge(genuine)
        for i in 0..<(SlotLedger.perNode + 500) { ledger.merge(run(String(format: "f%07d", i), node: "laptop", .done, slot: Int64(1_000 + i))) }
        XCTAssertEqual(ledger.runs.values.filter { $0.node == "laptop" }.count, SlotLedger.perNode)
        XCTAssertEqual(ledger.runs["00000001"], genuine)
    }

    /// Schedules follow grants: the route skips an ungranted holder, and its records of the
    /// schedule's runs count for nothing (they neither stop nor start a slot).
    func testSchedulesFollowGrants() {
        let s = Schedule(role: "m", task: "t", every: 86_400)
        let view = [member("a", roles: ["m"]), member("thief", roles: ["m"], signals: Signals(load: 0, memFree: 1, idle: true))]
        var ledger = SlotLedger()
        let grants: GrantTable = ["thief": RoleGrants()]
        func plan(_ me: String) -> SlotPlan {
            SchedulePlanner.plan(s, now: 7_200, localMinute: 120, me: me, view: view, ledger: ledger, active: [], grants: grants)
        }
        XCTAssertEqual(plan("a").status, .due)
        XCTAssertEqual(plan("a").node, "a")
        ledger.merge(SlotRun(role: "m", task: "t", slot: 0, id: "cccccccc", runID: "x1", node: "thief", state: .done, started: 7_200))
        XCTAssertEqual(plan("a").status, .due, "an ungranted node's record of a done slot does not stop the schedule")
        ledger.merge(SlotRun(role: "m", task: "t", slot: 0, id: "dddddddd", runID: "x1", node: "thief", state: .running, started: 7_200))
        XCTAssertEqual(plan("a").status, .due)
    }
}
