import Foundation
import XCTest

/// One seed, one run: the event trace of a busy scenario is byte-for-byte the same every time,
/// within this process and in another process whose Dictionary/Set hash seed differs.
///
/// Both tests fail if the core goes back to iterating `members` in Dictionary order (tried: gossip
/// targets in Dictionary order made the traces differ at line ~465). Even within one process two
/// runs differ then, because Swift also seeds each Dictionary's order per instance; the child
/// processes cover the per-process seed on top (and `SWIFT_DETERMINISTIC_HASHING=1` vs unset).
final class DeterminismTests: XCTestCase {
    /// 30 nodes, 10 % loss, a crash, a partition and its heal, a pause. No expectations: only the
    /// trace counts here (scenarios/big-mesh-turbulence.txt checks the same mix).
    static func script(seed: UInt64) -> String {
        """
        profile lan
        seed \(seed)
        start n01..30
        run 8s
        loss 10%
        kill n07
        run 5s
        partition n01..10 | n11..30
        run 6s
        heal
        pause n15 4s
        run 15s
        """
    }

    static func trace(seed: UInt64) throws -> String {
        let interpreter = ScenarioInterpreter(file: "determinism(seed \(seed))")
        try interpreter.run(script(seed: seed))
        return interpreter.mesh!.trace()
    }

    func testSameSeedGivesTheSameTraceAndAnotherSeedDoesNot() throws {
        let first = try Self.trace(seed: 42), second = try Self.trace(seed: 42)
        XCTAssertGreaterThan(first.split(separator: "\n").count, 1_000, "the scenario should be busy")
        assertSameTrace(first, second, "same seed, same process")
        XCTAssertNotEqual(first, try Self.trace(seed: 43), "another seed gave the very same run")
    }

    /// Runs this test binary twice more, with `SWIFT_DETERMINISTIC_HASHING=1` and without it, so
    /// the children iterate Dictionaries and Sets in different orders (checked with a probe): any
    /// behaviour that still depended on that order would change the trace. Linux only: there the
    /// test binary is a plain executable that takes a test name. (`SWIFT_DETERMINISTIC_HASHING`
    /// is read by the Swift runtime at start-up on Linux too; checked with Swift 6.)
    func testTraceDoesNotDependOnTheHashSeed() throws {
        #if os(Linux)
        let here = try Self.trace(seed: 42)
        var probes: [String] = []
        for deterministic in [true, false] {
            let (trace, probe) = try runChild(deterministicHashing: deterministic)
            assertSameTrace(here, trace, "child process, SWIFT_DETERMINISTIC_HASHING \(deterministic ? "=1" : "unset")")
            probes.append(probe)
        }
        XCTAssertNotEqual(probes[0], probes[1], "both children iterated a Set the same way: the hash seed did not change")
        #else
        throw XCTSkip("runs the test binary as a child process, which is Linux-only here")
        #endif
    }

    /// In a child started by the test above: write the trace and a hash-order probe. Otherwise a no-op.
    func testChildWritesTrace() throws {
        guard let out = ProcessInfo.processInfo.environment["ROLEMESH_TRACE_OUT"] else { return }
        try Self.trace(seed: 42).write(toFile: out, atomically: true, encoding: .utf8)
        try Self.hashProbe().write(toFile: out + ".probe", atomically: true, encoding: .utf8)
    }

    static func hashProbe() -> String {
        Set((0..<32).map { "member-\($0)" }).joined(separator: ",")
    }

    func runChild(deterministicHashing: Bool) throws -> (trace: String, probe: String) {
        let out = FileManager.default.temporaryDirectory
            .appendingPathComponent("rolemesh-trace-\(ProcessInfo.processInfo.processIdentifier)-\(deterministicHashing)").path
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: out + ".probe")
        }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["RoleMeshSimulationTests.DeterminismTests/testChildWritesTrace"]
        var env = ProcessInfo.processInfo.environment
        env["ROLEMESH_TRACE_OUT"] = out
        env["SWIFT_DETERMINISTIC_HASHING"] = deterministicHashing ? "1" : nil
        child.environment = env
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        child.waitUntilExit()
        XCTAssertEqual(child.terminationStatus, 0, "the child test run failed")
        return (try String(contentsOfFile: out, encoding: .utf8), try String(contentsOfFile: out + ".probe", encoding: .utf8))
    }

    func assertSameTrace(_ a: String, _ b: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard a != b else { return }
        let la = a.split(separator: "\n", omittingEmptySubsequences: false)
        let lb = b.split(separator: "\n", omittingEmptySubsequences: false)
        let i = (0..<min(la.count, lb.count)).first { la[$0] != lb[$0] } ?? min(la.count, lb.count)
        XCTFail("\(what): traces differ at line \(i + 1) of \(la.count)/\(lb.count): \(i < la.count ? String(la[i]) : "<end>") | \(i < lb.count ? String(lb[i]) : "<end>")",
                file: file, line: line)
    }
}
