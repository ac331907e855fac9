import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A passive capture of UDP on loopback (an AF_PACKET socket, as tcpdump uses): the payloads of
/// every datagram to or from `port` on the given hosts, read on a thread of its own until `stop`.
/// Needs CAP_NET_RAW; `init` returns nil without it.
final class LoopbackCapture: @unchecked Sendable {
    private let fd: Int32
    private let lock = NSLock()
    private var payloads: [[UInt8]] = []
    private var running = true
    private let done = DispatchSemaphore(value: 0)

    init?(port: UInt16, hosts: Set<String>) {
        fd = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(UInt16(0x0003).bigEndian))    // ETH_P_ALL
        guard fd >= 0 else { return nil }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ips = Set(hosts.map { $0.split(separator: ".").compactMap { UInt8($0) } })
        Thread.detachNewThread { [self] in
            var buf = [UInt8](repeating: 0, count: 65_536)
            while lock.withLock({ running }) {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n >= 28, buf[0] >> 4 == 4, buf[9] == 17 else { continue }          // IPv4, UDP
                let ihl = Int(buf[0] & 0x0f) * 4
                guard n >= ihl + 8 else { continue }
                let src = Array(buf[12..<16]), dst = Array(buf[16..<20])
                let sport = UInt16(buf[ihl]) << 8 | UInt16(buf[ihl + 1]), dport = UInt16(buf[ihl + 2]) << 8 | UInt16(buf[ihl + 3])
                guard sport == port || dport == port, ips.contains(src) || ips.contains(dst) else { continue }
                let payload = Array(buf[(ihl + 8)..<n])
                lock.withLock { if payloads.count < 200_000 { payloads.append(payload) } }
            }
            done.signal()
        }
    }

    /// Stops reading and returns what was captured.
    func stop() -> [[UInt8]] {
        lock.withLock { running = false }
        done.wait()
        close(fd)
        return lock.withLock { payloads }
    }
}
