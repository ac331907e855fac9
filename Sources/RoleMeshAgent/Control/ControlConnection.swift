import RoleMeshPlatform
import RoleMeshControl
import RoleMeshTaskChannel

/// One client of the control socket. Never blocks the agent queue, which also ticks the
/// failure detector: writes go to a per-connection buffer that a write source drains as the
/// client reads. A client that lets `backlogLimit` bytes pile up (a `watch` behind Ctrl-Z) is
/// dropped. Confinement: created by the agent and driven by sources on its queue; never shared.
final class ControlConnection {
    let fd: Int32
    private let queue: DispatchQueue
    private var readSource = SourceSwitch()
    private var writeSource = SourceSwitch()
    private var pending = [UInt8]()
    private var output = [UInt8]()
    private var sent = 0                // bytes of `output` already written
    private var closeWhenFlushed = false
    private var gotRequest = false
    /// Bytes read after the request line (a task's first input), for whoever takes the socket over.
    private var leftover = [UInt8]()
    private var flushTimer: DispatchSourceTimer?
    /// Sources being cancelled: the descriptor is closed (or handed on) only once all are gone.
    private let cancelling = DispatchGroup()
    private(set) var isClosed = false
    var onLine: ((String) -> Void)?
    var onClose: (() -> Void)?

    /// Unsent bytes a client may leave behind before it is dropped. A single reply is always
    /// taken whole (the journal can be large); a stream line is refused past this.
    static let backlogLimit = 4 << 20
    /// A finished reply the client has not read by then is abandoned.
    static let flushTimeout: Double = 30

    init(fd: Int32, queue: DispatchQueue) {
        self.fd = fd; self.queue = queue
    }

    func start() {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        readSource.set(true) {
            let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            s.setEventHandler { [weak self] in self?.readAvailable() }
            return s
        }
    }

    private func readAvailable() {
        var buf = [UInt8](repeating: 0, count: 65_536)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
            // The client finished writing (a task's stdin ended) or went away (Ctrl-C on watch).
            readSource.cancel(leaving: cancelling)
            if !closeWhenFlushed || n < 0 { close() }
            return
        }
        guard n > 0 else { return }
        if gotRequest { return }     // nothing more is read until the answer (or a takeover)
        pending += buf[0..<n]
        if let nl = pending.firstIndex(of: 10) {
            let line = String(decoding: pending[..<nl], as: UTF8.self)
            let rest = Array(pending[(nl + 1)...])
            pending = []
            gotRequest = true
            leftover = rest
            onLine?(line)
        } else if pending.count > Frame.maxFrame {
            fail(MeshError(MeshError.usage, "request too long"))
        }
    }

    /// Queues one JSON line; false (and closes) when the client is gone or has stopped reading.
    @discardableResult
    func send<T: Encodable>(_ value: T) -> Bool { sendRaw(Array(ControlJSON.line(value))) }

    /// Queues bytes without waiting: written now as far as the socket takes them, the rest
    /// when it drains.
    @discardableResult
    func sendRaw(_ bytes: [UInt8]) -> Bool {
        guard !isClosed else { return false }
        if output.count - sent >= Self.backlogLimit {
            Log.info("a control client stopped reading (\(output.count - sent) bytes unsent); dropping it")
            close()
            return false
        }
        if sent >= 1 << 20 { output.removeFirst(sent); sent = 0 }   // a reader that never quite catches up
        output += bytes
        return flush()
    }

    /// Writes what the socket takes now; arms the write source for the rest.
    @discardableResult
    private func flush() -> Bool {
        guard !isClosed else { return false }
        while sent < output.count {
            let n = output.withUnsafeBytes { sysSend(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { armWrites(true); return true }
            close()
            return false
        }
        output = []; sent = 0
        armWrites(false)
        if closeWhenFlushed { close() }
        return true
    }

    private func armWrites(_ on: Bool) {
        writeSource.set(on) {
            let s = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
            s.setEventHandler { [weak self] in self?.flush() }
            return s
        }
    }

    /// One answer, then the connection closes once the client has read it (bounded).
    func reply<T: Encodable>(_ value: T) { replyRaw(Array(ControlJSON.line(value))) }

    func replyRaw(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        closeWhenFlushed = true
        output += bytes          // one reply is taken whole, whatever its size
        guard flush(), !isClosed else { return }
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + Self.flushTimeout)
        t.setEventHandler { [weak self] in self?.close() }
        flushTimer = t
        t.resume()
    }

    func fail(_ e: MeshError) { reply(ErrorReply(error: e.message, code: Int(e.code))) }

    /// Hands the socket to a task stream (submit, logs): no more requests here. `then` gets it
    /// as frames once Dispatch has let go of this connection's sources (on the agent's queue).
    func takeOver(then: @escaping (PlainFrames) -> Void) {
        guard !isClosed else { return }
        isClosed = true
        let fd = self.fd, rest = leftover
        readSource.cancel(leaving: cancelling)
        writeSource.cancel(leaving: cancelling)
        onClose?()
        cancelling.notify(queue: queue) { then(PlainFrames(AsyncFD(fd, input: rest))) }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        output = []; sent = 0
        // The descriptor is closed once Dispatch has let go of it (both sources), never before.
        let fd = self.fd
        flushTimer?.cancel(); flushTimer = nil
        readSource.cancel(leaving: cancelling)
        writeSource.cancel(leaving: cancelling)
        cancelling.notify(queue: queue) { _ = sysClose(fd) }
        onClose?()
    }
}
