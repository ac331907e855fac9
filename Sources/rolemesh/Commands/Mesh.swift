import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The membership view as this node sees it.")
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func run() async throws { try Self.show(node: dir.node, json: json) }

    /// The whole command, however its words were parsed (here or `QuickCommand`).
    static func show(node: NodeDirectory, json: Bool) throws {
        let s = try ControlClient.call(node, .status, as: StatusReply.self)
        printOut(json ? ControlJSON.string(s) : StatusText.render(s))
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "A live stream of mesh events, one per line.")
    @Flag(help: "One JSON object per line.") var json = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let c = try ControlClient(dir: dir.node)
        try c.send(.watch)
        try c.awaitAnswer()         // only the first line is time-limited: events come when they come
        while let line = c.readLine() {
            try ControlClient.check(line)
            guard let e = ControlJSON.decode(WatchEvent.self, from: line) else { continue }
            if e.event == WatchEvent.watching { continue }
            printOut(json ? ControlJSON.string(e) : StatusText.event(e))
        }
        throw MeshError(MeshError.other, "the agent stopped")
    }
}

struct Leave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "leave", abstract: "Leave the mesh gracefully, then stop the agent.")
    @OptionGroup var dir: DirOption

    func run() async throws {
        let c = try ControlClient(dir: dir.node, noAgent: "so this node is not in the mesh now: nothing to leave")
        try c.send(.leave)
        try ControlClient.check(try c.firstLine())
        // The agent closes this connection as it stops: wait for that (bounded: running tasks
        // get up to 30 s to finish), as `systemctl stop` does.
        if !c.waitForClose(within: 40) {
            throw MeshError(MeshError.other, "the agent said it is leaving but was still running after 40 s")
        }
    }
}

/// Human output: aligned columns, readable at 80 characters.
enum StatusText {
    static func render(_ s: StatusReply) -> String {
        var rows = [["NAME", "ADDRESS", "STATE", "INC", "SCORE", "HEARD", "BATTERY", "THROTTLED", "ROLES"]]
        for m in s.members {
            var roles = m.roles
            for (r, p) in m.backup.sorted(by: { $0.key < $1.key }) { roles.append("\(r)(b\(p))") }
            // The word is always a contract state; draining and a relay are said beside it, and
            // draining only while the member is up (one that left drained on its way out).
            let up = m.state == "alive" || m.state == "suspect"
            let state = m.state + (m.draining && up ? " (draining)" : "") + (m.reach?.hasPrefix("via ") == true ? " (\(m.reach!))" : "")
            let heard = m.name == s.me ? "self" : ms(m.lastHeardMs)
            rows.append([m.name, m.address, state, String(m.incarnation), Routing.twoDecimals(m.score),
                         heard, battery(m.signals), m.signals.throttled.map { $0 ? "yes" : "no" } ?? "-",
                         roles.isEmpty ? "-" : roles.joined(separator: ",")])
        }
        var out = table(rows)
        if !s.roles.isEmpty {
            var r = [["ROLE", "ROUTE", "HEAVY ROUTE"]]
            for (role, v) in s.roles.sorted(by: { $0.key < $1.key }) {
                r.append([role, v.route ?? "(none)", v.heavyRoute ?? "(none)"])
            }
            out += "\n" + table(r)
        }
        let d = s.dropped
        out += "\ndropped: bad_signature=\(d.badSignature) unknown_key=\(d.unknownKey) replay=\(d.replay)"
            + " malformed=\(d.malformed) rate_limited=\(d.rateLimited) bad_mac=\(d.badMac) not_introducer=\(d.notIntroducer)"
            + " forged_slot_record=\(d.forgedSlotRecord)"
        if let r = s.revoked { out = "revoked by \(r.by) at \(r.at): the other devices no longer trust this one\n\n" + out }
        return out
    }

    static func event(_ e: WatchEvent) -> String {
        if e.event == WatchEvent.roleMoved {
            return "\(e.time)  \(e.event)  \(e.role ?? "?"): \(e.from ?? "nobody") -> \(e.to ?? "nobody")"
        }
        if WatchEvent.runEvents.contains(e.event) {
            var line = "\(e.time)  \(e.event)  \(e.role ?? "?")/\(e.task ?? "?") on \(e.node)"
            if let slot = e.slot { line += ", slot \(slot)" }
            if let why = e.reason { line += ": \(why)" }
            if let code = e.exitCode { line += ", exit \(code)" }
            return line
        }
        if e.event == "service-moved" {
            return "\(e.time)  \(e.event)  \(e.service ?? "?"): \(e.from ?? "nobody") -> \(e.to ?? "nobody")"
        }
        if WatchEvent.serviceEvents.contains(e.event) { return "\(e.time)  \(e.event)  \(e.service ?? "?") on \(e.node)" }
        if e.event == WatchEvent.memberRevoked { return "\(e.time)  \(e.event)  \(e.node) (by \(e.by ?? "?"))" }
        return "\(e.time)  \(e.event)  \(e.node)"
    }

    /// `73% bat` (on battery), `73% ac` (plugged in), `bat` (on battery, no level known), `-` (no
    /// battery seen): short, so the table stays readable at 80 characters.
    static func battery(_ s: SignalsStatus) -> String {
        let level = s.battery.map { "\(Int(($0 * 100).rounded()))% " } ?? ""
        if s.onBattery == true { return level + "bat" }
        return level.isEmpty ? "-" : level + "ac"
    }

    static func ms(_ v: Int) -> String { v < 10_000 ? "\(v)ms" : "\(v / 1000)s" }

    static func table(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
