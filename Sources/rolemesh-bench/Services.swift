import RoleMeshPlatform
import Foundation
import Synchronization
import RoleMeshAgent
import RoleMeshControl
import RoleMeshStorage
import RoleMeshTaskChannel

/// `services`: a forwarded connection (`rolemesh connect`) against connecting to the service
/// directly, on loopback. node2 holds role `bench` and node3 backs it up, each "serving" `bench/echo`
/// and `bench/source` (servers in this process, one pair per node); node1, the thin client, runs
/// `rolemesh connect` for each. Measured: setup (connect to the first byte back from the echo
/// service), the throughput of one connection from the source service, and failover when node2's
/// agent is killed while a client connects every 100 ms (time to the first connection node3
/// served, and the connects that failed). `ssh -L` through a running ssh to a private sshd beside
/// it, to the same servers, when ssh and sshd are installed.
enum ServicesBench {
    static func main(_ args: [String]) throws(BenchExit) {
        let o = try Options(args, allowed: ["runs", "megabytes"])
        let runs = try o.int("runs", 200, min: 10, max: 5000)
        let megabytes = try o.int("megabytes", 1000, min: 10, max: 20_000)
        do { try body(runs: runs, bytes: megabytes * 1_048_576) } catch {
            throw .failed("services: \(error)")
        }
    }

    /// A loopback TCP server run by threads of this process: `echo` sends back what it reads,
    /// `source` writes zeros until the client goes. Counts the connections it accepted.
    final class Server: @unchecked Sendable {
        let port: UInt16
        let fd: Int32
        let accepted = Counter()
        init(port: UInt16, source: Bool) throws {
            self.port = port
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0, listen(fd, 128) == 0 else { throw BenchError("cannot listen on 127.0.0.1:\(port)") }
            let listening = self.fd, count = accepted
            Thread.detachNewThread {
                while true {
                    let c = accept(listening, nil, nil)
                    if c < 0 { if errno == EINTR { continue }; return }
                    count.add(1)
                    var one: Int32 = 1
                    setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    Thread.detachNewThread {
                        var buf = [UInt8](repeating: 0, count: 256 * 1024)
                        if source {
                            while buf.withUnsafeBytes({ send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) > 0 {}
                        } else {
                            while true {
                                let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                                if n <= 0 { break }
                                _ = buf.withUnsafeBytes { send(c, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
                            }
                        }
                        close(c)
                    }
                }
            }
        }
        func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    }

    final class Counter: Sendable {
        private let n = Atomic(0)
        func add(_ k: Int) { n.add(k, ordering: .relaxed) }
        var value: Int { n.load(ordering: .relaxed) }
    }

    static func connectTCP(_ port: UInt16, timeout: Int = 5) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0 { close(fd); return nil }
        return fd
    }

    /// Connect, one byte out, the byte back: milliseconds, or nil when it failed.
    static func firstByte(_ port: UInt16) -> Double? {
        let t0 = monoNow()
        guard let fd = connectTCP(port) else { return nil }
        defer { close(fd) }
        var b: UInt8 = 42
        guard send(fd, &b, 1, Int32(MSG_NOSIGNAL)) == 1, recv(fd, &b, 1, 0) == 1 else { return nil }
        return (monoNow() - t0) * 1000
    }

    /// MB/s of `bytes` read from the source service at `port`.
    static func throughput(_ port: UInt16, bytes: Int) throws -> Double {
        guard let fd = connectTCP(port, timeout: 30) else { throw BenchError("cannot connect to 127.0.0.1:\(port)") }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        var got = 0
        let t0 = monoNow()
        while got < bytes {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw BenchError("the source stream ended after \(got) bytes") }
            got += n
        }
        return Double(got) / 1_048_576 / (monoNow() - t0)
    }

