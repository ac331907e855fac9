import RoleMeshPlatform
import Foundation
import RoleMeshAgent

// Small shared pieces: argv options, clocks, statistics, tables and the RESULT line.

/// Seconds on a monotonic clock.
func monoNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The bench paces its polls of other programs (serf, ssh, agents) in real time: it is the one
/// place in the repository that sleeps on purpose, at most 60 s at a time.
func sleepSeconds(_ s: Double) {
    guard s > 0 else { return }
    let t = min(s, 60)
    var ts = timespec(tv_sec: Int(t), tv_nsec: Int((t - t.rounded(.down)) * 1e9))
    var rest = timespec()
    while nanosleep(&ts, &rest) < 0 && errno == EINTR { ts = rest }
}

/// Polls `condition` every `interval` seconds until it holds or `timeout` passes.
@discardableResult
func waitUntil(timeout: Double, interval: Double = 0.1, _ condition: () -> Bool) -> Bool {
    let deadline = monoNow() + timeout
    let maxPolls = Int(timeout / interval) + 2
    for _ in 0..<maxPolls {
        if condition() { return true }
        if monoNow() >= deadline { break }
        sleepSeconds(interval)
    }
    return condition()
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ s: String) { description = s }
}

/// `--name value` or `--name=value`; anything else is a usage error (`BenchExit.usage`, exit 64).
struct Options {
    private var values: [String: String] = [:]

    init(_ args: [String], allowed: [String]) throws(BenchExit) {
        var i = 0
        while i < args.count {
            let a = args[i]
            guard a.hasPrefix("--") else { throw .usage("unexpected argument \(a)") }
            var key = String(a.dropFirst(2))
            var value: String?
            if let eq = key.firstIndex(of: "=") {
                value = String(key[key.index(after: eq)...])
                key = String(key[..<eq])
            }
            guard allowed.contains(key) else { throw .usage("unknown option --\(key)") }
            if value == nil {
                guard i + 1 < args.count else { throw .usage("--\(key) needs a value") }
                i += 1
                value = args[i]
            }
            values[key] = value
            i += 1
        }
    }

    /// A comma-separated list of integers (`--nodes 10,30,60`).
    func ints(_ key: String, _ def: [Int], min lo: Int = 1, max hi: Int = 1_000_000) throws(BenchExit) -> [Int] {
        guard let s = values[key] else { return def }
        let vs = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !vs.isEmpty, vs.allSatisfy({ $0 != nil && $0! >= lo && $0! <= hi }) else {
            throw .usage("--\(key) must be integers in \(lo)...\(hi), separated by commas")
        }
        return vs.map { $0! }
    }

    func int(_ key: String, _ def: Int, min lo: Int = 1, max hi: Int = 1_000_000) throws(BenchExit) -> Int {
        guard let s = values[key] else { return def }
        guard let v = Int(s), v >= lo, v <= hi else { throw .usage("--\(key) must be an integer in \(lo)...\(hi)") }
        return v
    }

    /// The option's text as given, or nil.
    func value(_ key: String) -> String? { values[key] }

    func string(_ key: String, _ def: String) -> String { values[key] ?? def }

    func double(_ key: String, _ def: Double, min lo: Double = 0, max hi: Double = 1e6) throws(BenchExit) -> Double {
        guard let s = values[key] else { return def }
        guard let v = Double(s), v >= lo, v <= hi else { throw .usage("--\(key) must be a number in \(lo)...\(hi)") }
        return v
    }
}

/// How the bench ends early, thrown up to main.swift: it writes `stderr` as it is, stops every
/// child, and exits with `code`.
struct BenchExit: Error {
    var code: Int32
    var stderr: String

    /// A bad command line: the sentence and the usage, exit 64.
    static func usage(_ message: String) -> BenchExit { BenchExit(code: 64, stderr: "rolemesh-bench: \(message)\n\(usageText)\n") }

    /// A bench that failed: the sentence as `note` writes it, exit 1.
    static func failed(_ message: String) -> BenchExit { BenchExit(code: 1, stderr: "[bench] \(message)\n") }

    /// A failure the bench's own report has said already: exit 1, nothing more.
    static let reported = BenchExit(code: 1, stderr: "")
}

let usageText = """
usage: rolemesh-bench detect   [--nodes 10] [--runs 3]
       rolemesh-bench verify   [--seconds 3]
       rolemesh-bench idle     [--nodes 10] [--seconds 30] [--signals machine|steady]
       rolemesh-bench failover [--nodes 10] [--runs 3] [--loss-minutes 2] [--loss-percent 10]
       rolemesh-bench leave    [--nodes 8] [--runs 5]
       rolemesh-bench tasks    [--runs 30] [--megabytes 50] [--journal 10000]
       rolemesh-bench services [--runs 200] [--megabytes 1000]
       rolemesh-bench scale    [--nodes 100,300,1000] [--seconds 60] [--loss-percent 10]
       rolemesh-bench capture  [--nodes 5] [--seconds 60]
       rolemesh-bench chaos    [--seeds 2000] [--first 1] [--profile fast] | --seed N
"""

func say(_ s: String) {
    FileHandle.standardOutput.write(Data((s + "\n").utf8))
}

/// Progress notes go to stderr so stdout stays the table and the RESULT line.
func note(_ s: String) {
    FileHandle.standardError.write(Data("[bench] \(s)\n".utf8))
}

// MARK: - Statistics

struct Summary {
    var values: [Double]
    var count: Int { values.count }
    var median: Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var min: Double? { values.min() }
    var max: Double? { values.max() }
    var mean: Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }

    var json: JSON {
        .object([("median", .optional(median)), ("min", .optional(min)), ("max", .optional(max)),
                 ("runs", .array(values.map { .double($0) }))])
    }

    /// "0.62 s (0.55–0.71, 3 runs)"
    func text(unit: String = "s", digits: Int = 2) -> String {
        guard let m = median, let lo = min, let hi = max else { return "no data" }
        return "\(fmt(m, digits)) \(unit) (range \(fmt(lo, digits))–\(fmt(hi, digits)), \(count) run\(count == 1 ? "" : "s"))"
    }
}

func fmt(_ v: Double?, _ digits: Int = 2) -> String {
    guard let v, v.isFinite else { return "-" }
    return String(format: "%.\(digits)f", v)
}

func metText(_ ok: Bool?) -> String {
    switch ok {
    case .some(true): return "MET"
    case .some(false): return "NOT MET"
    case .none: return "NO DATA"
    }
}

// MARK: - Output

func table(_ rows: [[String]]) -> String {
    var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = Swift.max(widths[i], c.count) } }
    return rows.map { r in
        r.enumerated().map { i, c in
            i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

/// The machine-readable last line of every subcommand.
func printResult(_ bench: String, _ fields: [(String, JSON)]) {
    let all: [(String, JSON)] = [("bench", .string(bench)), ("date", .string(Clock.rfc3339()))] + fields
    say("RESULT " + JSON.object(all).serialized)
}

/// Where this machine stands, for the record.
func machineDescription() -> String {
    let cpu = readFile("/proc/cpuinfo")?.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "?"
    var u = utsname()
    uname(&u)
    let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    return "cpus=\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) cpu=\"\(cpu)\" kernel=\(release)"
}

/// A whole file via read(2) (works for /proc files, whose size reads as 0).
func readFile(_ path: String, limit: Int = 4 << 20) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65_536)
    while out.count < limit {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}
