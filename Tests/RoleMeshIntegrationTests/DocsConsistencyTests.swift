import Foundation
import XCTest

/// docs/contract.md, the README's command table, docs/rolemesh.1 and `--help` say the same
/// things: a command or flag added to one and not the others fails here.
final class DocsConsistencyTests: XCTestCase {
    /// Commands the contract names that are not built yet, each with the issue that builds it.
    /// Remove an entry when its command lands (the test fails while a built command is still here).
    static let notBuiltYet: [String: String] = [:]

    /// Flags every command has, which the contract states once ("Every command takes --dir DIR").
    static let everywhere: Set<String> = ["--dir", "--help", "--version"]

    /// `rolemesh ...` entries of the contract's command tables, `\|` unescaped.
    static func contractCommands() throws -> [String] {
        var out: [String] = []
        for line in try HelpText.repoFile("docs/contract.md").split(separator: "\n") where line.hasPrefix("| `rolemesh ") {
            let cell = line.dropFirst(2).components(separatedBy: " | ")[0].replacingOccurrences(of: "\\|", with: "|")
            // One cell may hold several commands: `rolemesh drain` · `rolemesh undrain`.
            let parts = cell.components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
            out += parts.filter { $0.hasPrefix("rolemesh ") }
        }
        return out
    }

    /// The command path an entry names (words that are subcommands in `--help`) and its flags.
    static func resolve(_ entry: String, in tree: [[String]: HelpText]) -> (path: [String], flags: Set<String>) {
        let words = entry.split(separator: " ").dropFirst().map(String.init)
        var path: [String] = []
        for w in words {
            guard let h = tree[path], h.subcommands.contains(w) else { break }
            path.append(w)
        }
        if path.isEmpty, let w = words.first, !w.hasPrefix("-") { path = [w] }    // a command not built
        return (path, HelpText.longFlags(in: entry))
    }

    func testEveryCommandAndFlagOfTheContractIsInHelpAndViceVersa() throws {
        let tree = try HelpText.tree()
        let entries = try Self.contractCommands()
        XCTAssertGreaterThan(entries.count, 15, "the contract's command tables were not found")
        var documented: [[String]: Set<String>] = [:]
        for entry in entries {
            let (path, flags) = Self.resolve(entry, in: tree)
            if path.isEmpty {
                // Options of `rolemesh` itself; --generate-completion-script is ArgumentParser's, hidden
                // from --help (testCompletionScriptsForBashZshAndFish runs it).
                for f in flags.subtracting(tree[[]]?.flags ?? []) where f != "--generate-completion-script" {
                    XCTFail("docs/contract.md documents `rolemesh \(f)`, which `rolemesh --help` does not list")
                }
                XCTAssertFalse(flags.isEmpty, "a contract entry names no command: \(entry)")
                continue
            }
            if let issue = Self.notBuiltYet[path[0]] {
                XCTAssertNil(tree[[path[0]]], "`rolemesh \(path[0])` is built now: remove it from notBuiltYet (\(issue))")
                continue
            }
            guard let help = tree[path] else {
                XCTFail("docs/contract.md documents `\(entry)`, but `rolemesh --help` has no `\(path.joined(separator: " "))`"); continue
            }
            for f in flags.subtracting(help.flags) {
                XCTFail("docs/contract.md documents \(f) for `rolemesh \(path.joined(separator: " "))`, which its --help does not list")
            }
            documented[path, default: []].formUnion(flags)
        }
        // Vice versa: every command and subcommand, and every flag but the ones all commands take.
        for (path, help) in tree where !path.isEmpty {
            let isGroup = !help.subcommands.isEmpty
            guard isGroup || documented[path] != nil else {
                XCTFail("`rolemesh \(path.joined(separator: " "))` is in --help but not in docs/contract.md's command tables"); continue
            }
            if isGroup { continue }
            for f in help.flags.subtracting(Self.everywhere).subtracting(documented[path] ?? []) {
                XCTFail("`rolemesh \(path.joined(separator: " ")) \(f)` is in --help but not in docs/contract.md")
            }
        }
    }

    func testEveryCommandIsInTheReadmesTable() throws {
        let top = try HelpText.of([]).subcommands
        // The README's command table: rows like "| `init NAME`, `keygen NAME` | ... |".
        var listed: Set<String> = []
        for line in try HelpText.repoFile("README.md").split(separator: "\n") where line.hasPrefix("| `") {
            let cell = line.dropFirst(2).components(separatedBy: " | ")[0]
            for (i, part) in cell.components(separatedBy: "`").enumerated() where i % 2 == 1 {
                if let w = part.split(separator: " ").first { listed.insert(String(w)) }
            }
        }
        for c in top where !listed.contains(c) { XCTFail("`rolemesh \(c)` is in --help but not in the README's command table") }
    }

    func testTheManPageListsWhatHelpLists() throws {
        let tree = try HelpText.tree()
        let page = ManPage.parse(try HelpText.repoFile("docs/rolemesh.1"))
        // ArgumentParser's `help` command is in the man page, not in --help's list.
        let manPaths = Set(page.commands.keys).subtracting([["help"]])
        XCTAssertEqual(manPaths, Set(tree.keys),
                       "docs/rolemesh.1 and --help list different commands: regenerate it with scripts/manpage.sh")
        for (path, help) in tree {
            XCTAssertEqual(page.commands[path] ?? [], help.flags,
                           "`rolemesh \(path.joined(separator: " "))`: docs/rolemesh.1 and --help list different flags: regenerate it with scripts/manpage.sh")
        }
    }

    func testCompletionScriptsForBashZshAndFish() throws {
        for shell in ["bash", "zsh", "fish"] {
            let r = try Cluster.run(Cluster.binary, ["--generate-completion-script", shell], timeout: 20)
            XCTAssertEqual(r.status, 0, r.stderr)
            for command in ["doctor", "service", "submit"] {
                XCTAssertTrue(r.stdout.contains(command), "the \(shell) completion script does not know \(command)")
            }
        }
    }

    func testVersion() throws {
        let r = try Cluster.run(Cluster.binary, ["--version"], timeout: 20)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertNotNil(r.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression), r.stdout)
    }
}
