import Foundation
import RoleMeshCore
import RoleMeshSimulation

/// Runs a scenario script against a `SimulatedMesh`, in the spirit of etcd raft's `datadriven`
/// tests: one command per line, `#` starts a comment, blank lines are ignored. The commands are
/// listed in `scenarios/README.md`. The first failing line stops the script and is reported as
/// `file:line: text` plus what was expected and what was seen.
final class ScenarioInterpreter {
    struct Failure: Error, CustomStringConvertible {
        let file: String, line: Int, text: String, message: String
        var description: String { "\(file):\(line): \(text)\n    \(message)" }
    }
    /// A problem with the current line; `run` adds file, line and text.
    struct Problem: Error { let message: String; init(_ m: String) { message = m } }

    let file: String
    private(set) var mesh: SimulatedMesh?
    private(set) var profile = TimingProfile.lan
    private(set) var seed: UInt64 = 1
    private var firstNode: String?
    private var mark = 0
    /// What `route` printed, one line each.
    private(set) var output: [String] = []

    init(file: String) { self.file = file }

    func run(_ script: String) throws {
        for (i, raw) in script.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = String(raw.prefix { $0 != "#" }).trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty else { continue }
            do { try execute(text.split(separator: " ").map(String.init)) } catch let p as Problem {
                throw Failure(file: file, line: i + 1, text: text, message: p.message)
            }
        }
    }

    // MARK: - Commands

    private func execute(_ w: [String]) throws {
        func arity(_ n: Int) throws { if w.count != n { throw Problem("\(w[0]) takes \(n - 1) argument(s)") } }
        switch w[0] {
        case "profile":
            try arity(2)
            guard mesh == nil else { throw Problem("profile must come before the first start") }
            guard let p = TimingProfile.named(w[1]) else { throw Problem("unknown profile \(w[1]) (lan, fast, travel)") }
            profile = p
        case "seed":
            try arity(2)
            guard mesh == nil else { throw Problem("seed must come before the first start") }
            guard let s = UInt64(w[1]) else { throw Problem("not a seed: \(w[1])") }
            seed = s
        case "start":
            let mesh = self.mesh ?? SimulatedMesh(seed: seed)
            self.mesh = mesh
            var names: [String] = [], roles: [String] = [], backup: [String: Int] = [:]
            for word in w.dropFirst() {
                if word.hasPrefix("roles=") {
                    roles = word.dropFirst(6).split(separator: ",").map(String.init)
                } else if word.hasPrefix("backup=") {
                    for item in word.dropFirst(7).split(separator: ",") {
                        let kv = item.split(separator: ":")
                        guard kv.count == 2, let p = Int(kv[1]) else { throw Problem("backup wants role:priority, got \(item)") }
                        backup[String(kv[0])] = p
                    }
                } else {
                    names += try expand(word)
                }
            }
            guard !names.isEmpty else { throw Problem("start needs node names") }
            for name in names {
                if mesh.nodes[name] != nil { throw Problem("\(name) already exists (use restart)") }
                mesh.addNode(name, profile: profile, seeds: firstNode.map { [$0] } ?? [], roles: roles, backup: backup)
                firstNode = firstNode ?? name
            }
        case "kill", "leave":
            let mesh = try running()
            for name in try nodes(w.dropFirst()) { w[0] == "kill" ? mesh.kill(name) : mesh.leave(name) }
        case "pause":
            try arity(3)
            try running().pause(try node(w[1]), for: try duration(w[2]))
        case "restart":
            guard w.count == 2 || w.count == 3 else { throw Problem("restart NODE [incarnation=N]") }
            var incarnation: UInt64?
            if w.count == 3 {
                guard w[2].hasPrefix("incarnation="), let i = UInt64(w[2].dropFirst(12)) else { throw Problem("restart NODE [incarnation=N]") }
                incarnation = i
            }
            try running().restart(try node(w[1]), incarnation: incarnation)
        case "tick", "run":
            try arity(2)
            try running().run(for: try duration(w[1]))
        case "loss":
            let mesh = try running()
            if w.count == 2 { mesh.loss = try percent(w[1]); break }
            try arity(3)
            let ends = w[1].components(separatedBy: "->")
            guard ends.count == 2 else { throw Problem("loss [FROM->TO] N%") }
            mesh.setLoss(from: try node(ends[0]), to: try node(ends[1]), try percent(w[2]))
        case "partition":
            let parts = w.dropFirst().split(separator: "|").map { Array($0) }
            guard parts.count >= 2 else { throw Problem("partition a b | c d") }
            try running().partition(try parts.map { try nodes($0[...]) })
        case "move":
            try arity(2)
            try running().move(try node(w[1]))
        case "heal":
            try running().heal()
        case "block", "unblock":
            try arity(3)
            let mesh = try running(), a = try node(w[1]), b = try node(w[2])
            w[0] == "block" ? mesh.blockLink(a, b) : mesh.unblockLink(a, b)
        case "roles":
            try arity(4)
            let role = w[3]
            switch w[2] {
            case "add": try running().update(try node(w[1])) { if !$0.roles.contains(role) { $0.roles.append(role) } }
            case "remove": try running().update(try node(w[1])) { $0.roles.removeAll { $0 == role } }
            default: throw Problem("roles NODE add|remove ROLE")
            }
        case "mark":
            mark = try running().events.count
        case "route":
            guard w.count == 4, w[2] == "from" else { throw Problem("route ROLE from NODE") }
            output.append("route \(w[1]) from \(w[3]): \(route(w[1], from: try node(w[3])))")
        case "expect":
            try expect(Array(w.dropFirst()))
        default:
            throw Problem("unknown command \(w[0])")
        }
    }

    // MARK: - Expectations

    /// `expect [within T] ...`: a check that yields nil when it holds, or what was seen instead.
    private func expect(_ w: [String]) throws {
        var w = w[...]
        var deadline: Millis?
        if w.first == "within" {
            guard w.count > 2 else { throw Problem("expect within DURATION ...") }
            deadline = try duration(w[w.startIndex + 1])
            w = w.dropFirst(2)
        }
        let (wanted, check) = try condition(Array(w))
        if let deadline {
            let mesh = try running()
            if mesh.run(until: { check() == nil }, step: profile.tick, timeout: deadline) == nil {
                throw Problem("expected within \(show(deadline)): \(wanted)\n    saw after \(show(deadline)): \(check() ?? "it holds now")")
            }
        } else if let seen = check() {
            throw Problem("expected: \(wanted)\n    saw: \(seen)")
        }
    }

    private func condition(_ w: [String]) throws -> (String, () -> String?) {
        let mesh = try running()
        let wanted = w.joined(separator: " ")
        // no event KIND [by X] [about Y]  |  events KIND [by X] [about Y] OP N
        if w.first == "no" || w.first == "events" {
            var rest = w[...]
            if w.first == "no" {
                guard w.count >= 3, w[1] == "event" else { throw Problem("expect no event KIND [by NODE] [about NODE]") }
                rest = rest.dropFirst(2)
            } else {
                rest = rest.dropFirst()
            }
            guard let kindWord = rest.popFirst(), let kind = MeshEvent.Kind(rawValue: kindWord) else {
                throw Problem("unknown event kind in: \(wanted)")
            }
            var by: String?, about: String?, op = "=", limit = 0
            while let word = rest.popFirst() {
                switch word {
                case "by": by = try node(rest.popFirst() ?? "")
                case "about": about = try node(rest.popFirst() ?? "")
                case "<=", ">=", "=", "<", ">":
                    guard w.first == "events", let n = rest.popFirst().flatMap({ Int($0) }) else { throw Problem("events KIND OP N") }
                    op = word; limit = n
                default: throw Problem("unexpected \(word) in: \(wanted)")
                }
            }
            let start = mark
            return (wanted + " (since the last mark)", {
                let hits = mesh.events[start...].filter {
                    $0.2.kind == kind && (by == nil || $0.1 == by) && (about == nil || $0.2.node == about)
                }
                let ok: Bool
                switch op {
                case "<=": ok = hits.count <= limit
                case ">=": ok = hits.count >= limit
                case "<": ok = hits.count < limit
                case ">": ok = hits.count > limit
                default: ok = hits.count == limit
                }
                if ok { return nil }
                let sample = hits.prefix(5).map { "\($0.0) ms: \($0.1) saw \($0.2.kind.rawValue) \($0.2.node)" }
                return "\(hits.count) event(s): " + sample.joined(separator: "; ") + (hits.count > 5 ? "; ..." : "")
            })
        }
        // route ROLE from NODE|all = NODE|none
        if w.first == "route" {
            guard w.count == 6, w[2] == "from", w[4] == "=" else { throw Problem("expect route ROLE from NODE|all = NODE|none") }
            let role = w[1], target = w[5]
            if target != "none" { _ = try node(target) }
            let observers = w[3] == "all" ? nil : [try node(w[3])]
            return (wanted, {
                let wrong = (observers ?? mesh.liveNodes).compactMap { o -> String? in
                    let r = self.route(role, from: o)
                    return r == target ? nil : "\(o) routes \(role) to \(r)"
                }
                return wrong.isEmpty ? nil : Self.list(wrong)
            })
        }
        // OBSERVERS see(s) SUBJECTS via|direct: reached through another member (a check's helper
        // answered, the member did not), or heard directly
        if let verb = w.firstIndex(where: { $0 == "sees" || $0 == "see" }), verb > 0, w.count >= verb + 3,
           w.last == "via" || w.last == "direct" {
            let observers = w[..<verb] == ["all"] ? nil : try nodes(w[..<verb])
            let subjects = w[(verb + 1)..<(w.count - 1)] == ["all"] ? nil : try nodes(w[(verb + 1)..<(w.count - 1)])
            let wantVia = w.last == "via"
            return (wanted, {
                var wrong: [String] = []
                for o in observers ?? mesh.liveNodes {
                    for s in subjects ?? mesh.liveNodes where s != o {
                        let via = mesh.via(of: s, seenBy: o)
                        if (via != nil) != wantVia { wrong.append("\(o) reaches \(s) " + (via.map { "via \($0)" } ?? "directly")) }
                    }
                }
                return wrong.isEmpty ? nil : Self.list(wrong)
            })
        }
        // OBSERVERS see(s) SUBJECTS STATE, where either list may be `all` (the nodes still up)
        guard let verb = w.firstIndex(where: { $0 == "sees" || $0 == "see" }), verb > 0, w.count >= verb + 3,
              let state = MemberState(rawValue: w.last!) else {
            throw Problem("cannot read this expectation (see scenarios/README.md)")
        }
        let observers = w[..<verb] == ["all"] ? nil : try nodes(w[..<verb])
        let subjects = w[(verb + 1)..<(w.count - 1)] == ["all"] ? nil : try nodes(w[(verb + 1)..<(w.count - 1)])
        return (wanted, {
            var wrong: [String] = []
            for o in observers ?? mesh.liveNodes {
                for s in subjects ?? mesh.liveNodes where s != o {
                    let seen = mesh.state(of: s, seenBy: o)
                    if seen != state { wrong.append("\(o) sees \(s) \(seen?.rawValue ?? "unknown")") }
                }
            }
            return wrong.isEmpty ? nil : Self.list(wrong)
        })
    }

    private func route(_ role: String, from observer: String) -> String {
        guard let core = mesh?.nodes[observer]?.core else { return "none" }
        return Routing.route(role, heavy: false, members: core.snapshot(now: mesh!.now)).node ?? "none"
    }

    // MARK: - Words

    private func running() throws -> SimulatedMesh {
        guard let mesh else { throw Problem("no nodes yet: start some first") }
        return mesh
    }

    private func node(_ name: String) throws -> String {
        guard try running().nodes[name] != nil else { throw Problem("unknown node \(name)") }
        return name
    }

    private func nodes(_ words: ArraySlice<String>) throws -> [String] {
        let names = try words.flatMap { try expand($0) }
        guard !names.isEmpty else { throw Problem("node names missing") }
        return try names.map { try node($0) }
    }

    /// `n01..30` is n01, n02, ... n30 (the width of the first number is kept); anything else is one name.
    private func expand(_ word: String) throws -> [String] {
        let parts = word.components(separatedBy: "..")
        guard parts.count == 2 else { return [word] }
        let digits = parts[0].reversed().prefix { $0.isNumber }.count
        let prefix = parts[0].dropLast(digits)
        guard digits > 0, let from = Int(parts[0].suffix(digits)), let to = Int(parts[1]), from <= to else {
            throw Problem("a range is like n01..30, got \(word)")
        }
        return (from...to).map { n in
            let s = String(n)
            return prefix + String(repeating: "0", count: max(0, digits - s.count)) + s
        }
    }

    private func duration(_ word: String) throws -> Millis {
        let units: [(String, Double)] = [("ms", 1), ("s", 1_000), ("m", 60_000)]
        for (unit, scale) in units where word.hasSuffix(unit) {
            if let v = Double(word.dropLast(unit.count)), v >= 0 { return Millis((v * scale).rounded()) }
        }
        throw Problem("not a duration: \(word) (like 500ms, 2s, 1.5s, 10m)")
    }

    private func percent(_ word: String) throws -> Double {
        guard word.hasSuffix("%"), let v = Double(word.dropLast()), (0...100).contains(v) else {
            throw Problem("not a percentage: \(word)")
        }
        return v / 100
    }

    private func show(_ ms: Millis) -> String { ms % 1_000 == 0 ? "\(ms / 1_000)s" : "\(ms)ms" }

    private static func list(_ items: [String]) -> String {
        items.prefix(8).joined(separator: ", ") + (items.count > 8 ? ", ... (\(items.count) in all)" : "")
    }
}
