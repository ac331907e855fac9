import RoleMeshPlatform
import RoleMeshControl
import RoleMeshTransport

/// The agent's control socket `DIR/agent.sock` (mode 0600: only the node's owner may steer it).
///
/// Protocol: the client writes one `ControlRequest` as a JSON line (`{"cmd": "status"}`); the
/// agent answers with JSON lines and closes, except for streams (`watch`, task output) that stay
/// open. An answer `{"error": "...", "code": N}` is a failure with the contract's exit code.
/// Confinement: created by the agent; all callbacks run on the agent's queue.
final class ControlServer {
    let path: String
    private let queue: DispatchQueue
    private var acceptor: AcceptSource?
    private var connections: [ObjectIdentifier: ControlConnection] = [:]
    var onRequest: ((ControlRequest, ControlConnection) -> Void)?

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
        let fd = socket(AF_UNIX, sockStream, 0)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create the control socket") }
        let old = umask(0o177)         // created 0600, with no window where others could connect
        let bound = SocketAddress.withUnix(path: path) { bind(fd, $0, $1) }
        umask(old)
        guard let rc = bound else {
            sysClose(fd)
            throw MeshError(MeshError.config, "the directory path is too long for a control socket: \(path)")
        }
        guard rc == 0, listen(fd, 64) == 0 else {
            let err = String(cString: strerror(errno))
            sysClose(fd)
            throw MeshError(MeshError.other, "cannot listen on \(path): \(err)")
        }
        chmod(path, 0o600)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        // Out of descriptors, accepting pauses for a second instead of spinning (issue 24: this loop
        // once burned 17 s of CPU in 22 s).
        let a = AcceptSource(fd: fd, queue: queue, what: "control connections")
        a.start { [weak self] c, _ in self?.accepted(c) }
        acceptor = a
    }

    private func accepted(_ c: Int32) {
        let conn = ControlConnection(fd: c, queue: queue)
        connections[ObjectIdentifier(conn)] = conn
        conn.onLine = { [weak self, weak conn] line in
            guard let self, let conn else { return }
            guard let req = ControlJSON.decode(ControlRequest.self, from: line) else {
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

    func stop() {
        acceptor?.stop(); acceptor = nil
        for c in connections.values { c.close() }
        connections = [:]
        unlink(path)
    }
}

