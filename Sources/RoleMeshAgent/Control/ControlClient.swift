import RoleMeshPlatform
import RoleMeshControl
import RoleMeshStorage
import RoleMeshTransport
import RoleMeshTaskChannel

/// The command-line side of the control socket: blocking I/O, one request per connection.
public final class ControlClient {
    public let fd: Int32
    private let dir: NodeDirectory
    private var buffer = [UInt8]()

    /// How long the agent may take to give its first answer. A stopped or stuck agent
    /// (SIGSTOP, a debugger) still accepts connections in the kernel, so without a limit
    /// `status` would wait forever.
    public static let answerTimeout: Double = 5
    /// Requests answered once a file is written (node.toml, overrides) may wait behind a slow
    /// disk: they get longer, still bounded.
    public static let writeAnswerTimeout: Double = 30

    /// Connects to the agent of `dir`; a clear error, exit 69 as for a stuck agent (the contract),
    /// when none is running there. `noAgent` says the rest of the sentence (`leave` must not
    /// suggest starting one).
    public init(dir: NodeDirectory, noAgent: String = "start one with `rolemesh agent`") throws(MeshError) {
        var err: Int32 = 0
        guard let fd = Self.connect(path: dir.socketPath, error: &err) else {
            if err == EACCES || err == EPERM {
                throw MeshError(MeshError.unavailable, "cannot reach the agent for \(dir.root.path): \(String(cString: strerror(err))) (it runs as another user?)")
            }
            throw MeshError(MeshError.unavailable, "no agent is running for \(dir.root.path) (\(noAgent))")
        }
        self.fd = fd
        self.dir = dir
    }

    deinit { sysClose(fd) }

    static func connect(path: String) -> Int32? {
        var err: Int32 = 0
        return connect(path: path, error: &err)
    }

    static func connect(path: String, error: inout Int32) -> Int32? {
        let fd = socket(AF_UNIX, sockStream, 0)
        guard fd >= 0 else { error = errno; return nil }
        guard SocketAddress.withUnix(path: path, { sysConnect(fd, $0, $1) }) == 0 else { error = errno; sysClose(fd); return nil }
        return fd
    }

    static func isAlive(path: String) -> Bool {
        guard let fd = connect(path: path) else { return false }
        sysClose(fd)
        return true
    }

    public func send(_ request: ControlRequest) throws(MeshError) {
        try write(request.plainLine ?? Array(ControlJSON.line(request)))
    }

    public func write(_ bytes: [UInt8]) throws(MeshError) {
        guard FD.writeAll(fd, bytes) else { throw MeshError(MeshError.other, "the agent closed the control connection") }
    }

    public func finishWriting() { sysShutdown(fd, Int32(SHUT_WR)) }

    /// Waits (bounded by `answerTimeout`) until the agent has begun to answer; the clear
    /// failure, exit 69, when it does not. Streams call it once, for their first reply only.
    public func awaitAnswer(within seconds: Double = ControlClient.answerTimeout) throws(MeshError) {
        guard buffer.isEmpty else { return }
        guard FD.waitReadable(fd, until: FD.deadline(in: seconds)) else {
            throw MeshError(MeshError.unavailable,
                            "the agent for \(dir.root.path) did not answer within \(Int(seconds)) s (is it stopped or stuck?)")
        }
    }

    /// Bytes already read past the last line handed out (a stream that follows its first line).
    public func takeBuffered() -> [UInt8] {
        defer { buffer = [] }
        return buffer
    }

    /// The next line, or nil at end of stream.
    public func readLine() -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                guard !buffer.isEmpty else { return nil }
                let line = String(decoding: buffer, as: UTF8.self)
                buffer = []
                return line
            }
            buffer += chunk[0..<n]
        }
    }

    /// Waits (bounded) until the agent closes the connection; false if it did not within `seconds`.
    public func waitForClose(within seconds: Double) -> Bool {
        let deadline = FD.deadline(in: seconds)
        while FD.waitReadable(fd, until: deadline) {
            if readLine() == nil { return true }
        }
        return false
    }

    /// The first answer line, time-limited; a clear error when there is none.
    public func firstLine(within seconds: Double = ControlClient.answerTimeout) throws(MeshError) -> String {
        try awaitAnswer(within: seconds)
        guard let line = readLine() else { throw MeshError(MeshError.other, "the agent gave no answer") }
        return line
    }

    /// One request, its answer line (checked: an `{"error"}` answer becomes a thrown MeshError).
    public static func callLine(_ dir: NodeDirectory, _ request: ControlRequest) throws(MeshError) -> String {
        try ControlClient(dir: dir).answer(request)
    }

    /// Sends `request` on this connection and returns its answer line (checked). A write's answer
    /// waits for the disk: the agent says at once that it has the request, and that first line is
    /// not the answer (`rolemesh revoke` once took it for one, and said a key had moved before it had).
    public func answer(_ request: ControlRequest) throws(MeshError) -> String {
        try send(request)
        var line = try firstLine(within: Self.answerTimeout)
        if request.writesToDisk, ControlJSON.decode(AcceptedReply.self, from: line)?.accepted == true {
            line = try firstLine(within: Self.writeAnswerTimeout)
        }
        try Self.check(line)
        return line
    }

    /// One request, one typed answer.
    public static func call<R: Decodable>(_ dir: NodeDirectory, _ request: ControlRequest, as type: R.Type) throws(MeshError) -> R {
        try decode(type, callLine(dir, request))
    }

    public static func decode<R: Decodable>(_ type: R.Type, _ line: String) throws(MeshError) -> R {
        guard let r = ControlJSON.decode(type, from: line) else { throw MeshError(MeshError.other, "the agent's answer could not be read") }
        return r
    }

    /// Throws the failure an answer line reports, if it is one.
    public static func check(_ line: String) throws(MeshError) {
        // Decoding is a new process's slowest step: only a line that can be a failure is decoded.
        guard line.contains("\"error\"") else { return }
        if let p = ControlJSON.decode(ErrorProbe.self, from: line), let err = p.error {
            throw MeshError(Int32(clamping: p.code ?? 1), err)
        }
    }

    // MARK: Task streams (submit, logs)

    /// The next frame of a task stream, or nil at its end. Blocking: the command waits for
    /// nothing else (its input and Ctrl-C go out through `frameWriter` meanwhile).
    public func receiveFrame() throws(MeshError) -> Frame? {
        guard buffer.isEmpty else { throw MeshError(MeshError.other, "the agent answered with a line, not a stream") }
        guard let h = FD.readExactly(fd, 5) else { return nil }
        let (type, n) = try Frame.checkedPlainHeader(h)
        guard let payload = n == 0 ? [] : FD.readExactly(fd, n) else { return nil }
        return Frame(type, payload)
    }

    /// Sends frames to the agent whole, from any thread (the stdin reader and the Ctrl-C handler).
    public var frameWriter: FrameWriter { FrameWriter(fd: fd) }

    public final class FrameWriter: Sendable {
        let fd: Int32
        private let lock = Locked(())
        init(fd: Int32) { self.fd = fd }
        @discardableResult
        public func send(_ frame: Frame) -> Bool {
            lock.withLock { _ in FD.writeAll(fd, Frame.plainHeader(frame.type, count: frame.payload.count) + frame.payload) }
        }
    }
}
