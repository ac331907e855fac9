import XCTest
import RoleMeshCore
import RoleMeshSimulation

/// The real membership core, many nodes, virtual time.
final class MembershipSimulationTests: XCTestCase {
    func makeMesh(_ n: Int, profile: TimingProfile = .lan, seed: UInt64 = 7) -> (SimulatedMesh, [String]) {
        let mesh = SimulatedMesh(seed: seed)
        let names = (0..<n).map { String(format: "n%04d", $0) }
        for (i, name) in names.enumerated() {
            // Each node knows one earlier node, as a person would configure seeds.
            mesh.addNode(name, profile: profile, seeds: i == 0 ? [] : [names[(i - 1) / 2]])
        }
        return (mesh, names)
    }

    func converged(_ mesh: SimulatedMesh, _ names: [String]) -> Bool {
        names.allSatisfy { node in mesh.everyone(sees: node, as: .alive) }
    }

    func testSmallMeshConvergesAndNoticesACrash() throws {
        let (mesh, names) = makeMesh(5, profile: .fast)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        mesh.kill("n0003")
        let start = mesh.now
        let took = mesh.run(until: { mesh.everyone(sees: "n0003", as: .dead) }, step: 10, timeout: 5_000)
        XCTAssertNotNil(took, "the crash was not noticed by every survivor")
        XCTAssertLessThan(try XCTUnwrap(took), 1_000, "fast profile: dead everywhere within a second")
        _ = start
        // Nobody else was harmed.
        for n in names where n != "n0003" { XCTAssertTrue(mesh.everyone(sees: n, as: .alive)) }
    }

    func testGracefulLeaveIsSeenAsLeftAtOnce() {
        let (mesh, names) = makeMesh(5, profile: .lan)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 100, timeout: 10_000))
        mesh.leave("n0002")
        let took = mesh.run(until: { mesh.everyone(sees: "n0002", as: .left) }, step: 5, timeout: 2_000)
        XCTAssertNotNil(took)
        XCTAssertLessThan(took!, 100, "a leave is pushed, not waited for")
    }

    func testSuspendedNodeAccusesNobodyAndComesBack() {
        let (mesh, names) = makeMesh(6, profile: .fast)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        let sleeper = "n0004"
        let before = mesh.events.count
        mesh.pause(sleeper, for: 3_000)      // far longer than the dead timeout
        XCTAssertNotNil(mesh.run(until: { mesh.everyone(sees: sleeper, as: .dead) }, step: 10, timeout: 3_000))
        mesh.run(for: 3_100)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 10, timeout: 2_000),
                        "the sleeper is alive again everywhere and sees everyone alive")
        let accusations = mesh.events[before...].filter { $0.1 == sleeper && ($0.2.kind == .memberDead || $0.2.kind == .memberSuspect) }
        XCTAssertEqual(accusations.count, 0, "the sleeper declared others suspect or dead: \(accusations)")
    }

    func testRestartWithHigherIncarnationRevivesAndLowerDoesNot() {
        let (mesh, names) = makeMesh(4, profile: .fast)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        mesh.kill("n0001")
        XCTAssertNotNil(mesh.run(until: { mesh.everyone(sees: "n0001", as: .dead) }, step: 10, timeout: 3_000))
        // Came back with its state lost (incarnation 1 again): it must learn and jump above its death.
        mesh.addNode("n0001", profile: .fast, seeds: ["n0000"], incarnation: 1)
        XCTAssertNotNil(mesh.run(until: { mesh.everyone(sees: "n0001", as: .alive) }, step: 10, timeout: 5_000),
                        "a restarted node stayed dead in others' views (memberlist #311)")
    }

    func testJoinAcrossAThousandNodesConvergesInLogarithmicRounds() throws {
        let profile = TimingProfile.lan
        let (mesh, names) = makeMesh(1000, profile: profile, seed: 11)
        mesh.recordEvents = false
        let setup = mesh.run(until: { self.allKnowAll(mesh, names) }, step: 300, timeout: 60_000)
        XCTAssertNotNil(setup, "1000 nodes did not converge")
        mesh.addNode("joiner", profile: profile, seeds: ["n0500"])
        let start = mesh.now
        let took = mesh.run(until: { mesh.everyone(sees: "joiner", as: .alive) }, step: profile.heartbeat, timeout: 30_000)
        let rounds = Int(((try XCTUnwrap(took)) + profile.heartbeat - 1) / profile.heartbeat)
        print("join across 1000 nodes: \(rounds) gossip rounds (\(mesh.now - start) ms virtual); mesh setup took \(setup!) ms")
        XCTAssertLessThanOrEqual(rounds, 3 * Int(log2(1000.0).rounded(.up)), "more than O(log N) rounds")
    }

    func allKnowAll(_ mesh: SimulatedMesh, _ names: [String]) -> Bool {
        mesh.liveNodes.allSatisfy { mesh.nodes[$0]!.core.memberCount == names.count }
    }

    func testNoFalseDeathAtTenPercentLossOverTenMinutes() {
        let (mesh, names) = makeMesh(50, profile: .lan, seed: 3)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 100, timeout: 20_000))
        mesh.loss = 0.10
        let before = mesh.events.count
        mesh.run(for: 10 * 60 * 1000)
        let deaths = mesh.events[before...].filter { $0.2.kind == .memberDead }
        let suspicions = mesh.events[before...].filter { $0.2.kind == .memberSuspect }
        print("50 nodes, 10% loss, 10 virtual minutes: \(deaths.count) deaths, \(suspicions.count) suspicions, \(mesh.delivered) datagrams delivered")
        XCTAssertEqual(deaths.count, 0, "false deaths: \(deaths.prefix(5))")
    }

    func testHealedPartitionConverges() {
        let (mesh, names) = makeMesh(10, profile: .fast, seed: 5)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        let a = Array(names.prefix(5)), b = Array(names.suffix(5))
        mesh.partition([a, b])
        XCTAssertNotNil(mesh.run(until: { b.allSatisfy { mesh.state(of: $0, seenBy: a[0]) == .dead } }, step: 50, timeout: 5_000),
                        "each side sees the other dead")
        mesh.heal()
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 15_000),
                        "a healed partition converges (dead members are retried)")
    }

    func testANodeJoiningLaterSeesTheDeadAsDead() {
        let (mesh, names) = makeMesh(5, profile: .fast, seed: 13)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        mesh.kill("n0002")
        XCTAssertNotNil(mesh.run(until: { mesh.everyone(sees: "n0002", as: .dead) }, step: 10, timeout: 3_000))
        mesh.addNode("late", profile: .fast, seeds: ["n0000"])
        mesh.run(for: 5_000)
        XCTAssertEqual(mesh.state(of: "n0002", seenBy: "late"), .dead, "learned through a sync, the dead must not linger as suspect")
        for n in names where n != "n0002" { XCTAssertEqual(mesh.state(of: n, seenBy: "late"), .alive) }
    }

    func testOneLossyLinkDoesNotKill() {
        let (mesh, names) = makeMesh(5, profile: .fast, seed: 9)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        mesh.blockLink("n0000", "n0001")
        mesh.run(for: 30_000)
        XCTAssertTrue(mesh.everyone(sees: "n0001", as: .alive))
        XCTAssertTrue(mesh.everyone(sees: "n0000", as: .alive))
        XCTAssertEqual(mesh.events.filter { $0.2.kind == .memberDead }.count, 0)
    }
}
