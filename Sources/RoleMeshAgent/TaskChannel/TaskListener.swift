#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import RoleMeshCore

/// The TCP side of the agent's address: accepts task connections with a DispatchSource on
/// the agent's queue and hands each one to `onConnection`, which runs the handshake as a task.
/// Confinement: created, started and stopped on the agent's queue (its handlers run there).
final class TaskListener {
    let fd: Int32
    private var source: DispatchSourceRead?

    init(bind address: WireAddress) throws(MeshError) {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, sockStream, 0)
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
            sysClose(fd)
            throw MeshError(err == EADDRINUSE ? MeshError.other : MeshError.config,
                            "cannot accept task connections on TCP \(address): \(String(cString: strerror(err)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
    }

    /// Connections still in their handshake (not yet authenticated) at most; more are closed at once.
    static let preAuthLimit = 32
    let gate = PreAuthGate(limit: TaskListener.preAuthLimit)
    private var lastCapLog: UInt64 = 0, lastFullLog: UInt64 = 0
    private var backingOff = false
    private var queue: DispatchQueue?

    /// `onConnection(fd, release)`: the connection's handshake starts; `release()` (idempotent)
    /// frees its pre-auth place once the handshake is over, either way.
    func start(queue: DispatchQueue, onConnection: @escaping (Int32, PreAuthGate.Place) -> Void) {
        self.queue = queue
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self, fd] in
            guard let self else { return }
            for _ in 0..<32 {
                let c = accept(fd, nil, nil)
                if c < 0 {
                    let err = errno
                    if err == EINTR || err == ECONNABORTED { continue }
                    if err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM { self.backOff(err) }
                    return
                }
                guard let place = self.gate.enter() else {
                    sysClose(c)
                    if Self.due(&self.lastCapLog) {
                        Log.warn("\(Self.preAuthLimit) task connections are already in their handshake; closing new ones until they finish")
                    }
                    continue
                }
                var one: Int32 = 1
                setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                onConnection(c, place)
            }
        }
        s.setCancelHandler { [fd] in sysClose(fd) }
        source = s
        s.resume()
    }

    /// Out of descriptors: the listening socket stays readable, so accepting again at once would
    /// spin. The source pauses for a second instead (on the agent queue, like its handler).
    private func backOff(_ err: Int32) {
        guard !backingOff, let s = source, let queue else { return }
        backingOff = true
        if Self.due(&lastFullLog) {
            Log.warn("cannot accept task connections: \(String(cString: strerror(err))); pausing for a second")
        }
        s.suspend()
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + 1)
        t.setEventHandler { [weak self] in
            t.cancel()
            guard let self, self.backingOff else { return }
            self.backingOff = false
            if let s = self.source { s.resume() }
        }
        t.resume()
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

/// Counts connections still in their handshake; thread-safe, as handshakes run as tasks.
final class PreAuthGate: Sendable {
    let limit: Int
    private let count = Locked(0)
    init(limit: Int) { self.limit = limit }

    /// A place, or nil when all are taken.
    func enter() -> Place? {
        count.withLock { n -> Bool in
            guard n < limit else { return false }
            n += 1
            return true
        } ? Place(gate: self) : nil
    }

    /// One connection's place; `release()` frees it the first time only.
    final class Place: Sendable {
        private let gate: PreAuthGate
        private let released = Atomic(false)
        init(gate: PreAuthGate) { self.gate = gate }
        func release() {
            guard released.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
            gate.count.withLock { $0 -= 1 }
        }
    }
}
