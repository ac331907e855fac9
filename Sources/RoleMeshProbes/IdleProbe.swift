import RoleMeshPlatform
import RoleMeshCore

/// `signals.idle` / `idle_s` (README, "Background work"): the device is idle when nobody uses it
/// and little else runs. On Linux:
/// - busy: the CPU time of everything but niced processes, over the last read, is 0.3 of the
///   machine or more. Background runs run at nice 19, so their time counts as `nice` in
///   /proc/stat and never makes the node look busy.
/// - with a seat (a desktop, a laptop): logind's IdleHint / IdleSinceHint of the active seat
///   sessions (`loginctl`), so no input for a while is required too.
/// `idle_s` is how long both have held. Reads files and runs `loginctl`: call it off the agent queue.
///
/// On macOS (written and unit-tested on Linux against captured output; never run on a Mac): the
/// user is idle when there has been no keyboard or mouse input for `macInputIdle` (`HIDIdleTime`
/// from `ioreg -c IOHIDSystem`) and nothing holds a `PreventUserIdleDisplaySleep` assertion
/// (`pmset -g assertions`: a movie playing, a presentation); `idle_s` is the input idle time.
/// The CPU share is not read there (no /proc/stat).
public final class IdleProbe: Sendable {
    private let root: String
    private let state = Locked(State())

    private struct State {
        var lastCPU: CPUTimes?
        /// Since when (ms, `Clock.now()`) the CPU has been quiet, while it is.
        var quietSince: Millis?
    }

    public struct CPUTimes: Equatable, Sendable {
        public var busy: UInt64      // user + system + irq + softirq + steal: not nice, not idle
        public var total: UInt64
        public init(busy: UInt64, total: UInt64) { self.busy = busy; self.total = total }
    }

    public init(root: String = "/") { self.root = root.hasSuffix("/") ? root : root + "/" }

    /// Busy below this share of the whole machine (all cores) is quiet.
    public static let quietShare = 0.3

    public func read(now: Millis = Clock.now(), wallSeconds: Double = Date().timeIntervalSince1970) -> (idle: Bool?, seconds: Int?) {
        return linuxRead(now: now, wallSeconds: wallSeconds)
    }

    private func linuxRead(now: Millis, wallSeconds: Double) -> (idle: Bool?, seconds: Int?) {
        let cpu = FD.readText(root + "proc/stat").flatMap(Self.cpuTimes)
        let quietFor: Int? = state.withLock { s in
            defer { s.lastCPU = cpu }
            guard let cpu, let last = s.lastCPU, cpu.total > last.total else { s.quietSince = nil; return nil }
            let share = Double(cpu.busy &- last.busy) / Double(cpu.total - last.total)
            if share >= Self.quietShare { s.quietSince = nil; return -1 }
            if s.quietSince == nil { s.quietSince = now }
            return Int((now - s.quietSince!) / 1000)
        }
        guard let quietFor else { return (nil, nil) }
        var idle = quietFor >= 0, seconds = max(quietFor, 0)
        if let user = userIdle(wallSeconds: wallSeconds) {
            idle = idle && user.idle
            seconds = min(seconds, user.seconds)
        }
        return (idle, idle ? seconds : 0)
    }

    /// The first `cpu` line of /proc/stat.
    public static func cpuTimes(_ stat: String) -> CPUTimes? {
        // The total is the first line; the rest (one line per CPU, a long `intr` line) is not split.
        let first = stat.prefix { $0 != "\n" }
        guard let line = first.hasPrefix("cpu ") ? first : stat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") })
        else { return nil }
        let v = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard v.count >= 8 else { return nil }
        // user nice system idle iowait irq softirq steal
        return CPUTimes(busy: v[0] + v[2] + v[5] + v[6] + v[7], total: v[0..<8].reduce(0, +))
    }

    // MARK: - macOS

    /// No input for this long counts as the user being away (logind's IdleHint plays this part on Linux).
    public static let macInputIdle = 60

