import Foundation
import Glibc
import RoleMeshTaskChannel

/// A TCP service for the service tests: on `host:port`, each connection gets `greeting` and a
/// newline, then its own bytes back until it ends its side. `stop()` closes the listener and
/// every open connection (a service that died).
final class EchoServer: @unchecked Sendable {
    let port: UInt16
    private let listenFD: Int32
    private let lock = NSLock()
    private var open: [Int32] = []
    private var stopped = false

    init(host: String = "127.0.0.1", port: UInt16, greeting: String) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = UDPProbe.sockaddrIn(host, port)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 64) == 0 else { close(fd); throw NSError(domain: "echo", code: Int(errno)) }
        listenFD = fd
        self.port = port
        let hello = Array((greeting + "\n").utf8)
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                guard c >= 0 else { return }
                lock.lock(); let gone = stopped; if !gone { open.append(c) }; lock.unlock()
                if gone { close(c); return }
                Thread.detachNewThread {
                    _ = hello.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    var buf = [UInt8](repeating: 0, count: 65_536)
                    while true {
                        let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                        if n <= 0 { break }
                        var sent = 0
                        while sent < n {
                            let m = buf.withUnsafeBytes { send(c, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                            if m <= 0 { break }
                            sent += m
                        }
                    }
                    shutdown(c, Int32(SHUT_WR))
                }
            }
        }
    }

    func stop() {
        lock.lock(); stopped = true; let fds = open; open = []; lock.unlock()
        shutdown(listenFD, Int32(SHUT_RDWR)); close(listenFD)
        for c in fds { shutdown(c, Int32(SHUT_RDWR)) }
    }

    deinit { if !stopped { stop() } }
}

/// A blocking TCP client for the tests: connect, read the greeting line, send, read back.
enum TCPClient {
    /// Connects to `host:port`; nil when refused.
    static func connect(_ host: String, _ port: UInt16, timeout: Double = 5) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = UDPProbe.sockaddrIn(host, port)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); return nil }
        return fd
    }

    /// Reads until `count` bytes or a newline-terminated line arrived (whichever `untilLine` asks), or the end.
    static func read(_ fd: Int32, untilLine: Bool = true, count: Int = 1 << 20) -> String {
        var out = [UInt8]()
        var b = [UInt8](repeating: 0, count: 4096)
        while out.count < count {
            let n = b.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += b[0..<n]
            if untilLine, out.contains(10) { break }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ fd: Int32, _ s: String) {
        _ = Array(s.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// One exchange: the greeting, then `message` echoed. The greeting names the node that served it.
    static func exchange(_ host: String, _ port: UInt16, _ message: String = "ping\n") -> (greeting: String, echo: String)? {
        guard let fd = connect(host, port) else { return nil }
        defer { close(fd) }
        let greeting = read(fd)
        guard !greeting.isEmpty else { return nil }
        write(fd, message)
        return (greeting.trimmingCharacters(in: .whitespacesAndNewlines), read(fd))
    }
}
