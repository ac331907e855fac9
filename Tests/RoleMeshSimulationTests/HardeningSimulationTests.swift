import XCTest
import RoleMeshCore
import RoleMeshSimulation

/// Recovery paths that the hardening (no notice to a stale sender, sync replies only to a fresh
/// signed request) must leave working.
final class HardeningSimulationTests: XCTestCase {
    func makeMesh(_ n: Int, profile: TimingProfile = .fast, seed: UInt64 = 21) -> (SimulatedMesh, [String]) {
        let mesh = SimulatedMesh(seed: seed)
        let names = (0..<n).map { String(format: "n%04d", $0) }
        for (i, name) in names.enumerated() { mesh.addNode(name, profile: profile, seeds: i == 0 ? [] : [names[(i - 1) / 2]]) }
        return (mesh, names)
    }

    func converged(_ mesh: SimulatedMesh, _ names: [String]) -> Bool {
        names.allSatisfy { mesh.everyone(sees: $0, as: .alive) }
    }

    /// A node restarts at once with its state wiped (incarnation 1 again, seq from 0) while everyone
    /// still holds a newer record of it: its own heartbeats are stale everywhere and earn no notice.
    /// It must still come back, above its old incarnation, with no one declaring it dead for good.
    func testANodeWhoseStateWasWipedRecoversWithoutNotices() throws {
        let (mesh, names) = makeMesh(5)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        // Others hold n0002 at seq 40 or more (beats do not raise seq; changes do), so the wiped
        // process's heartbeats stay stale everywhere for a long while.
        for i in 0..<40 { mesh.update("n0002") { $0.roles = ["r\(i % 2)"] } }
        mesh.run(for: 500)
        mesh.kill("n0002")
        mesh.addNode("n0002", profile: .fast, seeds: ["n0000"], incarnation: 1)
        let took = mesh.run(until: {
            self.converged(mesh, names)
                && names.allSatisfy { o in mesh.nodes[o]!.core.snapshot(now: mesh.now).first { $0.name == "n0002" }!.incarnation >= 2 }
        }, step: 50, timeout: 10_000)
        XCTAssertNotNil(took, "the wiped node did not come back above its old incarnation")
        XCTAssertEqual(mesh.nodes["n0002"]!.core.memberCount, 5, "and it relearned the mesh")
    }

    /// A restarted node that others hold dead gets a notice only after its fresh signed heartbeat
    /// was checked; it refutes and is alive everywhere again, and a late joiner sees the same.
    func testSyncRequestsCarryTheSignedFlagAndAreAnswered() {
        let (mesh, names) = makeMesh(6, seed: 4)
        XCTAssertNotNil(mesh.run(until: { self.converged(mesh, names) }, step: 50, timeout: 5_000))
        mesh.addNode("late", profile: .fast, seeds: ["n0003"])
        XCTAssertNotNil(mesh.run(until: { mesh.nodes["late"]!.core.memberCount == 7 }, step: 10, timeout: 1_000),
                        "a sync request's full state answer did not arrive")
        for n in mesh.liveNodes { XCTAssertEqual(mesh.nodes[n]!.core.dropped.malformed, 0) }
    }
}
