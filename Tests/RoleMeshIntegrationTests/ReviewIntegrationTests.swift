import Foundation
import XCTest
import Synchronization
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// The second security review (issue 24, "From the security review"), each finding against real
/// agents: relays, descriptors, pre-auth places and the refusal log.
final class ReviewIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func base64File(_ path: String) throws -> [UInt8] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return [UInt8](Data(base64Encoded: text.split(whereSeparator: \.isWhitespace).last.map(String.init) ?? "")!)
    }

    func key(_ node: String, in dir: String? = nil) throws -> Ed25519.KeyPair {
        Ed25519.KeyPair(seed: try base64File((dir ?? cluster.dir(node)) + "/keys/\(node).secret"))
    }

    /// A task channel opened by the test with `node`'s key to `server`, from `source` (an IP) if given.
    func channel(as node: String, to server: String, from source: String? = nil) throws -> SecureChannel {
        let k = try key(node)
        let pub = try base64File(cluster.dir(server) + "/keys/\(server).pub")
        let address = WireAddress(host: cluster.hosts[server]!, port: cluster.port)!
        let local = source.flatMap { WireAddress(host: $0, port: 0) }
        return try blocking { try await SecureChannel.connect(to: address, expected: server, me: node, keyPair: k,
                                                               trusted: [server: pub], from: local) }
    }

    /// Whether the channel ends (closed, or a last frame) within `seconds`.
    func ends(_ ch: SecureChannel, within seconds: Double) -> Bool {
        let t0 = Date()
        let f = try? blocking { () async throws -> Frame? in
            let timer = Task { try? await Task.sleep(for: .seconds(seconds + 1)); ch.abort() }
            defer { timer.cancel() }
            return try await ch.receive()
        }
        return (f == nil || f?.type == .error) && Date().timeIntervalSince(t0) < seconds
    }

    func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return -1 }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return ((Double(f[11]) ?? 0) + (Double(f[12]) ?? 0)) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// A listening TCP socket the test owns at host:port; `accepted()` counts what reached it.
    final class Listener {
        let fd: Int32
        init(host: String, port: UInt16) {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var sa = UDPProbe.sockaddrIn(host, port)
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            listen(fd, 64)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        deinit { close(fd) }
        func accepted() -> Int {
            var n = 0
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { return n }
                n += 1
                close(c)
            }
        }
    }

    // MARK: 1. The relay is no open proxy

    /// `nas` holds a trusted key and announces someone else's port (a listener of the test's). It
    /// gossips only with node2, so node1 knows it only from what it announced. Asked to relay to
    /// it, node1 must refuse, and nothing of node1's may reach that port (no slot exchange either).
    func testARelayCarriesNothingToAnAddressAMemberOnlyAnnounced() throws {
        try cluster.create(2)
        let nasDir = cluster.root.appendingPathComponent("nas").path
        XCTAssertEqual(try cluster.cli(["keygen", "nas", "--dir", nasDir]).status, 0)
        for n in ["node1", "node2"] { try FileManager.default.copyItem(atPath: nasDir + "/keys/nas.pub", toPath: cluster.dir(n) + "/keys/nas.pub") }
        let victimHost = "127.0.0.50"
        let victim = Listener(host: victimHost, port: cluster.port)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
        let node2 = WireAddress(host: cluster.hosts["node2"]!, port: cluster.port)!
        let nas = FakeMember(name: "nas", keyPair: try key("nas", in: nasDir),
                             trusted: ["node1": try base64File(cluster.dir("node1") + "/keys/node1.pub"),
                                       "node2": try base64File(cluster.dir("node2") + "/keys/node2.pub")],
                             announce: WireAddress(host: victimHost, port: cluster.port)!, bind: "127.0.0.9", port: cluster.port,
                             bootstrap: [node2], only: [node2])
        defer { nas.stop() }
        XCTAssertTrue(waitUntil(timeout: 15) {
            guard let m = self.cluster.member("nas", seenBy: "node1") else { return false }
            return m["address"]?.string == "\(victimHost):\(self.cluster.port)" && ["alive", "suspect"].contains(m["state"]?.string ?? "")
        }, "node1 never listed nas as up at the announced address: \(String(describing: cluster.member("nas", seenBy: "node1")))")

        let ch = try channel(as: "node2", to: "node1")
        defer { ch.close() }
        try ch.sendBlocking(Frame(.request, encoding: TaskRequest.relay(to: "nas")))
        let answer = try ch.receiveBlocking()
        XCTAssertEqual(answer?.type, .error, "node1 agreed to carry a channel to an address nas only announced")
        XCTAssertEqual(answer?.meshError.code, 69)
        Thread.sleep(forTimeInterval: 1)      // a connect made on node1's own would have landed by now
        XCTAssertEqual(victim.accepted(), 0, "something connected to the port nas announced")
        XCTAssertFalse(cluster.log("node1").contains("carrying a task channel"), cluster.log("node1"))
    }

    // MARK: 2. Descriptors

    func testAnIdleChannelIsClosedAfterTheFirstRequestDeadline() throws {
        try cluster.create(2)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
        let ch = try channel(as: "node2", to: "node1")
        XCTAssertTrue(ends(ch, within: 8), "an authenticated channel that never sent a request was still open after 8 s")
    }

    /// node1 runs with 128 descriptors: one peer may hold 16 task connections there; the next gets
    /// 69, and another peer is still served.
    func testOnePeerHoldsAtMostItsShareOfTaskConnections() throws {
        try cluster.create(3)
        try cluster.startOne("node1", wrapper: ["/usr/bin/prlimit", "--nofile=128:128"])
        try cluster.start(["node2", "node3"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2", "node3"]) })
        var held: [SecureChannel] = []
        defer { held.forEach { $0.close() } }
        for _ in 0..<16 { held.append(try channel(as: "node2", to: "node1")) }
        let over = try channel(as: "node2", to: "node1")
        let f = try over.receiveBlocking()
        XCTAssertEqual(f?.type, .error, "a 17th connection of one peer was served")
        XCTAssertEqual(f?.meshError.code, 69)
        XCTAssertTrue(f?.meshError.message.contains("at most 16 task connections of node2") == true, f?.meshError.message ?? "")
        let other = try channel(as: "node3", to: "node1")
        try other.sendBlocking(Frame(.request, encoding: TaskRequest.logs(id: "0123456789abcdef", follow: false)))
        XCTAssertNotNil(try other.receiveBlocking(), "another peer must still be served")
        other.close()
    }

    /// Revoking a key closes that peer's idle connections at once, not at their deadline.
    func testRevokingAPeerClosesItsIdleConnections() throws {
        try cluster.create(2)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
        let channels = try (0..<5).map { _ in try channel(as: "node2", to: "node1") }
        cluster.distrust("node2", by: "node1")
        for (i, ch) in channels.enumerated() {
            XCTAssertTrue(ends(ch, within: 3), "idle connection \(i) of the revoked node2 was still open 3 s later")
        }
    }

    func testTheSoftOpenFilesLimitIsRaisedAtStart() throws {
        try cluster.create(1)
        try cluster.startOne("node1", wrapper: ["/usr/bin/prlimit", "--nofile=256:4096"])
        let pid = try XCTUnwrap(cluster.pid("node1"))
        let limits = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        let line = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }.map(String.init) ?? ""
        XCTAssertEqual(line.split(separator: " ").filter { !$0.isEmpty }.suffix(3).prefix(2), ["4096", "4096"], line)
    }

    /// Out of descriptors, the control socket's accept loop pauses instead of spinning.
    func testTheControlSocketBacksOffWhenDescriptorsRunOut() throws {
        try cluster.create(1)
        try cluster.startOne("node1", wrapper: ["/usr/bin/prlimit", "--nofile=64:64"])
        let pid = try XCTUnwrap(cluster.pid("node1"))
        let path = cluster.dir("node1") + "/agent.sock"
        var held: [Int32] = []
        defer { held.forEach { close($0) } }
        for _ in 0..<100 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var sun = sockaddr_un()
            sun.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &sun.sun_path) { b in for (i, c) in path.utf8.enumerated() where i < b.count - 1 { b[i] = c } }
            let rc = withUnsafePointer(to: &sun) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
            if rc != 0 { close(fd); break }
            held.append(fd)
        }
        XCTAssertGreaterThan(held.count, 40)
        XCTAssertTrue(waitUntil(timeout: 5) { self.cluster.log("node1").contains("cannot accept control connections") }, cluster.log("node1"))
        let before = cpuSeconds(pid)
        Thread.sleep(forTimeInterval: 2)      // a spinning loop shows as CPU time: a bounded look
        let used = cpuSeconds(pid) - before
        XCTAssertLessThan(used, 0.5, "the agent used \(used) s of CPU in 2 s while out of descriptors")
        held.forEach { close($0) }
        held = []
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.statusJSON("node1") != nil }, "status after the descriptors came back")
    }

    // MARK: 4. Pre-auth places per source

    /// 40 silent sockets from one address hold at most that address's places: task connections
    /// from another address all go through.
    func testSilentSocketsFromOneAddressDelayNobodyElse() throws {
        try cluster.create(2)
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(["node1", "node2"]) })
        var silent: [Int32] = []
        defer { silent.forEach { close($0) } }
        for _ in 0..<40 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var local = UDPProbe.sockaddrIn("127.0.0.60", 0)
            _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var sa = UDPProbe.sockaddrIn(cluster.hosts["node1"]!, cluster.port)
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            silent.append(fd)
        }
        Thread.sleep(forTimeInterval: 0.3)      // node1 has taken them in
        var ok = 0
        for _ in 0..<40 {
            if let ch = try? channel(as: "node2", to: "node1", from: cluster.hosts["node2"]) { ok += 1; ch.close() }
        }
        XCTAssertEqual(ok, 40, "task connections from another address were refused while one address held silent sockets")
    }

    // MARK: 5. The refusal log

    /// 200 connections that fail their handshake write a line or two to the log, not 200.
    func testRefusedConnectionsAreLoggedOnceThenSummed() throws {
        try cluster.create(1)
        try cluster.start()
        let before = cluster.log("node1").components(separatedBy: "refused").count
        for _ in 0..<200 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var sa = UDPProbe.sockaddrIn(cluster.hosts["node1"]!, cluster.port)
            _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            let junk = ChannelHandshake.magic + Ed25519.randomBytes(ChannelHandshake.helloSize - 4 + ChannelHandshake.proofSize)
            _ = junk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buf = [UInt8](repeating: 0, count: 128)
            while recv(fd, &buf, buf.count, 0) > 0 {}
            close(fd)
        }
        Thread.sleep(forTimeInterval: 0.5)
        let lines = cluster.log("node1").components(separatedBy: "refused").count - before
        XCTAssertGreaterThanOrEqual(lines, 1, cluster.log("node1"))
        XCTAssertLessThanOrEqual(lines, 2, "200 refusals wrote \(lines) log lines")
    }
}

