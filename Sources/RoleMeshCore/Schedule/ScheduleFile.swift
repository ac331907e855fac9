/// `roles/ROLE/schedule.toml`: one `[TASK]` table per task of the role's folder. Parsed with
/// the same TOML reader as `node.toml`; every error names the file, line and key.
public enum ScheduleFile {
    public static let keys = ["every", "window", "idle", "power", "heavy", "args"]

    /// `file`: how errors name it, e.g. `roles/metabolism/schedule.toml`.
    public static func parse(_ text: String, role: String, file: String) throws(ConfigError) -> [Schedule] {
        do {
            return try parseEntries(TOMLSubset.parse(text, tables: true), role: role)
        } catch {
            var e = error
            e.file = file
            throw e
        }
    }

    static func parseEntries(_ entries: [TOMLEntry], role: String) throws(ConfigError) -> [Schedule] {
        try TOMLSubset.tables(entries, what: "task", example: "reindex", isValid: { NodeName.isValid($0, maxLength: 255) }, rule: NodeName.rule)
            .map { t throws(ConfigError) in try schedule(role: role, task: t.name, t.entries) }
    }

    static func schedule(role: String, task: String, _ entries: [TOMLEntry]) throws(ConfigError) -> Schedule {
        var s = Schedule(role: role, task: task, every: 0)
        for e in entries {
            switch e.key {
            case "every":
                guard let v = DurationText.seconds(try e.string()), (Schedule.minEvery...Schedule.maxEvery).contains(v) else {
                    throw e.error("expected a period from \"10s\" to \"90d\" (a number and s, m, h or d), found \(TOMLSubset.quoted((try? e.string()) ?? ""))")
                }
                s.every = v
            case "window":
                guard let w = TimeWindow(try e.string()) else {
                    throw e.error("expected a local-time window like \"01:00-06:00\", found \(TOMLSubset.quoted((try? e.string()) ?? ""))")
                }
                s.window = w
            case "idle":
                guard let v = DurationText.seconds(try e.string()), v <= Schedule.maxEvery else {
                    throw e.error("expected how long the node must be idle, like \"15m\" (\"0s\": idle now), found \(TOMLSubset.quoted((try? e.string()) ?? ""))")
                }
                s.idle = v
            case "power":
                let p = try e.string()
                guard p == "mains" || p == "any" else { throw e.error("expected \"mains\" or \"any\", found \(TOMLSubset.quoted(p))") }
                s.mains = p == "mains"
            case "heavy":
                guard case let .bool(b) = e.value else { throw e.error("expected a boolean, found \(e.value.typeDescription)") }
                s.heavy = b
            case "args":
                s.args = try e.strings()
            default:
                throw e.error("unknown key \"\(e.key)\" (known keys: \(keys.joined(separator: ", ")))")
            }
        }
        guard s.every > 0 else {
            throw ConfigError(line: entries.first?.line, key: "every", message: "table [\(task)] lacks the required key \"every\"")
        }
        return s
    }
}
