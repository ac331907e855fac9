import Glibc
import Dispatch
import FoundationEssentials
import Synchronization

/// The clocks the shell injects into the core.
public enum Clock {
    /// Milliseconds on a clock that keeps counting while the machine sleeps (Linux
    /// CLOCK_BOOTTIME), so a closed laptop lid shows up as a gap between ticks.
    /// The core's `Millis` (an Int64).
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Wall-clock time as RFC 3339 in UTC with milliseconds, for what people read (events,
    /// task times). Formatted by hand: Foundation's formatter pulls in ICU, megabytes of RSS.
    public static func rfc3339(_ date: Date = Date()) -> String {
        let t = date.timeIntervalSince1970
        var secs = time_t(t.rounded(.down))
        let ms = Int((t - Double(secs)) * 1000)
        var tm = tm()
        gmtime_r(&secs, &tm)
        func pad(_ v: Int32, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(Int32(ms), 3))Z"
    }
}
