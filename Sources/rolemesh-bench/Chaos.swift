import RoleMeshPlatform
import Foundation
import RoleMeshAgent
import RoleMeshCore
import RoleMeshSimulation

/// `chaos`: the randomized simulation (`ChaosRun`, issue 22) outside the test suite. `--seed N`
/// replays one seed: its faults, every event, and the verdict. `--seeds COUNT` runs that many
/// from `--first` on every core and sums them up (the suite runs 2,000; docs/benchmarks.md records
/// longer runs).
enum ChaosBench {
    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["seed", "seeds", "first", "profile"])
        let profileName = opts.string("profile", "fast")
        guard let profile = TimingProfile.named(profileName) else { throw .usage("--profile is fast, lan or travel") }
        if let one = opts.value("seed") {
            guard let seed = UInt64(one) else { throw .usage("--seed takes a number") }
            try replay(seed, profile: profile)
            return
        }
        let count = try opts.int("seeds", 2_000, min: 1, max: 10_000_000)
        let first = UInt64(try opts.int("first", 1, min: 0, max: Int.max / 2))
        try many(count: count, first: first, profile: profile)
    }

    static func replay(_ seed: UInt64, profile: TimingProfile) throws(BenchExit) {
        let o = ChaosRun.run(seed: seed, profile: profile)
        say("chaos seed \(seed) (\(profile.name)): \(o.nodes) nodes, \(o.virtualMs) virtual ms")
        say("")
        say("faults and checks:")
        for line in o.log { say("  \(line)") }
        say("")
        say("events (virtual ms, observer, event, node):")
        say(o.trace)
        if let f = o.failure { say("FAILED: \(f.message)") } else { say("every invariant held") }
        printResult("chaos_seed", [("seed", .int(Int(seed))), ("profile", .string(profile.name)), ("failed", .bool(o.failure != nil))])
        if o.failure != nil { throw .reported }
    }

    static func many(count: Int, first: UInt64, profile: TimingProfile) throws(BenchExit) {
        say("chaos: \(count) seeds from \(first) on \(ProcessInfo.processInfo.activeProcessorCount) threads, \(profile.name); \(machineDescription())")
        struct Tally: Sendable { var failures: [ChaosRun.Failure] = []; var splits: [Millis] = []; var virtual: Millis = 0; var done = 0 }
        let tally = Locked(Tally())
        let t0 = monoNow()
        let lanes = max(1, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            for i in stride(from: lane, to: count, by: lanes) {
                let o = ChaosRun.run(seed: first + UInt64(i), profile: profile)
                tally.withLock { t in
                    if let f = o.failure { t.failures.append(f) }
                    t.splits += o.splitDetections
                    t.virtual += o.virtualMs
                    t.done += 1
                    if t.done % 10_000 == 0 { note("\(t.done) seeds, \(t.failures.count) failed, \(fmt(monoNow() - t0, 0)) s") }
                }
            }
        }
        var (failures, splits, virtual) = tally.withLock { ($0.failures, $0.splits, $0.virtual) }
        let wall = monoNow() - t0
        splits.sort()
        let pick = { (q: Double) -> Millis in splits.isEmpty ? 0 : splits[min(splits.count - 1, Int(Double(splits.count) * q))] }
        say("\(count) seeds, \(virtual / 1000) virtual seconds in \(fmt(wall, 1)) s: \(failures.count) failed")
        say("splits seen on every side: \(splits.count); median \(pick(0.5)) ms, p99 \(pick(0.99)) ms, max \(splits.last ?? 0) ms (bound \(ChaosRun.detection(profile) + ChaosRun.splitExtra(profile)) ms)")
        for f in failures.sorted(by: { $0.seed < $1.seed }).prefix(20) { say("  \(f)") }
        printResult("chaos", [
            ("seeds", .int(count)), ("first", .int(Int(first))), ("profile", .string(profile.name)),
            ("failed", .int(failures.count)), ("failed_seeds", .string(failures.map { String($0.seed) }.sorted().prefix(50).joined(separator: ","))),
            ("splits", .int(splits.count)), ("split_median_ms", .int(Int(pick(0.5)))), ("split_p99_ms", .int(Int(pick(0.99)))),
            ("split_max_ms", .int(Int(splits.last ?? 0))), ("virtual_s", .int(Int(virtual / 1000))), ("wall_s", .double(wall)),
        ])
        if !failures.isEmpty { throw .reported }
    }
}
