import Foundation
import RoleMeshCore

/// Control requests: one handler per command. Each answers on its connection.
extension Agent {
    func handle(_ req: JSON, _ conn: ControlConnection) {
        switch req["cmd"]?.string ?? "" {
        case "status":
            conn.reply(statusJSON())
        case "watch":
            watchers.append(conn)
            conn.send(.object([("event", .string("watching")), ("node", .string(config.name)), ("time", .string(Clock.rfc3339()))]))
        case "leave":
            conn.reply(.object([("ok", .bool(true)), ("node", .string(config.name))]))
            leaveAndExit()
        default:
            if !handleExtension(req, conn) {
                conn.fail(MeshError(MeshError.usage, "unknown command \(req["cmd"]?.string ?? "?")"))
            }
        }
    }

    func statusJSON() -> JSON {
        let now = Clock.now()
        let members = core.snapshot(now: now).map { m -> JSON in
            .object([
                ("name", .string(m.name)),
                ("address", .string(m.address.description)),
                ("state", .string(m.state.rawValue)),
                ("incarnation", .int(Int(m.incarnation))),
                ("roles", .array(m.roles.map(JSON.string))),
                ("backup", .object(m.backup.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("draining", .bool(m.draining)),
                ("score", .double(Score.of(m.signals))),
                ("last_heard_ms", .int(Int(m.lastHeardMs))),
                ("signals", signalsJSON(m.signals)),
            ])
        }
        let d = core.dropped
        return .object([
            ("self", .string(config.name)),
            ("members", .array(members)),
            ("roles", rolesJSON()),
            ("dropped", .object([("bad_signature", .int(d.badSignature)), ("unknown_key", .int(d.unknownKey)),
                                 ("replay", .int(d.replay)), ("malformed", .int(d.malformed)),
                                 ("rate_limited", .int(d.rateLimited))])),
        ])
    }

    func signalsJSON(_ s: Signals) -> JSON {
        .object([("load", .optional(s.load)), ("cpus", .optional(s.cpus)), ("mem_free", .optional(s.memFree)),
                 ("battery", .optional(s.battery)), ("on_battery", .optional(s.onBattery)),
                 ("throttled", .optional(s.throttled))])
    }
}
