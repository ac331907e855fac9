import Dispatch
import Foundation
import XCTest
import RoleMeshCore
import RoleMeshSimulation

/// The randomized simulation (`ChaosRun`): many seeds, each a mesh of 3–8 nodes (real gossip nodes:
/// Ed25519, sealed envelopes, proof of key) under random faults, with the invariants checked all
/// along. A failure prints its seed and the command that replays it. `ROLEMESH_CHAOS_SEEDS=N` sets
/// how many seeds (default 2,000), `ROLEMESH_CHAOS_FIRST=S` the first. Seeds run on every core:
/// each run is its own simulated mesh, and one seed gives one run on any thread.
final class ChaosSimulationTests: XCTestCase {
    func testManySeedsKeepTheInvariants() {
        let env = ProcessInfo.processInfo.environment
        let count = Int(env["ROLEMESH_CHAOS_SEEDS"] ?? "") ?? 2_000
        let first = UInt64(env["ROLEMESH_CHAOS_FIRST"] ?? "") ?? 1
        let started = Date()
        let results = Results()
        let lanes = max(1, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            for i in stride(from: lane, to: count, by: lanes) {
                results.add(ChaosRun.run(seed: first + UInt64(i)))
            }
        }
        let wall = Date().timeIntervalSince(started)
        let failures = results.failures.sorted { $0.seed < $1.seed }
        let splits = results.splits.sorted()
        let p = { (q: Double) in splits.isEmpty ? 0 : splits[min(splits.count - 1, Int(Double(splits.count) * q))] }
        print("chaos: \(count) seeds from \(first) on \(lanes) threads, \(results.virtualMs / 1000) virtual s in \(String(format: "%.1f", wall)) s; "
              + "\(splits.count) splits seen on every side after median \(p(0.5)) ms, p99 \(p(0.99)) ms, max \(splits.last ?? 0) ms; \(failures.count) failed")
        for f in failures.prefix(5) {
            XCTFail("\(f)\n" + f.log.suffix(12).map { "    \($0)" }.joined(separator: "\n"))
        }
    }
}

private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var failures: [ChaosRun.Failure] = []
    private(set) var splits: [Millis] = []
    private(set) var virtualMs: Millis = 0
    func add(_ o: ChaosRun.Outcome) {
        lock.lock(); defer { lock.unlock() }
        if let f = o.failure { failures.append(f) }
        splits += o.splitDetections
        virtualMs += o.virtualMs
    }
}
