import RoleMeshPlatform
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTransport

/// One health check of a service on this node: a TCP connect to `127.0.0.1:port`, or the role's
/// check executable (exit 0 healthy, killed with its process group after 10 s). Runs on a pool
/// thread, never on the agent queue.
enum ServiceCheck {
    /// (healthy, why not).
    static func run(_ d: ServiceDefinition, dir: NodeDirectory, environment: [String]) async -> (Bool, String?) {
        await withCheckedContinuation { c in
            DispatchQueue.global(qos: .utility).async {
                switch d.check {
                case .tcp: c.resume(returning: tcp(port: d.port))
                case .executable(let file): c.resume(returning: executable(d, file: file, dir: dir, environment: environment))
                }
            }
        }
    }

    /// A connect within 2 s: refused, reset or silent is a failure, named as the system names it.
    static func tcp(port: Int) -> (Bool, String?) {
        let fd = socket(AF_INET, sockStream, 0)
        guard fd >= 0 else { return (false, "cannot create a socket") }
        defer { sysClose(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let address = WireAddress(ip: [127, 0, 0, 1], port: UInt16(port))
        var rc = SocketAddress.with(address) { sysConnect(fd, $0, $1) }
        var err = rc == 0 ? 0 : errno
        if rc != 0, err == EINPROGRESS {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&p, 1, 2_000) == 1 {
                var soErr: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len)
                err = soErr
                rc = soErr == 0 ? 0 : -1
            } else { err = ETIMEDOUT }
        }
        return rc == 0 ? (true, nil) : (false, "tcp 127.0.0.1:\(port): " + String(cString: strerror(err)).lowercased())
    }

    static func executable(_ d: ServiceDefinition, file: String, dir: NodeDirectory, environment: [String]) -> (Bool, String?) {
        let folder = dir.rolesDir.appendingPathComponent(d.role).path
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { return (false, "check cannot start: /dev/null cannot be opened") }
        defer { sysClose(null) }
        let started = Spawn.start(path: folder + "/" + file, args: [], environment: environment, directory: folder,
                                  stdin: null, stdout: null, stderr: null)
        guard case .success(let pid) = started else {
            if case .failure(let e) = started { return (false, "check cannot start: " + String(cString: strerror(e.code)).lowercased()) }
            return (false, "check cannot start")
        }
        // Polled rather than waited for: a check is short, and this thread is the check's own.
        let deadline = Clock.now() + Millis(HealthTracker.checkTimeoutSeconds * 1000)
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return (false, "check lost") }
            if Clock.now() >= deadline {
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return (false, "check killed after \(HealthTracker.checkTimeoutSeconds) s")
            }
            usleep(20_000)
        }
        let code = Spawn.decode(status)
        return code == 0 ? (true, nil) : (false, "check exit \(code)")
    }
}
