#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import RoleMeshCore

/// The clocks the shell injects into the core.
public enum Clock {
    /// Milliseconds on a clock that keeps counting while the machine sleeps (Linux
    /// CLOCK_BOOTTIME), so a closed laptop lid shows up as a gap between ticks.
    public static func now() -> Millis {
        var ts = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_BOOTTIME, &ts)
        #else
        clock_gettime(CLOCK_MONOTONIC, &ts)
        #endif
        return Millis(ts.tv_sec) * 1000 + Millis(ts.tv_nsec) / 1_000_000
    }

    /// Wall-clock time as RFC 3339, for what people read (events, task times).
    public static func rfc3339(_ date: Date = Date()) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }
}

/// Log lines on stderr: time, level, message.
public enum Log {
    nonisolated(unsafe) public static var verbose = false
    public static func info(_ s: String) { write("info", s) }
    public static func warn(_ s: String) { write("warn", s) }
    public static func debug(_ s: String) { if verbose { write("debug", s) } }
    static func write(_ level: String, _ s: String) {
        let line = "\(Clock.rfc3339()) \(level) \(s)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
