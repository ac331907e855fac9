import Glibc
import CLinux
import Dispatch
import FoundationEssentials

/// Readiness of short-lived descriptors (task pipes, task and control connections, pidfds): one
/// thread in `epoll_wait`, each registration named by a number that is never reused.
///
/// Why not Dispatch read and write sources, as for the long-lived UDP and listening sockets:
/// libdispatch's epoll backend keeps a pointer to its per-descriptor note in each epoll event, and
/// when sources on many short-lived descriptors are armed, disarmed and cancelled at a high rate, an
/// event batch can still point at a note already freed (swift-corelibs-libdispatch#949, open;
/// swift-subprocess#47 left Dispatch for its own epoll for the same crash). Agents built with
/// ThreadSanitizer died of it in `_dispatch_event_loop_drain` within a few tasks (docs/tsan.md).
/// Here an event carries only its registration's number, looked up under a lock when it is
/// delivered: an event for a registration already removed finds nothing and is dropped.
///
/// Registrations are one-shot (`EPOLLONESHOT`): `arm` asks for one readiness event, after which
/// the registration stays quiet until armed again, so a handler never races a second copy of itself.
public final class Poller: Sendable {
    public static let shared = Poller()

    /// One descriptor's registration. `handler` runs on the poller's thread and must not block:
    /// its arguments say whether the descriptor is readable (or at its end) and writable (or failed).
    public final class Registration: Sendable {
        let token: UInt64
        let fd: Int32
        init(token: UInt64, fd: Int32) { self.token = token; self.fd = fd }
    }
    public typealias Handler = @Sendable (_ readable: Bool, _ writable: Bool) -> Void

    private struct Table {
        var next: UInt64 = 1
        var handlers: [UInt64: Handler] = [:]
    }
    private let table = Locked(Table())

    private let epfd: Int32

    private init() {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epfd >= 0, "epoll_create1 failed: \(String(cString: strerror(errno)))")
        // One event-loop thread for the whole process, like libdispatch's own manager thread.
        OwnThread.start(name: "rolemesh.poller") { [self] in run() }
    }

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, Int32($0.count), -1) }
            if n < 0 { continue }    // EINTR; nothing else can fail on a valid epoll descriptor
            for e in events[0..<Int(n)] {
                let token = e.data.u64
                guard let handler = table.withLock({ $0.handlers[token] }) else { continue }
                let bits = e.events
                let hangup = EPOLLHUP.rawValue | EPOLLERR.rawValue
                handler(bits & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue | hangup) != 0,
                        bits & (EPOLLOUT.rawValue | hangup) != 0)
            }
        }
    }

    /// Starts watching `fd` (a pipe or socket, not a regular file), quiet until armed. Nil when the
    /// kernel refuses it (a regular file, or out of memory): the caller treats that as a failed descriptor.
    public func register(_ fd: Int32, handler: @escaping Handler) -> Registration? {
        let token = newToken(handler)
        var ev = epoll_event(events: EPOLLONESHOT.rawValue, data: epoll_data_t(u64: token))
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 else {
            _ = table.withLock { $0.handlers.removeValue(forKey: token) }
            return nil
        }
        return Registration(token: token, fd: fd)
    }

    /// Asks for one event when `fd` is readable (`read`) or writable (`write`); neither: quiet
    /// (a hang-up may still be reported once).
    public func arm(_ r: Registration, read: Bool, write: Bool) {
        var bits = EPOLLONESHOT.rawValue | EPOLLRDHUP.rawValue
        if read { bits |= EPOLLIN.rawValue }
        if write { bits |= EPOLLOUT.rawValue }
        var ev = epoll_event(events: bits, data: epoll_data_t(u64: r.token))
        _ = epoll_ctl(epfd, EPOLL_CTL_MOD, r.fd, &ev)
    }

    /// Stops watching: no event is delivered after this returns (one being delivered right now may
    /// still finish). Call before closing the descriptor.
    public func remove(_ r: Registration) {
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, r.fd, nil)
        _ = table.withLock { $0.handlers.removeValue(forKey: r.token) }
    }

    /// A registration number never used before, with its handler.
    private func newToken(_ handler: @escaping Handler) -> UInt64 {
        table.withLock { t -> UInt64 in
            let token = t.next
            t.next += 1
            t.handlers[token] = handler
            return token
        }
    }

    /// Waits until `fd` is readable once (a pidfd whose process ended), then stops watching it.
    public func readable(_ fd: Int32) async {
        let fired = Locked(false)
        let reg = Locked<Registration?>(nil)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let r = register(fd) { [self] readable, _ in
                if readable {
                    if fired.withLock({ f in defer { f = true }; return !f }) { c.resume() }
                } else if let r = reg.withLock({ $0 }) {
                    arm(r, read: true, write: false)      // woken for something else: wait on
                }
            }
            guard let r else { return c.resume() }
            reg.withLock { $0 = r }
            arm(r, read: true, write: false)
        }
        if let r = reg.withLock({ $0 }) { remove(r) }
    }
}
