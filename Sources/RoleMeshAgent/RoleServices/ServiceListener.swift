import RoleMeshPlatform
import RoleMeshCore
import RoleMeshTransport

/// A local TCP listener for one service (`forward` in node.toml, or a running `connect`): each
/// accepted connection is forwarded to the service's current route. Confinement: created, started
/// and stopped on the agent's queue, where its accept handler runs and its counts change.
final class ServiceListener {
    let service: String
    let address: WireAddress
    /// Why it does not listen now (its port is taken), retried by its owner; nil while listening.
    var error: String?
    var connections = 0
    private var acceptor: AcceptSource?

    init(service: String, address: WireAddress) {
        self.service = service; self.address = address
    }

    var listenText: String { address.description }

    /// Binds and listens; false (with `error` set to one sentence) when it cannot.
    func open(queue: DispatchQueue, onAccept: @escaping (Int32) -> Void) -> Bool {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, sockStream, 0)
        guard fd >= 0 else { error = "cannot create a socket"; return false }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard SocketAddress.with(address, { bind(fd, $0, $1) }) == 0, listen(fd, 128) == 0 else {
            let err = errno
            sysClose(fd)
            error = err == EADDRINUSE
                ? "\(listenText) is taken: another program listens there"
                : "cannot listen on \(listenText): \(String(cString: strerror(err)))"
            return false
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        error = nil
        let a = AcceptSource(fd: fd, queue: queue, what: "connections to \(service)")
        a.start { c, _ in
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            onAccept(c)
        }
        acceptor = a
        return true
    }

    var isOpen: Bool { acceptor != nil }

    func stop() { acceptor?.stop(); acceptor = nil }
}