    static func body(runs: Int, bytes: Int) throws {
        say("services: \(machineDescription())")
        let mesh = try Mesh(label: "services", count: 3, profile: "fast", octet: 160,
                            extra: { $0 == 2 ? ["--role", "bench"] : $0 == 3 ? ["--backup", "bench"] : [] })
        defer { mesh.shutdown() }
        // Ports: each node's echo and source servers, and node1's two local listeners.
        // Below the ephemeral range (32768–60999), where an agent's outgoing connection may hold a port.
        let base = UInt16(30_000 + Int(getpid() % 270) * 10)
        var servers: [String: (echo: Server, source: Server)] = [:]
        defer { for s in servers.values { s.echo.stop(); s.source.stop() } }
        for (i, n) in ["node2", "node3"].enumerated() {
            let e = base + UInt16(i * 2), s = base + UInt16(i * 2 + 1)
            servers[n] = (try Server(port: e, source: false), try Server(port: s, source: true))
            let folder = mesh.dir(n) + "/roles/bench"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try AtomicFile.replace(URL(fileURLWithPath: folder + "/service.toml"), with: "[echo]\nport = \(e)\n\n[source]\nport = \(s)\n")
        }
        try mesh.start()
        try mesh.waitConverged(timeout: 60, role: "bench", route: "node2")
        let dir = ["--dir", mesh.dir("node1")]
        let healthy = waitUntil(timeout: 30, interval: 0.2) {
            let r = run(rolemeshBinary, ["services", "--json"] + dir, timeout: 10)
            return r.stdout.components(separatedBy: "\"healthy\"").count - 1 == 4
        }
        guard healthy else { throw BenchError("the services did not turn healthy: \(run(rolemeshBinary, ["services"] + dir).stdout)") }
        let echoLocal = base + 10, sourceLocal = base + 11
        var connects: [pid_t] = []
        defer { for p in connects { killAndReap(p, SIGTERM) } }
        for (svc, port) in [("bench/echo", echoLocal), ("bench/source", sourceLocal)] {
            connects.append(try spawn(rolemeshBinary, ["connect", svc, "--local", "127.0.0.1:\(port)"] + dir, label: "connect \(svc)"))
        }
        guard waitUntil(timeout: 10, interval: 0.05, { firstByte(echoLocal) != nil && connectTCP(sourceLocal).map { close($0); return true } ?? false }) else {
            throw BenchError("rolemesh connect did not listen")
        }
        let echoDirect = servers["node2"]!.echo.port, sourceDirect = servers["node2"]!.source.port
        for _ in 0..<10 { _ = firstByte(echoDirect); _ = firstByte(echoLocal) }
        let direct = Summary(values: (0..<runs).compactMap { _ in firstByte(echoDirect) })
        let forwarded = Summary(values: (0..<runs).compactMap { _ in firstByte(echoLocal) })
        let directRate = Summary(values: try (0..<3).map { _ in try throughput(sourceDirect, bytes: bytes) })
        // The two agents' CPU per GB forwarded: what the machine's other load does not change much.
        let agents = ["node1", "node2"].compactMap { mesh.pids[$0] }
        let cpu0 = agents.map { ProcFS.cpuSeconds($0) ?? 0 }.reduce(0, +)
        let forwardedRate = Summary(values: try (0..<3).map { _ in try throughput(sourceLocal, bytes: bytes) })
        let cpuPerGB = (agents.map { ProcFS.cpuSeconds($0) ?? 0 }.reduce(0, +) - cpu0) / (3 * Double(bytes) / 1_073_741_824)
        let added = forwarded.median.flatMap { f in direct.median.map { f - $0 } }

        // ssh -L through a running ssh (one process, both forwards) to the same two servers.
        var sshSetup = Summary(values: []), sshRate = Summary(values: [])
        let (sshd, sshNote) = try PrivateSSHD.start(port: base + 20)
        if let sshd {
            defer { sshd.stop() }
            let echoSSH = base + 12, sourceSSH = base + 13
            let tunnel = try spawn(sshd.ssh, ["-N", "-o", "ExitOnForwardFailure=yes",
                                              "-L", "127.0.0.1:\(echoSSH):127.0.0.1:\(echoDirect)",
                                              "-L", "127.0.0.1:\(sourceSSH):127.0.0.1:\(sourceDirect)"] + sshd.base, label: "ssh -L")
            defer { killAndReap(tunnel) }
            if waitUntil(timeout: 10, interval: 0.1, { firstByte(echoSSH) != nil }) {
                for _ in 0..<10 { _ = firstByte(echoSSH) }
                sshSetup = Summary(values: (0..<runs).compactMap { _ in firstByte(echoSSH) })
                sshRate = Summary(values: try (0..<3).map { _ in try throughput(sourceSSH, bytes: bytes) })
            }
        }
        if !sshNote.isEmpty { note(sshNote) }
        let rateRatio = forwardedRate.median.flatMap { f in sshRate.median.map { f / $0 } }

        // Failover: node2's agent is killed while a client connects every 100 ms (bounded: 30 s).
        let before = servers["node3"]!.echo.accepted.value
        var failed = 0, tries = 0
        var switchSeconds: Double?
        let killedAt = monoNow()
        if let pid = mesh.pids["node2"] { kill(pid, SIGKILL) }
        while monoNow() - killedAt < 30 {
            tries += 1
            if firstByte(echoLocal) == nil { failed += 1 }
            if switchSeconds == nil, servers["node3"]!.echo.accepted.value > before {
                switchSeconds = monoNow() - killedAt
            }
            if let s = switchSeconds, monoNow() - killedAt > s + 2 { break }
            sleepSeconds(0.1)
        }
        say(table([
            ["", "direct", "rolemesh connect", "ssh -L", "target"],
            ["setup, connect to first byte back, median ms", fmt(direct.median, 3), fmt(forwarded.median, 3), fmt(sshSetup.median, 3),
             "≤ direct + 2 ms: \(metText(added.map { $0 <= 2 }))"],
            ["one connection, \(bytes / 1_048_576) MB, median MB/s", fmt(directRate.median, 0), fmt(forwardedRate.median, 0),
             fmt(sshRate.median, 0), "≥ 500 and ≥ 5 × ssh -L (\(fmt(rateRatio, 1)) ×): \(metText(forwardedRate.median.map { $0 >= 500 && (rateRatio ?? 0) >= 5 }))"],
            ["  both agents' CPU seconds per GB forwarded", "", fmt(cpuPerGB, 2), "", ""],
            ["failover (holder's agent killed), s to backup", "", fmt(switchSeconds, 2), "", "failed connects: \(failed) of \(tries)"],
        ]))
        printResult("services", [("runs", .int(runs)), ("bytes", .int(bytes)),
                                 ("direct_ms", direct.json), ("forwarded_ms", forwarded.json), ("added_ms", .optional(added)),
                                 ("direct_mb_s", directRate.json), ("forwarded_mb_s", forwardedRate.json), ("agents_cpu_s_per_gb", .double(cpuPerGB)),
                                 ("failover_s", .optional(switchSeconds)), ("failover_failed", .int(failed)), ("failover_tries", .int(tries)),
                                 ("ssh_ms", sshSetup.json), ("ssh_mb_s", sshRate.json), ("ratio_to_ssh", .optional(rateRatio)),
                                 ("note", .string(sshNote))])
    }
}
