#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation

/// The agent's control socket `DIR/agent.sock` (mode 0600: only the node's owner may steer it).
///
/// Protocol: the client writes one JSON object on one line (`{"cmd": "status"}`); the agent
/// answers with JSON lines and closes, except for streams (`watch`, task output) that stay open.
/// An answer `{"error": "...", "code": N}` is a failure with the contract's exit code.
/// Confinement: all callbacks run on the agent's queue.
final class ControlServer: @unchecked Sendable {
    let path: String
    private let queue: DispatchQueue
    private var listenFD: Int32 = -1
    private var source: DispatchSourceRead?
    private var connections: [ObjectIdentifier: ControlConnection] = [:]
    var onRequest: ((JSON, ControlConnection) -> Void)?

    init(path: String, queue: DispatchQueue) {
        self.path = path; self.queue = queue
    }

    func start() throws(MeshError) {
        // A socket file left by a crashed agent is stale if nobody answers on it.
        if FileManager.default.fileExists(atPath: path) {
            if ControlClient.isAlive(path: path) {
                throw MeshError(MeshError.other, "an agent is already running for this directory (\(path))")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create the control socket") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            Glibc.close(fd)
            throw MeshError(MeshError.config, "the directory path is too long for a control socket: \(path)")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let old = umask(0o177)         // created 0600, with no window where others could connect
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(old)
        guard rc == 0, listen(fd, 64) == 0 else {
            let err = String(cString: strerror(errno))
            Glibc.close(fd)
            throw MeshError(MeshError.other, "cannot listen on \(path): \(err)")
        }
        chmod(path, 0o600)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        listenFD = fd
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self] in self?.acceptAll() }
        s.setCancelHandler { Glibc.close(fd) }
        source = s
        s.resume()
    }

    private func acceptAll() {
        for _ in 0..<32 {
            let c = accept(listenFD, nil, nil)
            guard c >= 0 else { return }
            let conn = ControlConnection(fd: c, queue: queue)
            connections[ObjectIdentifier(conn)] = conn
            conn.onLine = { [weak self, weak conn] line in
                guard let self, let conn else { return }
                guard let req = JSON.parse(line), req["cmd"]?.string != nil else {
                    conn.fail(MeshError(MeshError.usage, "the agent could not read the request"))
                    return
                }
                self.onRequest?(req, conn)
            }
            conn.onClose = { [weak self, weak conn] in
                guard let self, let conn else { return }
                self.connections[ObjectIdentifier(conn)] = nil
            }
            conn.start()
        }
    }

    func stop() {
        source?.cancel(); source = nil
        for c in connections.values { c.close() }
        connections = [:]
        unlink(path)
    }
}

/// One client of the control socket.
final class ControlConnection: @unchecked Sendable {
    let fd: Int32
    private let queue: DispatchQueue
    private var source: DispatchSourceRead?
    private var pending = [UInt8]()
    private var gotRequest = false
    private(set) var isClosed = false
    var onLine: ((String) -> Void)?
    var onClose: (() -> Void)?
    /// Extra input after the request line (a task's stdin) goes here.
    var onData: (([UInt8]) -> Void)?
    var onEOF: (() -> Void)?

    init(fd: Int32, queue: DispatchQueue) {
        self.fd = fd; self.queue = queue
        var tv = timeval(tv_sec: 2, tv_usec: 0)   // a client that stops reading is dropped, not waited on
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        #if os(Linux)
        _ = one
        #else
        setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    func start() {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self] in self?.readAvailable() }
        source = s
        s.resume()
    }

    private func readAvailable() {
        var buf = [UInt8](repeating: 0, count: 65_536)
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
            // The client finished writing (a task's stdin ended) or went away (Ctrl-C on watch).
            source?.cancel(); source = nil
            if gotRequest, let onEOF { onEOF() } else { close() }
            return
        }
        guard n > 0 else { return }
        if gotRequest { onData?(Array(buf[0..<n])); return }
        pending += buf[0..<n]
        if let nl = pending.firstIndex(of: 10) {
            let line = String(decoding: pending[..<nl], as: UTF8.self)
            let rest = Array(pending[(nl + 1)...])
            pending = []
            gotRequest = true
            onLine?(line)
            if !rest.isEmpty { onData?(rest) }
        } else if pending.count > Frame.maxFrame {
            fail(MeshError(MeshError.usage, "request too long"))
        }
    }

    /// Writes one JSON line; false (and closes) when the client is gone or stuck.
    /// `patience` bounds how long the agent queue may wait for a full socket: a `watch` that
    /// stopped reading (Ctrl-Z) is dropped rather than allowed to stall heartbeats.
    @discardableResult
    func send(_ json: JSON, patience: Int32 = 2000) -> Bool { sendRaw(Array((json.serialized + "\n").utf8), patience: patience) }

    @discardableResult
    func sendRaw(_ bytes: [UInt8], patience: Int32 = 2000) -> Bool {
        guard !isClosed else { return false }
        var off = 0
        var waited: Int32 = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 { off += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN && waited < patience {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let step = min(50, patience - waited)
                _ = poll(&p, 1, step)
                waited += step
                continue
            }
            close()
            return false
        }
        return true
    }

    func reply(_ json: JSON) { send(json); close() }

    func fail(_ e: MeshError) {
        reply(.object([("error", .string(e.message)), ("code", .int(Int(e.code)))]))
    }

    /// Hands the socket to a blocking worker (task streams): no more Dispatch reads here.
    func takeOver() -> Int32 {
        isClosed = true
        source?.cancel(); source = nil
        FD.setBlocking(fd)
        var tv = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        onClose?()
        return fd
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let source {
            // The descriptor is closed once Dispatch has let go of it, never before.
            source.setCancelHandler { [fd] in _ = Glibc.close(fd) }
            source.cancel()
            self.source = nil
        } else {
            Glibc.close(fd)
        }
        onClose?()
    }
}
