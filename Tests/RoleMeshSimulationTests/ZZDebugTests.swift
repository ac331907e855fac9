import XCTest
import RoleMeshCore
import RoleMeshSimulation

final class ZZDebugTests: XCTestCase {
    func testDebugSeed() {
        let seed = UInt64(ProcessInfo.processInfo.environment["SEED"] ?? "160")!
        let o = ChaosRun.run(seed: seed)
        let from = Int64(ProcessInfo.processInfo.environment["FROM"] ?? "0")!
        for l in o.trace.split(separator: "\n") where Int64(l.split(separator: " ")[0])! >= from { print(l) }
        print(o.log.joined(separator: "\n"))
    }
    func testDebugScenario() throws {
        let file = ProcessInfo.processInfo.environment["SCEN"] ?? "loss-30pct-roles-stay"
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("scenarios/\(file).txt")
        let i = ScenarioInterpreter(file: file)
        do { try i.run(try String(contentsOf: url, encoding: .utf8)) } catch { print(error) }
        let grep = ProcessInfo.processInfo.environment["GREP"] ?? ""
        for l in i.mesh!.trace().split(separator: "\n") where grep.isEmpty || l.contains(grep) { if !l.contains("updated") { print(l) } }
    }
    func testDebugLoss() {
        let mesh = SimulatedMesh(seed: 73)
        mesh.addNode("n1", profile: .lan, roles: ["db"])
        mesh.addNode("n2", profile: .lan, seeds: ["n1"], backup: ["db": 1])
        for i in 3...8 { mesh.addNode("n\(i)", profile: .lan, seeds: ["n1"]) }
        mesh.run(for: 10_000)
        mesh.loss = 0.3
        let start = mesh.events.count
        mesh.run(for: 120_000)
        for l in mesh.trace(from: start).split(separator: "\n") where l.contains("n4") && !l.contains("updated") { print(l) }
    }
}
