import Glibc

/// Gives back the pages of code and constants the agent touched only while starting.
///
/// An idle agent's own memory is about 2 MiB (heap, stacks); most of its RSS (17 of 19.5 MiB on
/// `lan` at N = 10) is clean pages of libswiftCore, FoundationEssentials, the binary and libc that
/// argument parsing, config loading and the first sync faulted in, and that an idle agent never
/// reads again (issue 9: ≤ 18 MiB). `madvise(MADV_DONTNEED)` unmaps them from this process; they
/// stay in the page cache, and a page used again faults back in from there. Only read-only,
/// private file mappings that hold no private (copied-on-write) page qualify: dropping a
/// relocated page would revert it to the file's bytes, so any mapping with one is left alone.
public enum ResidentPages {
    public struct Mapping: Equatable, Sendable {
        public var start: UInt
        public var end: UInt
        /// Resident kB, from smaps.
        public var rssKB: Int
        public init(start: UInt, end: UInt, rssKB: Int) { self.start = start; self.end = end; self.rssKB = rssKB }
    }

    /// The mappings of `smaps` (the text of /proc/PID/smaps) that may be dropped: file-backed,
    /// private, not writable, not locked, with resident pages and none of them private or anonymous.
    public static func droppable(smaps: String) -> [Mapping] {
        var out: [Mapping] = []
        var current: Mapping?
        var eligible = false
        // A kernel (or a /proc emulation) that does not say how much of a mapping is anonymous
        // gives no proof that it holds no relocated page: nothing of it is dropped.
        var anonymousSaid = false
        func finish() {
            if let m = current, eligible, anonymousSaid, m.rssKB > 0 { out.append(m) }
            current = nil
        }
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if !first.hasSuffix(":") {
                // A mapping's header: "start-end perms offset dev inode [path]".
                finish()
                let range = first.split(separator: "-")
                guard fields.count >= 5, range.count == 2,
                      let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16),
                      let inode = UInt(fields[4]) else { continue }
                let perms = Array(fields[1].utf8)
                eligible = inode != 0 && perms.count == 4 && perms[1] != UInt8(ascii: "w") && perms[3] == UInt8(ascii: "p")
                current = Mapping(start: start, end: end, rssKB: 0)
                anonymousSaid = false
                continue
            }
            guard current != nil, fields.count >= 2 else { continue }
            switch first {
            case "Rss:": current!.rssKB = Int(fields[1]) ?? 0
            case "Anonymous:", "Private_Dirty:", "Shared_Dirty:", "Swap:":
                if first == "Anonymous:" { anonymousSaid = true }
                if fields[1] != "0" { eligible = false }
            case "VmFlags:":
                if fields.dropFirst().contains("lo") { eligible = false }
            default: break
            }
        }
        finish()
        return out
    }

    /// Drops the clean file pages of this process (see the type's comment); returns the kB that
    /// were resident in the mappings dropped.
    @discardableResult
    public static func release() -> Int {
        guard let smaps = FD.readText("/proc/self/smaps", limit: 4 << 20) else { return 0 }
        var released = 0
        for m in droppable(smaps: smaps) {
            guard let p = UnsafeMutableRawPointer(bitPattern: m.start) else { continue }
            if madvise(p, Int(m.end - m.start), MADV_DONTNEED) == 0 { released += m.rssKB }
        }
        return released
    }
}
