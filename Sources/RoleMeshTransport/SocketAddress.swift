import RoleMeshPlatform
import RoleMeshCore

/// Conversions between `WireAddress` (or a Unix-domain socket's path) and the kernel's sockaddr
/// structures, and name lookup.
public enum SocketAddress {
    /// Calls `body` with a sockaddr for the Unix-domain socket at `path` and its length; nil when
    /// the path is too long for one.
    public static func withUnix<T>(path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T? {
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: sa.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: bytes + [0]) }
        return withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
    }

    /// Calls `body` with a sockaddr for `a` and its length.
    public static func with<T>(_ a: WireAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        if a.isIPv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = a.port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: a.ip) }
            return withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = a.port.bigEndian
            if a.ip.count == 4 { withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: a.ip) } }
            return withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }

    public static func from(_ storage: sockaddr_storage) -> WireAddress? {
        var s = storage
        switch Int32(s.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                var addr = p.pointee.sin_addr
                return WireAddress(ip: withUnsafeBytes(of: &addr) { Array($0) }, port: UInt16(bigEndian: p.pointee.sin_port))
            } }
        case AF_INET6:
            return withUnsafePointer(to: &s) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                var addr = p.pointee.sin6_addr
                let ip = withUnsafeBytes(of: &addr) { Array($0) }
                // An IPv4-mapped source on a dual-stack socket is the IPv4 peer it really is.
                if ip[0..<10].allSatisfy({ $0 == 0 }) && ip[10] == 0xff && ip[11] == 0xff {
                    return WireAddress(ip: Array(ip[12..<16]), port: UInt16(bigEndian: p.pointee.sin6_port))
                }
                return WireAddress(ip: ip, port: UInt16(bigEndian: p.pointee.sin6_port))
            } }
        default:
            return nil
        }
    }

    /// "HOST:PORT" with a numeric or DNS host; nil when it cannot be resolved now.
    public static func resolve(_ hostPort: String) -> WireAddress? {
        guard let (host, port) = NodeConfig.splitHostPort(hostPort) else { return nil }
        if let numeric = WireAddress(host: host, port: port) { return numeric }
        var hints = addrinfo()
        hints.ai_socktype = sockDgram
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else { return nil }
        defer { freeaddrinfo(res) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        return from(storage)
    }

    /// The two ends of a connected socket (getsockname, getpeername); nil when it has none now.
    public static func ends(of fd: Int32) -> (local: WireAddress, remote: WireAddress)? {
        func one(_ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) -> WireAddress? {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &len) } }
            return rc == 0 ? from(storage) : nil
        }
        guard let local = one({ getsockname($0, $1, $2) }), let remote = one({ getpeername($0, $1, $2) }) else { return nil }
        return (local, remote)
    }

    /// The local IP the kernel would use to reach `peer` (a connected UDP socket sends nothing).
    public static func localIP(toward peer: WireAddress) -> WireAddress? {
        let fd = socket(peer.isIPv6 ? AF_INET6 : AF_INET, sockDgram, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard with(peer, { connect(fd, $0, $1) }) == 0 else { return nil }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard rc == 0, let local = from(storage), !local.isUnspecified else { return nil }
        return local
    }
}
