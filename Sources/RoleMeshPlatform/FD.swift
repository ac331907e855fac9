import Glibc
import Dispatch

/// Blocking I/O on a file descriptor: the file writers and the command line.
public enum FD {
    /// The one "write every byte" loop (sockets, pipes, files): false on an error or a peer that
    /// went away. Sockets get MSG_NOSIGNAL, so a closed peer is an error here, never SIGPIPE.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        var socket = true
        while off < bytes.count {
            let n = socket ? sysSend(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
                           : sysWrite(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == ENOTSOCK && socket { socket = false; continue }   // a pipe or a file
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeAll(fd, $0) }
    }

    /// A monotonic deadline `seconds` from now (nanoseconds of `DispatchTime`).
    public static func deadline(in seconds: Double) -> UInt64 {
        DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1_000_000_000)
    }

    /// Waits (poll) until `fd` is readable or `deadline` passes; false on timeout or error.
    public static func waitReadable(_ fd: Int32, until deadline: UInt64) -> Bool {
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min((deadline - now + 999_999) / 1_000_000, 60_000))
            let r = poll(&p, 1, ms)
            if r < 0 && errno == EINTR { continue }
            if r > 0 { return true }
            if r < 0 { return false }
        }
    }

    /// Exactly `count` bytes, or nil at end of stream / error / when `deadline` (see
    /// `deadline(in:)`) passes: a total limit, however slowly the bytes trickle in.
    public static func readExactly(_ fd: Int32, _ count: Int, deadline: UInt64? = nil) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var off = 0
        while off < count {
            if let deadline, !waitReadable(fd, until: deadline) { return nil }
            let n = out.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress! + off, count - off) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            off += n
        }
        return out
    }

    /// A small file's text (procfs, sysfs: a few kB at most), up to `limit` bytes, with plain
    /// read(2) calls: the probes read dozens of these a second across a mesh of agents, and
    /// Foundation's `String(contentsOfFile:)` cost several times more. Nil if it cannot be read.
    public static func readText(_ path: String, limit: Int = 65_536) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = sysClose(fd) }
        var out = [UInt8](repeating: 0, count: 4096)
        var off = 0
        while off < limit {
            if off == out.count { out += [UInt8](repeating: 0, count: min(out.count, limit - off)) }
            let n = out.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { break }
            off += n
        }
        return String(decoding: out[0..<off], as: UTF8.self)
    }
}
