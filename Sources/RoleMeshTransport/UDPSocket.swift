import RoleMeshPlatform
import RoleMeshCore

/// A non-blocking UDP socket driven by a DispatchSource.
///
/// Confinement: everything here runs on `queue` (the agent's queue), including `onDatagram`.
/// A wakeup reads at most `batchLimit` datagrams, so a flood (each costing a signature check
/// upstream) cannot starve ticks and control requests; the source fires again for the rest.
public final class UDPSocket {
    public let fd: Int32
    public let local: WireAddress
    private var source: DispatchSourceRead?
    private let queue: DispatchQueue
    public static let batchLimit = 64
    private var buffer = [UInt8](repeating: 0, count: 65_536)

    /// Binds `address`. No SO_REUSEADDR: two agents must never share a port unnoticed.
    public init(bind address: WireAddress, queue: DispatchQueue) throws(MeshError) {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, sockDgram, 0)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create a UDP socket: \(String(cString: strerror(errno)))") }
        if address.isIPv6, address.isUnspecified {
            var off: Int32 = 0     // dual-stack on [::]
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        var big: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, socklen_t(MemoryLayout<Int32>.size))
        let rc = SocketAddress.with(address) { bind(fd, $0, $1) }
        if rc != 0 {
            let err = errno
            close(fd)
            if err == EADDRINUSE {
                throw MeshError(MeshError.other, "\(address) is already in use (is another agent running there?)")
            }
            throw MeshError(MeshError.config, "cannot listen on \(address): \(String(cString: strerror(err)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        self.local = address
        self.queue = queue
    }

    public func start(onDatagram: @escaping ([UInt8], WireAddress) -> Void) {
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self] in
            guard let self else { return }
            for _ in 0..<Self.batchLimit {
                var from = sockaddr_storage()
                var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let n = self.buffer.withUnsafeMutableBytes { buf in
                    withUnsafeMutablePointer(to: &from) { p in
                        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(self.fd, buf.baseAddress, buf.count, 0, $0, &len) }
                    }
                }
                if n < 0 { break }          // EAGAIN: drained
                guard let source = SocketAddress.from(from) else { continue }
                onDatagram(Array(self.buffer[0..<n]), source)
            }
        }
        s.setCancelHandler { [fd] in _ = sysClose(fd) }
        source = s
        s.resume()
    }

    public func send(_ bytes: [UInt8], to address: WireAddress) {
        // An IPv4 peer from an IPv6 socket needs the mapped form, and vice versa is impossible.
        var target = address
        if local.isIPv6, !address.isIPv6 { target = WireAddress(ip: [0,0,0,0,0,0,0,0,0,0,0xff,0xff] + address.ip, port: address.port) }
        if !local.isIPv6, address.isIPv6 { return }
        _ = bytes.withUnsafeBytes { buf in
            SocketAddress.with(target) { sendto(fd, buf.baseAddress, buf.count, 0, $0, $1) }
        }
    }

    public func stop() { source?.cancel(); source = nil }
}
