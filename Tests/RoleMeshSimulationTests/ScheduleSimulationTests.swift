import XCTest
import RoleMeshCore
import RoleMeshSimulation

/// Once per slot across the mesh, with the real membership core deciding who is up and the
/// real planner deciding who runs: a day of virtual time each.
final class ScheduleSimulationTests: XCTestCase {
    /// 2026-01-05T00:00:00Z.
    let day: Int64 = 1_767_571_200

    /// "home" holds `metabolism`, "spare" stands by for it, "desk" holds nothing. The `travel` profile
    /// (2 s heartbeats) keeps a day of virtual time to a few seconds of real time.
    func makeMesh(seed: UInt64 = 5) -> SimulatedMesh {
        let mesh = SimulatedMesh(seed: seed)
        mesh.recordEvents = false
        mesh.addNode("home", profile: .travel, roles: ["metabolism"])
        mesh.addNode("spare", profile: .travel, seeds: ["home"], backup: ["metabolism": 1])
        mesh.addNode("desk", profile: .travel, seeds: ["home"])
        return mesh
    }

    func nightly() -> Schedule {
        Schedule(role: "metabolism", task: "reindex", every: 86_400, window: TimeWindow("01:00-06:00"))
    }

    /// The holder dies at 03:00, two hours into a three-hour run: the backup runs the slot again,
    /// under the same run id, and the slot has exactly one completed run.
    func testAFailoverMidRunGivesExactlyOneCompletedRun() {
        let mesh = makeMesh()
        let sim = SimulatedSchedules(mesh: mesh, schedule: nightly(), epoch: day, runTime: 3 * 3_600_000)
        sim.run(for: 3 * 3_600_000)
        XCTAssertEqual(sim.running["home"]?.run.slot, day, "the slot started on the route inside the window")
        let first = sim.running["home"]?.run
        mesh.kill("home")
        sim.run(for: 21 * 3_600_000)
        let done = sim.completed(slot: day)
        XCTAssertEqual(done.count, 1, "\(done)")
        XCTAssertEqual(done.first?.node, "spare")
        XCTAssertEqual(done.first?.runID, first?.runID, "every attempt of a slot shares its run id")
        XCTAssertEqual(sim.ledgers["desk"]?.runs(of: "metabolism/reindex", slot: day).map(\.state), [.running, .done],
                       "the lost attempt and the completed one, known to a node that ran neither")
    }

    /// The holder finished at 02:00; it dies at 03:00: the backup that takes the role does not repeat the slot.
    func testAFailoverAfterTheRunDoesNotRepeatIt() {
        let mesh = makeMesh()
        let sim = SimulatedSchedules(mesh: mesh, schedule: nightly(), epoch: day, runTime: 3_600_000)
        sim.run(for: 3 * 3_600_000)
        mesh.kill("home")
        sim.run(for: 21 * 3_600_000)
        XCTAssertEqual(sim.completed(slot: day).map(\.node), ["home"])
        XCTAssertEqual(sim.finished.count, 1)
    }

    /// Both sides of a partition run the slot; once it heals both runs are recorded everywhere and
    /// nothing runs a third time.
    func testBothSidesOfAPartitionRunAndNothingRunsAThirdTime() {
        let mesh = makeMesh()
        // From 23:00 the day before; the partition comes before the day's slot starts.
        let sim = SimulatedSchedules(mesh: mesh, schedule: Schedule(role: "metabolism", task: "reindex", every: 86_400),
                                     epoch: day - 3_600, runTime: 3_600_000)
        sim.run(for: 1_800_000)
        mesh.partition([["home"], ["spare", "desk"]])
        sim.run(for: 2 * 3_600_000)
        mesh.heal()
        sim.run(for: 22 * 3_600_000)
        let both = sim.completed(slot: day)
        XCTAssertEqual(Set(both.map(\.node)), ["home", "spare"], "\(both)")
        XCTAssertEqual(both.count, 2)
        XCTAssertEqual(Set(both.map(\.runID)).count, 1)
        for node in ["home", "spare", "desk"] {
            XCTAssertEqual(sim.ledgers[node]?.runs(of: "metabolism/reindex", slot: day).filter { $0.state.completed }.count, 2,
                           "\(node) does not know both runs")
        }
    }

    /// A node that could not run anything for several slots runs the current one once, not each missed one.
    func testMissedSlotsRunOnceWhenANodeComesBack() {
        let mesh = SimulatedMesh(seed: 9)
        mesh.recordEvents = false
        mesh.addNode("laptop", profile: .travel, roles: ["metabolism"])
        let hourly = Schedule(role: "metabolism", task: "embed", every: 3_600)
        let sim = SimulatedSchedules(mesh: mesh, schedule: hourly, epoch: day, runTime: 60_000)
        sim.run(for: 600_000)
        mesh.kill("laptop")
        sim.run(for: 5 * 3_600_000)                      // asleep through five slots
        mesh.restart("laptop")
        sim.run(for: 1_800_000)
        XCTAssertEqual(sim.finished.map(\.slot), [day, day + 5 * 3_600], "one run for the slot it woke in")
    }
}
