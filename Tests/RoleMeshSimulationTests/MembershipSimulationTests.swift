import XCTest
import Foundation
import RoleMeshCore
import RoleMeshSimulation

/// The real membership core, many nodes, virtual time. Everything else that was here is now a
/// scenario file (scenarios/*.txt, run by ScenarioTests); the big join stays in Swift
/// because it measures gossip rounds and member counts, which the scenario language does not
/// express (and a 300-name `start` line would say little).
final class MembershipSimulationTests: XCTestCase {
    func makeMesh(_ n: Int, profile: TimingProfile = .lan, seed: UInt64 = 7) -> (SimulatedMesh, [String]) {
        let mesh = SimulatedMesh(seed: seed, wire: false)
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

    /// 300 nodes started at the same instant (about 6 s of wall time); `ROLEMESH_SCALE=1` runs the
    /// same with 1000 (about 2.5 minutes, so opt-in).
    func testJoinAcrossHundredsOfNodesConvergesInLogarithmicRounds() throws {
        let n = ProcessInfo.processInfo.environment["ROLEMESH_SCALE"] == "1" ? 1000 : 300
        let profile = TimingProfile.lan
        let (mesh, names) = makeMesh(n, profile: profile, seed: 11)
        mesh.recordEvents = false
        let setup = mesh.run(until: { self.allKnowAll(mesh, names) }, step: 300, timeout: 60_000)
        XCTAssertNotNil(setup, "\(n) nodes did not converge")
        mesh.addNode("joiner", profile: profile, seeds: [names[n / 2]])
        let start = mesh.now
        let took = mesh.run(until: { mesh.everyone(sees: "joiner", as: .alive) }, step: profile.heartbeat, timeout: 30_000)
        let rounds = Int(((try XCTUnwrap(took)) + profile.heartbeat - 1) / profile.heartbeat)
        print("join across \(n) nodes: \(rounds) gossip rounds (\(mesh.now - start) ms virtual); mesh setup took \(setup!) ms")
        XCTAssertLessThanOrEqual(rounds, 3 * Int(log2(Double(n)).rounded(.up)), "more than O(log N) rounds")
    }

    /// The scale bench's start (`addConvergedMesh`): every node knows every other at once. From there
    /// the protocol must run as after a real join: quiet (constant cost per node), a crash seen dead
    /// by every survivor within a few rounds and by no one about anyone else, and the dead member's
    /// retries cheap — one sample each per `deadRetry`, not full state (N/8 datagrams) from every node.
    func testAConvergedMeshOfHundredsIsQuietDetectsACrashAndRetriesTheDeadCheaply() throws {
        let n = 400
        let profile = TimingProfile.lan
        let mesh = SimulatedMesh(seed: 5, wire: false)
        mesh.recordEvents = false
        let names = (0..<n).map { String(format: "n%04d", $0) }
        mesh.addConvergedMesh(names, profile: profile)
        XCTAssertTrue(allKnowAll(mesh, names))
        XCTAssertTrue(converged(mesh, names))
        mesh.run(for: 10_000)
        XCTAssertTrue(converged(mesh, names), "a quiet converged mesh suspected someone")

        func sentPerNodePerSecond(over seconds: Int) -> Double {
            let before = mesh.sent
            mesh.run(for: Millis(seconds) * 1000)
            return Double(mesh.sent - before) / Double(mesh.liveNodes.count) / Double(seconds)
        }
        let idle = sentPerNodePerSecond(over: 20)
        XCTAssertLessThanOrEqual(idle, 5, "idle traffic per node")

        let victim = names[n / 3]
        mesh.kill(victim)
        mesh.recordEvents = true
        let took = mesh.run(until: { mesh.everyone(sees: victim, as: .dead) }, step: 50, timeout: 10_000)
        XCTAssertLessThanOrEqual(try XCTUnwrap(took, "not every survivor saw the crash"), 3_000)
        XCTAssertFalse(mesh.events.contains { $0.2.kind == .memberDead && $0.2.node != victim }, "a live node was declared dead")

        // Three dead retries (every 10 s on lan) later: still about the idle rate. Full state to the
        // dead member on each retry (about N/16 datagrams from every node) measured 7.1 here.
        let withDead = sentPerNodePerSecond(over: 30)
        print("converged mesh of \(n): \(idle) datagrams/s per node idle, \(withDead) with one dead member; crash seen by all in \(took!) ms")
        XCTAssertLessThanOrEqual(withDead, idle + 1, "retrying the dead member costs more than a sample per retry")
    }

    /// Under loss there is a suspicion somewhere all the time (0.04–0.05 `member-suspect` events per
    /// node per minute at 10 %), so the mesh's news grows with N. What each suspicion costs a node
    /// must not: the refutation goes to the watchers only, and the suspicion and the new incarnation
    /// flood along the rings, riding the beats. Pushing each to λ·log N random members, and refuting to every member, cost
    /// 6.0 datagrams/s per node at N = 100 and 15.4 at 1,000 (protocol.md 7.2, 7.3).
    func testUnderLossAMeshOfHundredsCostsEachNodeAboutWhatItDoesIdle() throws {
        let n = 400
        let mesh = SimulatedMesh(seed: 9, wire: false)
        mesh.recordEvents = false
        let names = (0..<n).map { String(format: "n%04d", $0) }
        mesh.addConvergedMesh(names, profile: .lan)
        mesh.run(for: 10_000)
        var before = mesh.sent
        mesh.run(for: 20_000)
        let idle = Double(mesh.sent - before) / Double(n) / 20
        mesh.loss = 0.10
        mesh.recordEvents = true
        before = mesh.sent
        mesh.run(for: 60_000)
        let lossy = Double(mesh.sent - before) / Double(n) / 60
        let suspicions = mesh.events.filter { $0.2.kind == .memberSuspect }.count
        print("\(n) nodes: \(idle) datagrams/s per node idle, \(lossy) at 10 % loss (\(suspicions) suspicions)")
        XCTAssertGreaterThan(suspicions, 5, "no suspicions: the loss did not test anything")
        XCTAssertFalse(mesh.events.contains { $0.2.kind == .memberDead }, "a live node was declared dead")
        XCTAssertLessThanOrEqual(lossy, idle * 1.2, "under loss each node pays for the whole mesh's suspicions")
    }

    func allKnowAll(_ mesh: SimulatedMesh, _ names: [String]) -> Bool {
        mesh.liveNodes.allSatisfy { mesh.nodes[$0]!.core.memberCount == names.count }
    }
}
