#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
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

    /// Connections still in their handshake (not yet authenticated) at most; more are closed at once.
    static let preAuthLimit = 32
    private let lock = NSLock()
    private var preAuth = 0
    private var lastCapLog: UInt64 = 0, lastFullLog: UInt64 = 0
    private var backingOff = false

    var preAuthCount: Int { lock.lock(); defer { lock.unlock() }; return preAuth }

    /// `onConnection(fd, authenticated)`: runs on a thread of its own; it calls `authenticated()`
    /// once the handshake is over (either way), which frees the connection's pre-auth place.
    func start(queue: DispatchQueue, onConnection: @escaping @Sendable (Int32, @escaping @Sendable () -> Void) -> Void) {
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self, fd] in
            guard let self else { return }
            for _ in 0..<32 {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    let err = errno
                    if err == EINTR || err == ECONNABORTED { continue }
                    if err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM { self.backOff(queue: queue, err) }
                    return
                }
                self.lock.lock()
                let full = self.preAuth >= Self.preAuthLimit
                if !full { self.preAuth += 1 }
                self.lock.unlock()
                if full {
                    Glibc.close(c)
                    if Self.due(&self.lastCapLog) {
                        Log.warn("\(Self.preAuthLimit) task connections are already in their handshake; closing new ones until they finish")
                    }
                    continue
                }
                FD.setBlocking(c)
                var one: Int32 = 1
                setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                let once = Once()
                onWorkerThread {
                    onConnection(c) { [weak self] in
                        guard once.first(), let self else { return }
                        self.lock.lock(); self.preAuth -= 1; self.lock.unlock()
                    }
                }
            }
        }
        s.setCancelHandler { [fd] in Glibc.close(fd) }
        source = s
        s.resume()
    }

    /// Out of descriptors: the listening socket stays readable, so accepting again at once would
    /// spin. The source pauses for a second instead (on the agent queue, like its handler).
    private func backOff(queue: DispatchQueue, _ err: Int32) {
        guard !backingOff, let s = source else { return }
        backingOff = true
        if Self.due(&lastFullLog) {
            Log.warn("cannot accept task connections: \(String(cString: strerror(err))); pausing for a second")
        }
        s.suspend()
        queue.asyncAfter(deadline: .now() + 1) { [weak self] in
            guard let self, self.backingOff else { return }
            self.backingOff = false
            if let s = self.source { s.resume() }
        }
    }

    /// True at most once per 10 s for the given clock (on the agent queue).
    private static func due(_ last: inout UInt64) -> Bool {
        let now = DispatchTime.now().uptimeNanoseconds
        guard last == 0 || now - last >= 10_000_000_000 else { return false }
        last = now
        return true
    }

    func stop() {
        guard let s = source else { return }
        source = nil
        // A suspended source must be resumed for its cancellation to run.
        if backingOff { backingOff = false; s.cancel(); s.resume() } else { s.cancel() }
    }
}

/// True for the first caller only.
final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    func first() -> Bool { lock.lock(); defer { lock.unlock() }; if done { return false }; done = true; return true }
}
