import Foundation
import XCTest
import RoleMeshCore
import RoleMeshSimulation

/// The randomized simulation (`ChaosRun`): many seeds, each a mesh of 3–8 nodes under random faults,
/// with the invariants checked all along. A failure prints its seed and the command that replays it.
/// `ROLEMESH_CHAOS_SEEDS=N` sets how many seeds (default 2,000), `ROLEMESH_CHAOS_FIRST=S` the first.
final class ChaosSimulationTests: XCTestCase {
    func testManySeedsKeepTheInvariants() {
        let env = ProcessInfo.processInfo.environment
        let count = env["ROLEMESH_CHAOS_SEEDS"].flatMap { UInt64($0) } ?? 2_000
        let first = env["ROLEMESH_CHAOS_FIRST"].flatMap { UInt64($0) } ?? 1
        let started = Date()
        var failures: [ChaosRun.Failure] = []
        var virtual: Millis = 0
        for seed in first..<(first + count) {
            let outcome = ChaosRun.run(seed: seed)
            virtual += outcome.virtualMs
            if let f = outcome.failure {
                failures.append(f)
                if failures.count >= 5 { break }
            }
        }
        let wall = Date().timeIntervalSince(started)
        print("chaos: \(count) seeds from \(first), \(virtual / 1000) virtual s in \(String(format: "%.1f", wall)) s, \(failures.count) failed")
        for f in failures {
            XCTFail("\(f)\n" + f.log.suffix(12).map { "    \($0)" }.joined(separator: "\n"))
        }
    }
}
