#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import RoleMeshCore

/// The TCP side of the agent's address: accepts task connections with a DispatchSource and
/// hands each one, after the handshake, to a blocking worker.
final class TaskListener: @unchecked Sendable {
    let fd: Int32
    private var source: DispatchSourceRead?

    init(bind address: WireAddress) throws(MeshError) {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create the task socket") }
        var one: Int32 = 1
        // TCP only: lets a restarted agent rebind while old connections sit in TIME_WAIT.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if address.isIPv6, address.isUnspecified {
            var off: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
        }
        guard SocketAddress.with(address, { bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
            let err = errno
            Glibc.close(fd)
            throw MeshError(err == EADDRINUSE ? MeshError.other : MeshError.config,
                            "cannot accept task connections on TCP \(address): \(String(cString: strerror(err)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
    }

    func start(queue: DispatchQueue, onConnection: @escaping @Sendable (Int32) -> Void) {
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [fd] in
            for _ in 0..<32 {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { return }
                FD.setBlocking(c)
                var one: Int32 = 1
                setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                onWorkerThread { onConnection(c) }
            }
        }
        s.setCancelHandler { [fd] in Glibc.close(fd) }
        source = s
        s.resume()
    }

    func stop() { source?.cancel(); source = nil }
}