/// A member whose gossip runs in this test process — the real core and sealing (`GossipNode`) on a
/// UDP socket — so that it can announce any address, and send only where the test lets it.
final class FakeMember: @unchecked Sendable {       // the node and socket are touched by its thread only
    let node: GossipNode
    let fd: Int32
    let only: Set<WireAddress>
    private let stopped = Atomic(false)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, keyPair: Ed25519.KeyPair, trusted: [String: [UInt8]], announce: WireAddress, bind host: String,
         port: UInt16, bootstrap: [WireAddress], only: Set<WireAddress>) {
        node = GossipNode(config: .init(name: name, address: announce, incarnation: 1, profile: .fast, bootstrap: bootstrap),
                          keyPair: keyPair, trusted: trusted, seed: 7, now: Self.now())
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var sa = UDPProbe.sockaddrIn(host, port)
        _ = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var tv = timeval(tv_sec: 0, tv_usec: 20_000)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        fd = s
        self.only = only
        Thread { self.run() }.start()
    }

    static func now() -> Millis { Millis(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    func send(_ out: GossipNode.Output) {
        for d in out.datagrams where only.contains(d.to) {
            var sa = UDPProbe.sockaddrIn(d.to.host, d.to.port)
            _ = d.bytes.withUnsafeBytes { b in
                withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
        }
    }

    private func run() {
        send(node.start(now: Self.now()))
        var buf = [UInt8](repeating: 0, count: 65_536)
        let deadline = Date().addingTimeInterval(120)
        while !stopped.load(ordering: .relaxed), Date() < deadline {
            var from = sockaddr_in()
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = withUnsafeMutablePointer(to: &from) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buf, buf.count, 0, $0, &len) }
            }
            if n > 0 {
                let ip = withUnsafeBytes(of: from.sin_addr) { Array($0) }
                send(node.receive(Array(buf[0..<n]), from: WireAddress(ip: ip, port: UInt16(bigEndian: from.sin_port)), now: Self.now()))
            }
            send(node.tick(now: Self.now()))
        }
        finished.signal()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        finished.wait()
        close(fd)
    }
}
