import Foundation
import XCTest

/// The README's Layout table is the map of the targets: every `import` in `Sources/` must be one its
/// target's row names, every dependency `Package.swift` gives a target must be in its row, and a few
/// rules of the layout hold (issue 25). A new import, target or folder that the table does not show
/// fails here.
final class LayoutTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// target -> modules it may import, from the README's Layout table.
    static func table() throws -> [String: Set<String>] {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "\n## Layout\n") else { throw XCTSkip("no Layout section") }
        var rows: [String: Set<String>] = [:]
        for line in readme[start.upperBound...].split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            let names = ticked(cells[1]), imports = ticked(cells[3])
            for n in names { rows[n] = Set(imports) }
        }
        return rows
    }

    /// The `quoted` words of a table cell.
    static func ticked(_ cell: String) -> [String] {
        cell.components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
    }

    static func swiftFiles(under dir: String) -> [URL] {
        let base = root.appendingPathComponent(dir)
        guard let e = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { return [] }
        return e.compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
    }

    static func relative(_ url: URL) -> String { String(url.path.dropFirst(root.path.count + 1)) }

    static func imports(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line -> String? in
            let l = line.trimmingCharacters(in: .whitespaces)
            for prefix in ["import ", "@_exported import ", "@testable import "] where l.hasPrefix(prefix) {
                return String(l.dropFirst(prefix.count)).split(separator: " ").first.map(String.init)
            }
            return nil
        }
    }

    func testEveryImportIsOneItsTargetsRowNames() throws {
        let table = try Self.table()
        let targets = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Sources").path)
        for target in targets.sorted() {
            guard let allowed = table[target] else { XCTFail("Sources/\(target) has no row in the README's Layout table"); continue }
            for file in Self.swiftFiles(under: "Sources/\(target)") {
                for module in Self.imports(try String(contentsOf: file, encoding: .utf8)) where !allowed.contains(module) {
                    XCTFail("\(Self.relative(file)) imports \(module), which the Layout row of \(target) does not name")
                }
            }
        }
        for name in table.keys where !targets.contains(name) { XCTFail("the Layout table names \(name), which is not in Sources/") }
    }

    /// Each `.target(name:dependencies:)` of Package.swift: its dependencies are in its row.
    func testEveryPackageDependencyIsInItsRow() throws {
        let table = try Self.table()
        let package = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"\.(?:executableTarget|target)\(\s*name:\s*"([^"]+)"\s*,\s*dependencies:\s*\[([^\]]*)\]"#)
        var seen = 0
        for m in pattern.matches(in: package, range: NSRange(package.startIndex..., in: package)) {
            let name = String(package[Range(m.range(at: 1), in: package)!])
            let deps = String(package[Range(m.range(at: 2), in: package)!])
            let named = deps.components(separatedBy: "\"").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
                .filter { !$0.hasPrefix("swift-") }      // a package, not a module
            seen += 1
            for d in named where table[name]?.contains(d) != true {
                XCTFail("Package.swift gives \(name) the dependency \(d), which its Layout row does not name")
            }
        }
        XCTAssertGreaterThan(seen, 8, "Package.swift's targets were not found")
    }

    func testLibsodiumOnlyInSecurityAndAgentExtensionsOnlyInTheAgentsFolder() throws {
        for file in Self.swiftFiles(under: "Sources") {
            let path = Self.relative(file), text = try String(contentsOf: file, encoding: .utf8)
            if Self.imports(text).contains("CSodium") {
                XCTAssertTrue(path.hasPrefix("Sources/RoleMeshCore/Security/"), "\(path) imports CSodium: only Security/ may")
            }
            if text.range(of: #"(?m)^(public )?extension Agent\b"#, options: .regularExpression) != nil {
                XCTAssertTrue(path.hasPrefix("Sources/RoleMeshAgent/Agent/"), "\(path) extends Agent: only the agent's own folder may")
            }
            XCTAssertFalse(text.contains("canImport("), "\(path): platforms are decided once, in RoleMeshPlatform/Exports.swift")
        }
    }

    /// Background work is a child of the agent's `run()` (`spawn`); what is left of `Task {}` says why.
    func testFewUnstructuredTasksInTheAgentEachWithItsReason() throws {
        var found: [String] = []
        for file in Self.swiftFiles(under: "Sources/RoleMeshAgent") {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            for (i, line) in lines.enumerated() where line.range(of: #"\bTask(\.detached)? *\{"#, options: .regularExpression) != nil
                && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                let place = "\(Self.relative(file)):\(i + 1)"
                found.append(place)
                let commented = line.contains("//") || (i > 0 && lines[i - 1].contains("//"))
                XCTAssertTrue(commented, "\(place): an unstructured Task says why it is not a child of the agent's run()")
            }
        }
        XCTAssertLessThan(found.count, 10, "unstructured tasks in the agent: \(found.joined(separator: ", "))")
    }

    /// The process ends in one place per executable: the command line's `RoleMesh` (its `main`) and
    /// the bench's main.swift. The agent returns from `run()`; everything else throws.
    func testNoExitOutsideTheEntryPoints() throws {
        let entryPoints: Set<String> = ["Sources/rolemesh/RoleMesh.swift", "Sources/rolemesh-bench/main.swift"]
        for file in Self.swiftFiles(under: "Sources") where !entryPoints.contains(Self.relative(file)) {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
            for (i, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                let code = line.components(separatedBy: "//").first ?? ""
                if code.range(of: #"((?<![.\w])|Glibc\.)(_)?exit\("#, options: .regularExpression) != nil, !code.contains("func exit(") {
                    XCTFail("\(Self.relative(file)):\(i + 1) ends the process: only the entry points may")
                }
            }
        }
    }
}
