import Foundation
import Glibc

/// A bare UDP socket for tests: capture what an agent sends, send it anything.
final class UDPProbe {
    let fd: Int32

    init(host: String, port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var sa = UDPProbe.sockaddrIn(host, port)
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var tv = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
    deinit { close(fd) }

    static func sockaddrIn(_ host: String, _ port: UInt16) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sa.sin_addr)
        return sa
    }

    /// Datagrams received within `seconds` (bounded count).
    func receive(for seconds: Double, max: Int = 100) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(seconds)
        var buf = [UInt8](repeating: 0, count: 65_536)
        while Date() < deadline, out.count < max {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { out.append(Array(buf[0..<n])) }
        }
        return out
    }

    func send(_ bytes: [UInt8], to host: String, port: UInt16) {
        var sa = UDPProbe.sockaddrIn(host, port)
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }
}
