import Glibc
import Dispatch

/// A non-blocking descriptor (a TCP or Unix socket, a pipe) for async code: reads and writes
/// wait for readiness from the `Poller`, and no thread is ever parked on it.
///
/// Writes are buffered here and go out as the peer takes them; `write` returns at once while
/// fewer than `highWater` bytes wait, so a slow reader slows its writer down instead of growing
/// memory. `close()` sends what is buffered first (bounded by `lingerSeconds`); `abort()` does not.
/// The descriptor is closed only after the poller stopped watching it.
public final class AsyncFD: Sendable {
    public let fd: Int32
    private let state: Locked<State>
    /// Deadline and linger timers.
    private static let timers = DispatchQueue(label: "rolemesh.fd-timers")

    public static let highWater = 256 * 1024
    public static let chunk = 65_536
    /// A closed connection whose peer stops reading is given up after this long.
    public static let lingerSeconds = 10

    /// Unchecked: all of it is Sendable but the Dispatch timer, which Dispatch makes safe to use from any thread.
    private struct State: @unchecked Sendable {
        /// Read and not yet taken: a slice, so taking its head is O(1) (a frame's header, then its
        /// body, are taken from the front of one read; moving the rest down cost a copy per frame).
        var input: ArraySlice<UInt8> = []
        var inputEnded = false
        var reader: (want: Int, exact: Bool, c: CheckedContinuation<[UInt8]?, Never>)?
        var output: [UInt8] = []
        var sent = 0
        var writeFailed = false
        var writers: [(below: Int, c: CheckedContinuation<Bool, Never>)] = []
        var registration: Poller.Registration?
        /// What the poller was last asked to report (one event, then nothing until asked again).
        var armed = (read: false, write: false)
        var timer: DispatchSourceTimer?
        var closing = false
        var tornDown = false
        var isSocket = true

        var backlog: Int { output.count - sent }
    }

    /// Takes ownership of `fd` (made non-blocking); `input` is data already read from it.
    public init(_ fd: Int32, input: [UInt8] = []) {
        self.fd = fd
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var s = State()
        s.input = input[...]
        state = Locked(s)
        let registration = Poller.shared.register(fd) { [weak self] readable, writable in
            self?.ready(readable: readable, writable: writable)
        }
        state.withLock { s in
            guard let registration else {
                // Not a pipe or socket, or the kernel is out of memory: a descriptor that fails.
                s.inputEnded = true; s.writeFailed = true
                return
            }
            s.registration = registration
        }
    }

    /// The poller's one event: the descriptor is readable and/or writable (or at its end).
    private func ready(readable: Bool, writable: Bool) {
        state.withLock { s in
            guard !s.tornDown else { return }
            s.armed = (false, false)
            if readable { fill(&s) }
            flush(&s, event: writable)
        }
    }

    /// Asks the poller for what is waited on now: data for a reader, room for unsent bytes or a writer.
    private func updateInterest(_ s: inout State) {
        guard !s.tornDown, let registration = s.registration else { return }
        let want = (read: s.reader != nil, write: !s.writeFailed && (s.backlog > 0 || !s.writers.isEmpty))
        guard want != s.armed else { return }
        s.armed = want
        Poller.shared.arm(registration, read: want.read, write: want.write)
    }

    // MARK: Reading

    /// Up to `max` bytes as soon as any are there; nil at end of stream, on an error or once closed.
    public func read(max: Int = AsyncFD.chunk) async -> [UInt8]? {
        await withCheckedContinuation { c in
            state.withLock { s in wait(&s, want: max, exact: false, c) }
        }
    }

    /// Exactly `count` bytes; nil if the stream ends (or fails, or is closed) before that.
    public func readExactly(_ count: Int) async -> [UInt8]? {
        guard count > 0 else { return [] }
        return await withCheckedContinuation { c in
            state.withLock { s in wait(&s, want: count, exact: true, c) }
        }
    }

    private func wait(_ s: inout State, want: Int, exact: Bool, _ c: CheckedContinuation<[UInt8]?, Never>) {
        precondition(s.reader == nil, "one reader at a time")
        s.reader = (want, exact, c)
        fill(&s)
    }

    /// Reads what the descriptor has now (one chunk) and answers the reader if it can.
    private func fill(_ s: inout State) {
        guard let r = s.reader else { return }
        if !s.inputEnded, !s.closing, s.input.count < r.want {
            // Uninitialized: the read fills what counts, and zeroing 64 KiB per read was a cost per frame.
            var n = 0
            let fd = self.fd
            let buf = [UInt8](unsafeUninitializedCapacity: max(Self.chunk, r.want - s.input.count)) { p, count in
                n = sysRead(fd, p.baseAddress, p.count)
                count = max(0, n)
            }
            if n > 0 {
                // The read's own buffer becomes the input when there is none: no copy.
                if s.input.isEmpty { s.input = buf[...] } else { s.input += buf }
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                s.inputEnded = true
            }
        }
        if s.closing || (s.input.count < r.want && (r.exact ? s.inputEnded : (s.input.isEmpty && s.inputEnded))) {
            s.reader = nil
            r.c.resume(returning: nil)
        } else if r.exact ? s.input.count >= r.want : !s.input.isEmpty {
            let n = min(r.want, s.input.count)
            let out = Array(s.input.prefix(n))
            s.input = n == s.input.count ? [] : s.input.dropFirst(n)
            s.reader = nil
            r.c.resume(returning: out)
        }
        updateInterest(&s)
    }

    // MARK: Writing

