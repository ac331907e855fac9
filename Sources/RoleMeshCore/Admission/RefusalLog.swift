/// What the log says about task connections refused before authentication, and how often: one
/// line at once, then at most one line per `interval` summing up the rest (how many, why, and from
/// which source IPs), so a flood costs a counter per connection, not a log line. Nothing a client
/// says before proving its key reaches the log: only its source address, which the kernel gave,
/// and a fixed reason.
public struct RefusalLog: Sendable {
    public static let interval: Millis = 10_000
    /// Distinct sources counted per summary; more are summed under "others".
    static let maxSources = 8

    private var windowStart: Millis?
    private var reasons: [String: Int] = [:]
    private var sources: [String: Int] = [:]
    private var others = 0
    private var pending = 0

    public init() {}

    /// A refusal at `now`: the line to log now, if any.
    public mutating func note(_ reason: String, source: String, now: Millis) -> String? {
        if let start = windowStart, now - start < Self.interval {
            pending += 1
            reasons[reason, default: 0] += 1
            if sources[source] != nil || sources.count < Self.maxSources { sources[source, default: 0] += 1 } else { others += 1 }
            return nil
        }
        let summary = flush(now: now)
        windowStart = now
        let line = "refused a task connection from \(source): \(reason)"
            + " (further refusals are summed up every \(Self.interval / 1000) s)"
        return summary.map { $0 + "; " + line } ?? line
    }

    /// The summary of what was counted since the last line, once its window is over (a chore
    /// calls this so a burst is reported even when nothing follows it).
    public mutating func flush(now: Millis) -> String? {
        guard pending > 0, let start = windowStart, now - start >= Self.interval else { return nil }
        let why = reasons.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        var from = sources.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.key) ×\($0.value)" }
        if others > 0 { from.append("others ×\(others)") }
        let line = "refused \(pending) more task connections in \((now - start) / 1000) s (\(why)) from \(from.joined(separator: ", "))"
        pending = 0; reasons = [:]; sources = [:]; others = 0
        windowStart = now
        return line
    }
}
