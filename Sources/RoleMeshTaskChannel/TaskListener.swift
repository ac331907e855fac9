import RoleMeshPlatform
import Synchronization
import RoleMeshCore
import RoleMeshTransport

/// The TCP side of the agent's address: accepts task connections (`AcceptSource`, on the agent's
/// queue) and hands each one to the pre-auth gate, which starts its handshake as soon as it has a
/// place (`PreAuthPlaces`: per source IP, with a short queue).
/// Confinement: created, started and stopped on the agent's queue (its handlers run there).
public final class TaskListener {
    public let fd: Int32
    private var acceptor: AcceptSource?

    public init(bind address: WireAddress) throws(MeshError) {
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

    /// Every accepted connection goes to `gate`, which starts its handshake when it has a place.
    public func start(queue: DispatchQueue, gate: PreAuthGate) {
        let a = AcceptSource(fd: fd, queue: queue, what: "task connections")
        a.start { c, peer in
            var one: Int32 = 1
            setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            gate.arrive(c, from: SocketAddress.from(peer) ?? WireAddress(ip: [0, 0, 0, 0], port: 0))
        }
        acceptor = a
    }

    public func stop() {
        acceptor?.stop(); acceptor = nil
    }
}

/// The listener's pre-auth places (`PreAuthPlaces`, the rules) around real connections: thread
/// safe, as handshakes run as tasks and free their places from anywhere. A connection that waits
/// for a place is held unread; one the rules refuse is closed unread and reported.
public final class PreAuthGate: Sendable {
    public typealias Start = @Sendable (Int32, WireAddress, Place) -> Void
    /// Unchecked: Sendable but for the Dispatch timer, which Dispatch makes safe from any thread.
    private struct State: @unchecked Sendable {
        var places: PreAuthPlaces
        var waiting: [Int: (fd: Int32, source: WireAddress)] = [:]
        var nextID = 0
        var timer: DispatchSourceTimer?
    }
    private let state: Locked<State>
    private let limits: (total: Int, perSource: Int, wait: Millis)
    private let start: Start
    private let refused: @Sendable (WireAddress, String) -> Void
    private static let timers = DispatchQueue(label: "rolemesh.preauth")

    /// `start(fd, source, place)`: a connection's handshake begins (it frees `place` when over);
    /// `refused(source, why)`: a connection was closed unread.
    public init(_ places: PreAuthPlaces = PreAuthPlaces(), start: @escaping Start,
         refused: @escaping @Sendable (WireAddress, String) -> Void) {
        state = Locked(State(places: places))
        limits = (places.total, places.perSource, places.wait)
        self.start = start; self.refused = refused
    }

    public func arrive(_ fd: Int32, from source: WireAddress) {
        let now = Clock.now()
        let decision = state.withLock { s -> (PreAuthPlaces.Arrival, Int) in
            let id = s.nextID
            s.nextID += 1
            let d = s.places.arrive(id: id, source: source.ip, now: now)
            if d == .wait { s.waiting[id] = (fd, source); arm(&s) }
            return (d, id)
        }
        switch decision.0 {
        case .start: start(fd, source, Place(gate: self, source: source))
        case .wait: break
        case .refuse:
            sysClose(fd)
            refused(source, "no place for its handshake (\(limits.total) in all, \(limits.perSource) per address, and the queue is full)")
        }
    }

    fileprivate func leave(_ source: WireAddress) {
        let go = state.withLock { s -> [(Int32, WireAddress)] in
            s.places.leave(source: source.ip).compactMap { s.waiting.removeValue(forKey: $0) }
        }
        for (fd, from) in go { start(fd, from, Place(gate: self, source: from)) }
    }

    /// A timer at the earliest end of a wait, while any connection waits.
    private func arm(_ s: inout State) {
        guard s.timer == nil, let at = s.places.nextExpiry else { return }
        let t = DispatchSource.makeTimerSource(queue: Self.timers)
        t.schedule(deadline: .now() + .milliseconds(Int(max(0, at - Clock.now())) + 1))
        t.setEventHandler { [weak self] in self?.expire() }
        s.timer = t
        t.resume()
    }

    private func expire() {
        let gone = state.withLock { s -> [(Int32, WireAddress)] in
            s.timer?.cancel(); s.timer = nil
            let out = s.places.expire(now: Clock.now()).compactMap { s.waiting.removeValue(forKey: $0) }
            arm(&s)
            return out
        }
        for (fd, source) in gone {
            sysClose(fd)
            refused(source, "waited \(limits.wait / 1000) s for a place for its handshake")
        }
    }

    /// One connection's place; `release()` frees it the first time only.
    public final class Place: Sendable {
        private let gate: PreAuthGate
        private let source: WireAddress
        private let released = Atomic(false)
        init(gate: PreAuthGate, source: WireAddress) { self.gate = gate; self.source = source }
        public func release() {
            guard released.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
            gate.leave(source)
        }
    }
}