    /// Queues `bytes`; waits only while more than `highWater` bytes are still unsent.
    /// False once the peer went away, a write failed, or the descriptor is closed.
    @discardableResult
    public func write(_ bytes: [UInt8]) async -> Bool {
        guard enqueue(bytes) else { return false }
        return await drained(below: Self.highWater)
    }

    /// Queues `bytes` without waiting (in order with every other write); false if it cannot.
    public func enqueue(_ bytes: [UInt8]) -> Bool {
        state.withLock { s in
            guard !s.closing, !s.writeFailed else { return false }
            // Nothing queued: the caller's array itself is the queue (shared, not copied).
            if s.output.isEmpty { s.output = bytes } else { s.output += bytes }
            flush(&s)
            return !s.writeFailed
        }
    }

    /// Waits until fewer than `below` bytes are unsent (1: all of them); false on failure.
    public func drained(below: Int = 1) async -> Bool {
        await withCheckedContinuation { c in
            state.withLock { s in
                if s.writeFailed { return c.resume(returning: false) }
                if s.backlog < below { return c.resume(returning: true) }
                s.writers.append((below, c))
                updateInterest(&s)
            }
        }
    }

    /// Waits until the descriptor is writable: a socket whose connect is in progress has
    /// connected (or failed: see SO_ERROR). False on failure or at the deadline.
    public func writable() async -> Bool {
        await withCheckedContinuation { c in
            state.withLock { s in
                if s.writeFailed { return c.resume(returning: false) }
                s.writers.append((0, c))
                updateInterest(&s)
            }
        }
    }

    /// Writes what the descriptor takes now; `event`: it has just reported itself writable.
    private func flush(_ s: inout State, event: Bool = false) {
        while s.sent < s.output.count, !s.writeFailed {
            let n = s.output.withUnsafeBytes { b -> Int in
                let p = b.baseAddress! + s.sent, len = b.count - s.sent
                return s.isSocket ? sysSend(fd, p, len, Int32(MSG_NOSIGNAL)) : sysWrite(fd, p, len)
            }
            if n > 0 { s.sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == ENOTSOCK && s.isSocket { s.isSocket = false; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { break }
            s.writeFailed = true
        }
        if s.sent == s.output.count { s.output = []; s.sent = 0 } else if s.sent >= 1 << 20 { s.output.removeFirst(s.sent); s.sent = 0 }
        var keep: [(below: Int, c: CheckedContinuation<Bool, Never>)] = []
        for w in s.writers {
            if s.writeFailed { w.c.resume(returning: false) }
            else if w.below == 0 ? event : s.backlog < w.below { w.c.resume(returning: true) }
            else { keep.append(w) }
        }
        s.writers = keep
        updateInterest(&s)
        if s.closing, s.backlog == 0 || s.writeFailed { tearDown(&s) }
    }

    /// Open both ways, no read waiting, nothing buffered and nothing arrived: an idle connection
    /// that is still there (one the peer closed or reset polls readable).
    public var isOpenAndQuiet: Bool {
        state.withLock { s in
            guard !s.tornDown, !s.closing, !s.inputEnded, !s.writeFailed, s.input.isEmpty, s.reader == nil else { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            return poll(&p, 1, 0) == 0
        }
    }

    // MARK: Deadlines and the end

    /// Closed or closing: no longer a live connection.
    public var isClosed: Bool { state.withLock { $0.closing || $0.tornDown } }

    /// From now on, everything fails `seconds` from now (the handshake's total limit); nil lifts it.
    public func setDeadline(_ seconds: Double?) {
        state.withLock { s in
            s.timer?.cancel(); s.timer = nil
            guard let seconds, !s.tornDown else { return }
            let t = DispatchSource.makeTimerSource(queue: Self.timers)
            t.schedule(deadline: .now() + seconds)
            t.setEventHandler { self.abort() }
            s.timer = t
            t.resume()
        }
    }

    /// Sends what is buffered (within `lingerSeconds`), then closes. Readers get nil at once.
    public func close() {
        state.withLock { s in
            guard !s.closing else { return }
            s.closing = true
            if let r = s.reader { s.reader = nil; r.c.resume(returning: nil) }
            if s.backlog == 0 || s.writeFailed { return tearDown(&s) }
            s.timer?.cancel()
            let t = DispatchSource.makeTimerSource(queue: Self.timers)
            t.schedule(deadline: .now() + .seconds(Self.lingerSeconds))
            // Strong on purpose: the owner usually lets go right after close(), and deinit would
            // then drop the unsent tail (the end of a task's output, a `logs` stream's last frames).
            // The timer keeps the object until the tail is sent or the linger ends; tearDown
            // cancels the timer, which releases it.
            t.setEventHandler { self.abort() }
            s.timer = t
            t.resume()
        }
    }

    /// Ends the stream at once for both sides: pending reads and writes fail, unsent bytes go.
    public func abort() {
        state.withLock { s in
            s.closing = true
            s.writeFailed = true
            if let r = s.reader { s.reader = nil; r.c.resume(returning: nil) }
            tearDown(&s)
        }
    }

    private func tearDown(_ s: inout State) {
        guard !s.tornDown else { return }
        s.tornDown = true
        for w in s.writers { w.c.resume(returning: false) }
        s.writers = []
        s.output = []; s.sent = 0
        s.timer?.cancel(); s.timer = nil
        _ = sysShutdown(fd, Int32(SHUT_RDWR))
        // Unwatched first: an event still on its way finds no registration (and this lock says torn down).
        if let registration = s.registration { Poller.shared.remove(registration) }
        s.registration = nil
        _ = sysClose(fd)
    }

    deinit {
        // Only reached when nobody holds the object: the poller's handler holds it weakly.
        state.withLock { s in if !s.tornDown { s.closing = true; tearDown(&s) } }
    }
}
