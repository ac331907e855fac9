import Foundation
import XCTest

/// What `rolemesh [COMMAND...] --help` says: its subcommands and its long flags. The docs
/// consistency tests compare docs/contract.md, the README and docs/rolemesh.1 with it.
struct HelpText {
    var subcommands: [String] = []
    var flags: Set<String> = []
    var text = ""

    /// The help of one command path (`[]` is the root).
    static func of(_ path: [String]) throws -> HelpText {
        let r = try Cluster.run(Cluster.binary, path + ["--help"], timeout: 20)
        XCTAssertEqual(r.status, 0, "rolemesh \(path.joined(separator: " ")) --help: \(r.stderr)")
        return parse(r.stdout)
    }

    static func parse(_ help: String) -> HelpText {
        var h = HelpText(text: help)
        var section = ""
        for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
            if let first = line.first, first != " " { section = String(line); continue }
            // An entry starts two spaces in; longer indents continue the previous one.
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { continue }
            let word = line.dropFirst(2).split(separator: " ").first.map(String.init) ?? ""
            if section == "SUBCOMMANDS:", !word.isEmpty, word != "See" { h.subcommands.append(word) }
            // The first column only: descriptions may mention other flags.
            if section == "OPTIONS:" { h.flags.formUnion(longFlags(in: line.dropFirst(2).components(separatedBy: "  ")[0])) }
        }
        return h
    }

    /// `--name` words in `s` (not the bare `--` that ends options).
    static func longFlags(in s: String) -> Set<String> {
        var out: Set<String> = []
        var rest = Substring(s)
        while let r = rest.range(of: "--") {
            let name = rest[r.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" }
            if let f = name.first, f.isLetter { out.insert("--" + name) }
            rest = rest[r.upperBound...]
        }
        return out
    }

    /// Every command path of the CLI: top-level commands and their subcommands, with each one's help.
    static func tree() throws -> [[String]: HelpText] {
        var out: [[String]: HelpText] = [:]
        var pending: [[String]] = [[]]
        while let path = pending.popLast(), out.count < 100 {
            let h = try of(path)
            out[path] = h
            pending += h.subcommands.map { path + [$0] }
        }
        return out
    }

    /// The repository's files (docs/contract.md, README.md, docs/rolemesh.1), found from this source file.
    static func repoFile(_ relative: String) throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
    }
}
