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

    func allKnowAll(_ mesh: SimulatedMesh, _ names: [String]) -> Bool {
        mesh.liveNodes.allSatisfy { mesh.nodes[$0]!.core.memberCount == names.count }
    }
}
