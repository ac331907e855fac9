import Foundation
import XCTest
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// A man in the middle on the task channel: flipped bits and a replayed session must end the
/// connection before any task runs.
final class ChannelTamperTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    /// node1 (the client, whose key the test borrows) and node2 (the server with task job/mark).
    func setUpMesh() throws -> (client: Ed25519.KeyPair, trusted: [String: [UInt8]], server: WireAddress) {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        let roleDir = cluster.dir("node2") + "/roles/job"
        try FileManager.default.createDirectory(atPath: roleDir, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: roleDir + "/mark", contents: Data("#!/bin/sh\ntouch \"\(cluster.root.path)/ran\"\n".utf8),
                                       attributes: [.posixPermissions: 0o755]))
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        let seed = try base64File(cluster.dir("node1") + "/keys/node1.secret")
        let pub = try base64File(cluster.dir("node2") + "/keys/node2.pub")
        return (Ed25519.KeyPair(seed: seed), ["node2": pub], WireAddress(host: cluster.hosts["node2"]!, port: cluster.port)!)
    }

    func base64File(_ path: String) throws -> [UInt8] {
        [UInt8](Data(base64Encoded: try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!)
    }

    var ran: Bool { FileManager.default.fileExists(atPath: cluster.root.path + "/ran") }

    func request() -> Frame {
        Frame(.request, encoding: TaskRequest.run(RunRequest(id: TaskJournal.newID(), role: "job", task: "mark", submitted: "now")))
    }

    func testAFlippedBitEndsTheConnectionAndNothingRuns() throws {
        let (key, trusted, server) = try setUpMesh()
        // Client → server: the handshake (a 164-byte hello, then the 16-byte proof) passes;
        // the first bit after it is flipped.
        let proxy = try TamperProxy(target: server, listenHost: "127.0.0.77", port: cluster.port, clean: ChannelHandshake.helloSize + ChannelHandshake.proofSize)
        defer { proxy.stop() }
        let ch = try blocking { try await SecureChannel.connect(to: proxy.address, expected: "node2", me: "node1", keyPair: key, trusted: trusted, from: nil) }
        try ch.sendBlocking(request())
        XCTAssertNil(try? ch.receiveBlocking(), "the server must end a connection whose frame was tampered with")
        ch.close()
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertFalse(ran, "a tampered request ran a task")
        // The untouched path works, so the refusal above was the tampering's doing.
        let direct = try blocking { try await SecureChannel.connect(to: server, expected: "node2", me: "node1", keyPair: key, trusted: trusted, from: nil) }
        try direct.sendBlocking(request())
        var sawExit = false
        while let f = try direct.receiveBlocking() { if f.type == .exit { sawExit = true; break } }
        direct.close()
        XCTAssertTrue(sawExit && ran)
    }

    func testAReplayedSessionIsRefused() throws {
        let (key, trusted, server) = try setUpMesh()
        let proxy = try TamperProxy(target: server, listenHost: "127.0.0.77", port: cluster.port, clean: Int.max)
        defer { proxy.stop() }
        let ch = try blocking { try await SecureChannel.connect(to: proxy.address, expected: "node2", me: "node1", keyPair: key, trusted: trusted, from: nil) }
        try ch.sendBlocking(request())
        while let f = try ch.receiveBlocking() { if f.type == .exit { break } }
        ch.close()
        XCTAssertTrue(waitUntil(timeout: 5) { self.ran })
        try FileManager.default.removeItem(atPath: cluster.root.path + "/ran")
        // Play the client's recorded bytes to the server again, as an eavesdropper could.
        let recorded = proxy.clientBytes
        XCTAssertGreaterThan(recorded.count, 106)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = UDPProbe.sockaddrIn(server.host, server.port)
        XCTAssertEqual(withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }, 0)
        _ = recorded.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var tv = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 4096)
        var total = 0
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            total += n
        }
        close(fd)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertFalse(ran, "a replayed session ran the task again")
        XCTAssertLessThan(total, 200, "the server answered only its handshake, then closed")
    }
}

/// A one-connection TCP relay that records what the client sent and flips one bit after `clean` bytes.
final class TamperProxy: @unchecked Sendable {
    let listenFD: Int32
    let address: WireAddress
    private let lock = NSLock()
    private var recorded: [UInt8] = []
    private var fds: [Int32] = []
    var clientBytes: [UInt8] { lock.lock(); defer { lock.unlock() }; return recorded }

    init(target: WireAddress, listenHost: String, port: UInt16, clean: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = UDPProbe.sockaddrIn(listenHost, port)
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 1) == 0 else { close(fd); throw MeshError(1, "proxy cannot listen") }
        listenFD = fd
        address = WireAddress(host: listenHost, port: port)!
        Thread.detachNewThread { [self] in
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { return }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var ta = UDPProbe.sockaddrIn(target.host, target.port)
            guard withUnsafePointer(to: &ta, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else { return }
            lock.lock(); fds = [client, upstream]; lock.unlock()
            Thread.detachNewThread { self.pump(from: upstream, to: client, clean: Int.max, record: false) }
            self.pump(from: client, to: upstream, clean: clean, record: true)
        }
    }

    private func pump(from: Int32, to: Int32, clean: Int, record: Bool) {
        var seen = 0
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            var chunk = Array(buf[0..<n])
            if clean != Int.max, seen + n > clean, seen <= clean {
                let at = max(0, clean - seen) + 6           // inside the first frame's ciphertext
                if at < chunk.count { chunk[at] ^= 0x01 }
            }
            seen += n
            if record { lock.lock(); recorded += chunk; lock.unlock() }
            _ = chunk.withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        shutdown(to, Int32(SHUT_WR))
    }

    func stop() {
        shutdown(listenFD, Int32(SHUT_RDWR)); close(listenFD)
        lock.lock(); let open = fds; lock.unlock()
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }
}
