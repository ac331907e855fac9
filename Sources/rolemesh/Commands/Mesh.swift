import ArgumentParser
import Foundation
import RoleMeshAgent
import RoleMeshCore

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The membership view as this node sees it.")
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func run() throws {
        try RoleMeshCLI.run {
            let s = try ControlClient.call(dir.node, .object([("cmd", .string("status"))]))
            printOut(json ? s.serialized : StatusText.render(s))
        }
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A live stream of mesh events, one per line.")
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var dir: DirOption

    func run() throws {
        try RoleMeshCLI.run {
            let c = try ControlClient(dir: dir.node)
            try c.send(.object([("cmd", .string("watch"))]))
            while let line = c.readLine() {
                guard let e = JSON.parse(line) else { continue }
                try ControlClient.check(e)
                if e["event"]?.string == "watching" { continue }
                printOut(json ? e.serialized : StatusText.event(e))
            }
            throw MeshError(MeshError.other, "the agent stopped")
        }
    }
}

struct Leave: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Leave the mesh gracefully, then stop the agent.")
    @OptionGroup var dir: DirOption

    func run() throws {
        try RoleMeshCLI.run {
            _ = try ControlClient.call(dir.node, .object([("cmd", .string("leave"))]))
            // Wait (bounded) for the agent to finish, as `systemctl stop` does.
            for _ in 0..<700 where FileManager.default.fileExists(atPath: dir.node.socketPath) { usleep(50_000) }
        }
    }
}

/// Human output: aligned columns, readable at 80 characters.
enum StatusText {
    static func render(_ s: JSON) -> String {
        var rows = [["NAME", "ADDRESS", "STATE", "INC", "SCORE", "HEARD", "ROLES"]]
        for m in s["members"]?.array ?? [] {
            var roles = (m["roles"]?.array ?? []).compactMap(\.string)
            for (r, p) in m["backup"]?.object ?? [] { roles.append("\(r)(b\(p.int ?? 0))") }
            var state = m["state"]?.string ?? "?"
            if m["draining"]?.bool == true { state += ",drain" }
            let heard = m["name"]?.string == s["self"]?.string ? "self" : ms(m["last_heard_ms"]?.int ?? 0)
            rows.append([m["name"]?.string ?? "?", m["address"]?.string ?? "?", state,
                         String(m["incarnation"]?.int ?? 0), String(format: "%.2f", m["score"]?.double ?? 0),
                         heard, roles.isEmpty ? "-" : roles.joined(separator: ",")])
        }
        var out = table(rows)
        if let roles = s["roles"]?.object, !roles.isEmpty {
            var r = [["ROLE", "ROUTE", "HEAVY ROUTE"]]
            for (role, v) in roles {
                r.append([role, v["route"]?.string ?? "(none)", v["heavy_route"]?.string ?? "(none)"])
            }
            out += "\n" + table(r)
        }
        if let d = s["dropped"]?.object {
            out += "\ndropped: " + d.map { "\($0.0)=\($0.1.int ?? 0)" }.joined(separator: " ")
        }
        return out
    }

    static func event(_ e: JSON) -> String {
        let time = e["time"]?.string ?? ""
        let kind = e["event"]?.string ?? "?"
        if kind == "role-moved" {
            return "\(time)  \(kind)  \(e["role"]?.string ?? "?"): \(e["from"]?.string ?? "nobody") -> \(e["to"]?.string ?? "nobody")"
        }
        return "\(time)  \(kind)  \(e["node"]?.string ?? "?")"
    }

    static func ms(_ v: Int) -> String { v < 10_000 ? "\(v)ms" : "\(v / 1000)s" }

    static func table(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