    /// The decision on macOS, from the two readings (nil: not read).
    public static func macIdle(inputIdleSeconds: Int?, displaySleepPrevented: Bool?) -> (idle: Bool?, seconds: Int?) {
        guard let input = inputIdleSeconds else { return (nil, nil) }
        // Watching a movie gives no input, yet the machine is in use: the player's assertion says so.
        if displaySleepPrevented == true { return (false, 0) }
        return input >= macInputIdle ? (true, input) : (false, 0)
    }

    /// `ioreg -c IOHIDSystem`: the `"HIDIdleTime" = N` property, nanoseconds since the last input, as seconds.
    public static func hidIdleSeconds(_ ioreg: String) -> Int? {
        for line in ioreg.split(separator: "\n") where line.contains("\"HIDIdleTime\"") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let value = line[line.index(after: eq)...].trimmed
            if let ns = UInt64(value) { return Int(ns / 1_000_000_000) }
        }
        return nil
    }

    /// `pmset -g assertions`: whether the system-wide `PreventUserIdleDisplaySleep` count is above 0;
    /// nil when the output has no such line.
    public static func displaySleepPrevented(_ pmset: String) -> Bool? {
        var systemWide = false
        for raw in pmset.split(separator: "\n") {
            let line = raw.trimmed
            if line.hasPrefix("Assertion status system-wide") { systemWide = true; continue }
            if line.hasPrefix("Listed by owning process") || line.hasPrefix("Kernel Assertions") { systemWide = false; continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if systemWide, words.count == 2, words[0] == "PreventUserIdleDisplaySleep", let n = Int(words[1]) { return n > 0 }
        }
        return nil
    }

    // MARK: - logind

    /// Nil where nobody can sit at this machine (no logind seats: a server, a container).
    private func userIdle(wallSeconds: Double) -> (idle: Bool, seconds: Int)? {
        let seats = (try? FileManager.default.contentsOfDirectory(atPath: root + "run/systemd/seats")) ?? []
        guard !seats.isEmpty, root == "/" else { return nil }
        guard let list = Self.run(Self.loginctl, ["list-sessions", "--no-legend"]) else { return nil }
        let ids = list.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
        guard !ids.isEmpty, let shown = Self.run(Self.loginctl, ["show-session"] + ids + ["-p", "Seat", "-p", "Active", "-p", "IdleHint", "-p", "IdleSinceHint"])
        else { return nil }
        return Self.seatIdle(shown, nowMicros: UInt64(wallSeconds * 1_000_000))
    }

    /// `loginctl show-session A B -p ...`: blocks of `Key=value` lines, one per session. The
    /// active sessions on a seat decide: idle if all are, for as long as the most recent went idle.
    public static func seatIdle(_ text: String, nowMicros: UInt64) -> (idle: Bool, seconds: Int)? {
        var result: (idle: Bool, seconds: Int)?
        for block in text.components(separatedBy: "\n\n") {
            var kv: [String: String] = [:]
            for line in block.split(separator: "\n") {
                let p = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if p.count == 2 { kv[String(p[0])] = String(p[1]) }
            }
            guard let seat = kv["Seat"], !seat.isEmpty, kv["Active"] == "yes" else { continue }
            let idle = kv["IdleHint"] == "yes"
            let since = kv["IdleSinceHint"].flatMap(UInt64.init) ?? nowMicros
            let seconds = idle ? Int((nowMicros &- min(since, nowMicros)) / 1_000_000) : 0
            if let r = result { result = (r.idle && idle, min(r.seconds, seconds)) } else { result = (idle, seconds) }
        }
        return result
    }

    public static let loginctl = "/usr/bin/loginctl"

    /// `TOOL ARGS` (loginctl; ioreg and pmset on macOS), at most 2 s; nil if it is missing, fails or hangs.
    private static func run(_ tool: String, _ args: [String]) -> String? {
        let r = Spawn.capture([tool] + args, keep: 1, quiet: true, within: 2)
        return r.status == 0 ? r.output : nil
    }
}
