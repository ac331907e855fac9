/// One recurring background job: a table of `DIR/roles/ROLE/schedule.toml` (docs/contract.md,
/// "Background work"). Times are whole seconds; the window is minutes of the running node's day.
public struct Schedule: Equatable, Sendable {
    public var role: String
    public var task: String
    /// The period: one run per slot of this length, slots aligned to UTC midnight.
    public var every: Int64
    public var window: TimeWindow?
    /// Seconds the running node must have been idle; nil: idleness does not matter.
    public var idle: Int64?
    /// Only while on mains power.
    public var mains: Bool
    public var heavy: Bool
    public var args: [String]

    public init(role: String, task: String, every: Int64, window: TimeWindow? = nil, idle: Int64? = nil,
                mains: Bool = false, heavy: Bool = false, args: [String] = []) {
        self.role = role; self.task = task; self.every = every; self.window = window; self.idle = idle
        self.mains = mains; self.heavy = heavy; self.args = args
    }

    /// `ROLE/TASK`, how commands and `tasks --json` name a schedule.
    public var id: String { "\(role)/\(task)" }

    public static let minEvery: Int64 = 10
    public static let maxEvery: Int64 = 90 * 86_400
}

/// `HH:MM-HH:MM` in the running node's local time; may wrap past midnight (`22:00-06:00`).
public struct TimeWindow: Equatable, Sendable, CustomStringConvertible {
    /// Minutes after local midnight; `start == end` is the whole day.
    public var start: Int
    public var end: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let s = Self.minutes(parts[0]), let e = Self.minutes(parts[1]) else { return nil }
        start = s; end = e
    }

    static func minutes(_ t: Substring) -> Int? {
        let hm = t.trimmingSpaces.split(separator: ":", omittingEmptySubsequences: false)
        guard hm.count == 2, hm.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCIIDigitChar) }),
              let h = Int(hm[0]), let m = Int(hm[1]), h < 24, m < 60 else { return nil }
        return h * 60 + m
    }

    public func contains(minuteOfDay m: Int) -> Bool {
        if start == end { return true }
        return start < end ? (start <= m && m < end) : (m >= start || m < end)
    }

    public var description: String {
        func hm(_ m: Int) -> String { (m / 60 < 10 ? "0" : "") + "\(m / 60):" + (m % 60 < 10 ? "0" : "") + "\(m % 60)" }
        return "\(hm(start))-\(hm(end))"
    }
}

/// Durations as schedule.toml writes them: a whole number and one unit, `s`, `m`, `h` or `d`.
public enum DurationText {
    public static func seconds(_ text: String) -> Int64? {
        guard let unit = text.last, let n = Int64(text.dropLast()), n >= 0, !text.hasPrefix("+") else { return nil }
        let scale: Int64
        switch unit {
        case "s": scale = 1
        case "m": scale = 60
        case "h": scale = 3600
        case "d": scale = 86_400
        default: return nil
        }
        let (v, overflow) = n.multipliedReportingOverflow(by: scale)
        return overflow ? nil : v
    }

    /// `3m`, `1h 5m`-like text for reasons: the largest unit that fits, then the next.
    public static func describe(_ s: Int64) -> String {
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" }
        if s < 86_400 { return "\(s / 3600)h" + (s % 3600 >= 60 ? "\(s % 3600 / 60)m" : "") }
        return "\(s / 86_400)d" + (s % 86_400 >= 3600 ? "\(s % 86_400 / 3600)h" : "")
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var t = self
        while t.first == " " { t.removeFirst() }
        while t.last == " " { t.removeLast() }
        return t
    }
}

/// A schedule as nodes tell each other about theirs (with their slot records), so that
/// `schedules` lists every schedule the mesh knows. Read leniently: a definition that does not
/// hold up (bad names, a period out of range, a bad window) is ignored.
public struct ScheduleDefinition: Codable, Equatable, Sendable {
    public var role: String
    public var task: String
    public var every: Int64
    public var window: String?
    public var idle: Int64?
    public var power: String?
    public var heavy: Bool?
    public var args: [String]?

    public init(_ s: Schedule) {
        role = s.role; task = s.task; every = s.every; window = s.window?.description; idle = s.idle
        power = s.mains ? "mains" : nil; heavy = s.heavy ? true : nil; args = s.args.isEmpty ? nil : s.args
    }

    public var schedule: Schedule? {
        guard NodeName.isValid(role), NodeName.isValid(task, maxLength: 255),
              (Schedule.minEvery...Schedule.maxEvery).contains(every), (idle ?? 0) >= 0 else { return nil }
        var window: TimeWindow?
        if let text = self.window { guard let w = TimeWindow(text) else { return nil }; window = w }
        return Schedule(role: role, task: task, every: every, window: window, idle: idle, mains: power == "mains",
                        heavy: heavy ?? false, args: args ?? [])
    }
}
