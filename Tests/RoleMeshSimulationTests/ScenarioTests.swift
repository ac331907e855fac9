import Foundation
import XCTest

/// Runs every `scenarios/*.txt` (copied into the test bundle as a resource) through
/// `ScenarioInterpreter`. One failing file does not stop the others.
final class ScenarioTests: XCTestCase {
    static var scenarioDirectory: URL {
        // The copy in the test bundle; the source folder if the bundle is not where SwiftPM put it.
        if let url = Bundle.module.url(forResource: "scenarios", withExtension: nil) { return url }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("scenarios")
    }

    static func scenarioFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: scenarioDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "txt" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func testEveryScenario() throws {
        let files = try Self.scenarioFiles()
        XCTAssertGreaterThanOrEqual(files.count, 20, "scenario files missing from \(Self.scenarioDirectory.path)")
        // SCENARIO=name runs only the files whose name contains it.
        let only = ProcessInfo.processInfo.environment["SCENARIO"]
        for url in files where only.map({ url.lastPathComponent.contains($0) }) ?? true {
            let started = Date()
            let interpreter = ScenarioInterpreter(file: "scenarios/" + url.lastPathComponent)
            do {
                try interpreter.run(String(contentsOf: url, encoding: .utf8))
            } catch let failure as ScenarioInterpreter.Failure {
                XCTFail(failure.description)
            }
            for line in interpreter.output { print("  \(url.lastPathComponent): \(line)") }
            print(String(format: "scenario %@: %.1f s, %d events", url.lastPathComponent,
                         Date().timeIntervalSince(started), interpreter.mesh?.events.count ?? 0))
        }
    }

    func testAFailureNamesFileLineTextAndWhatWasSeen() {
        func failure(_ script: String) -> ScenarioInterpreter.Failure? {
            do { try ScenarioInterpreter(file: "inline.txt").run(script) } catch let f as ScenarioInterpreter.Failure {
                return f
            } catch { XCTFail("\(error)") }
            return nil
        }
        let base = "profile fast\nseed 1\nstart a b c   # three nodes\n\nexpect within 3s all see all alive\nkill c\n"
        let now = failure(base + "expect a sees c dead\n")
        XCTAssertEqual(now?.file, "inline.txt")
        XCTAssertEqual(now?.line, 7)
        XCTAssertEqual(now?.text, "expect a sees c dead")
        XCTAssertEqual(now?.message, "expected: a sees c dead\n    saw: a sees c alive")
        XCTAssert(now?.description.hasPrefix("inline.txt:7: expect a sees c dead\n") == true)

        let late = failure(base + "expect within 200ms a b see c dead\n")
        XCTAssertEqual(late?.line, 7)
        XCTAssert(late?.message.hasPrefix("expected within 200ms: a b see c dead\n    saw after 200ms: a sees c") == true, late?.message ?? "")

        let routed = failure(base + "expect route db from a = b\n")
        XCTAssertEqual(routed?.message, "expected: route db from a = b\n    saw: a routes db to none")

        let events = failure(base + "run 2s\nexpect no event member-dead about c\n")
        XCTAssertEqual(events?.line, 8)
        XCTAssert(events?.message.contains("saw: 2 event(s):") == true, events?.message ?? "")

        XCTAssertEqual(failure(base + "bogus 1\n")?.message, "unknown command bogus")
        XCTAssertEqual(failure(base + "kill zed\n")?.message, "unknown node zed")
        XCTAssertEqual(failure(base + "seed 4\n")?.message, "seed must come before the first start")
        XCTAssertEqual(failure(base + "run 2 s\n")?.message, "run takes 1 argument(s)")
        XCTAssertEqual(failure(base + "run 2x\n")?.message, "not a duration: 2x (like 500ms, 2s, 1.5s, 10m)")
        XCTAssertNil(failure(base + "expect a b see c alive\nexpect within 2s a b see c dead\nexpect events member-dead = 2\n"))
    }
}
