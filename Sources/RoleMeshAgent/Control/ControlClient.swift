#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The command-line side of the control socket: blocking I/O, one request per connection.
public final class ControlClient {
    public let fd: Int32
    private var buffer = [UInt8]()

    /// Connects to the agent of `dir`; a clear error when none is running there.
    public init(dir: NodeDirectory) throws(MeshError) {
        guard let fd = Self.connect(path: dir.socketPath) else {
            throw MeshError(MeshError.other, "no agent is running for \(dir.root.path) (start one with `rolemesh agent`)")
        }
        self.fd = fd
    }

    deinit { Glibc.close(fd) }

    static func connect(path: String) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { Glibc.close(fd); return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { Glibc.close(fd); return nil }
        return fd
    }

    static func isAlive(path: String) -> Bool {
        guard let fd = connect(path: path) else { return false }
        Glibc.close(fd)
        return true
    }

    public func send(_ request: JSON) throws(MeshError) {
        try write(Array((request.serialized + "\n").utf8))
    }

    public func write(_ bytes: [UInt8]) throws(MeshError) {
        guard FD.writeAll(fd, bytes) else { throw MeshError(MeshError.other, "the agent closed the control connection") }
    }

    public func finishWriting() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

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

    /// One request, one JSON answer; an `{"error"}` answer becomes a thrown MeshError.
    public static func call(_ dir: NodeDirectory, _ request: JSON) throws(MeshError) -> JSON {
        let c = try ControlClient(dir: dir)
        try c.send(request)
        guard let line = c.readLine(), let answer = JSON.parse(line) else {
            throw MeshError(MeshError.other, "the agent gave no answer")
        }
        try check(answer)
        return answer
    }

    public static func check(_ answer: JSON) throws(MeshError) {
        if let err = answer["error"]?.string {
            throw MeshError(Int32(answer["code"]?.int ?? 1), err)
        }
    }
}
