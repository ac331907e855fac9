import Glibc
import Dispatch
import FoundationEssentials
import Logging
import Synchronization

/// The agent's log: swift-log's `Logger` behind the few calls the code makes (`Log.info("...")`,
/// with an optional short context, `Log.info("...", context: ["peer": name])`), written by
/// `LineLogHandler` as one line each on stderr.
public enum Log {
    /// The lowest level written (`agent --log-level`); an index into `Logger.Level.allCases`.
    private static let threshold = Atomic(Logger.Level.allCases.firstIndex(of: .info)!)

    public static let logger = Logger(label: "rolemesh") { _ in LineLogHandler() }

    /// The level names `--log-level` takes, lowest first.
    public static let levelNames = Logger.Level.allCases.map(\.rawValue)

    public static var level: Logger.Level {
        get { Logger.Level.allCases[threshold.load(ordering: .relaxed)] }
        set { threshold.store(Logger.Level.allCases.firstIndex(of: newValue)!, ordering: .relaxed) }
    }

    /// Sets the level by name (`trace` ... `critical`); false for a name that is not one.
    @discardableResult
    public static func setLevel(named name: String) -> Bool {
        guard let l = Logger.Level(rawValue: name) else { return false }
        level = l
        return true
    }

    /// `agent --verbose`: debug lines too.
    public static var verbose: Bool {
        get { level <= .debug }
        set { level = newValue ? .debug : .info }
    }

    public static func debug(_ s: String) { debug(s, context: [:]) }
    public static func info(_ s: String) { info(s, context: [:]) }
    public static func notice(_ s: String) { notice(s, context: [:]) }
    public static func warn(_ s: String) { warn(s, context: [:]) }

    public static func debug(_ s: String, context: KeyValuePairs<String, String>) { write(.debug, s, context) }
    public static func info(_ s: String, context: KeyValuePairs<String, String>) { write(.info, s, context) }
    public static func notice(_ s: String, context: KeyValuePairs<String, String>) { write(.notice, s, context) }
    public static func warn(_ s: String, context: KeyValuePairs<String, String>) { write(.warning, s, context) }

    public static func write(_ l: Logger.Level, _ s: String, _ context: KeyValuePairs<String, String>) {
        guard l >= level else { return }
        // Metadata keeps no order; the context's order (node=, peer=, task=, role=) is kept by
        // passing it in one ordered value.
        let pairs = context.map { "\($0.key)=\(LineLogHandler.quoted($0.value))" }.joined(separator: " ")
        logger.log(level: l, "\(s)", metadata: pairs.isEmpty ? nil : [LineLogHandler.contextKey: .string(pairs)])
    }
}

/// `TIME LEVEL message key=value...` on stderr, one event per line. Under systemd (the journal
/// sets `JOURNAL_STREAM` for the units whose output it takes) the time is left out: the journal
/// stamps every line itself.
public struct LineLogHandler: LogHandler {
    public static let contextKey = "context"
    public static let stampTime = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] == nil

    public var metadata: Logger.Metadata = [:]
    /// The threshold lives in `Log`, so `--log-level` applies to every logger at once.
    public var logLevel: Logger.Level {
        get { Log.level }
        set { Log.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        // Never trapping: a closed stderr loses the line, it does not bring the agent down.
        let line = Self.format(level: event.level, message: "\(event.message)",
                               metadata: self.metadata.merging(event.metadata ?? [:]) { $1 },
                               time: Self.stampTime ? Clock.rfc3339() : nil)
        _ = FD.writeAll(2, Array(line.utf8))
    }

    /// One line. Names and sentences may come from unauthenticated peers, so control characters
    /// (newlines, escape sequences) are escaped rather than written to the terminal or journal.
    public static func format(level: Logger.Level, message: String, metadata: Logger.Metadata, time: String?) -> String {
        var line = time.map { $0 + " " } ?? ""
        line += "\(level.rawValue) \(message)"
        if case .string(let pairs)? = metadata[contextKey] { line += " " + pairs }
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) where k != contextKey { line += " \(k)=\(quoted("\(v)"))" }
        return line.escapingControlCharacters + "\n"
    }

    /// A value as `key=value` shows it: quoted when it has a space, a quote or is empty.
    public static func quoted(_ v: String) -> String {
        guard v.isEmpty || v.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else { return v }
        return "\"" + v.replacingScalar("\"", with: "\\\"") + "\""
    }
}
