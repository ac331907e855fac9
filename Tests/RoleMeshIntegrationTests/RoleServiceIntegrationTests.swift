import Foundation
import XCTest
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import Glibc
import RoleMeshTaskChannel

/// Issue 26 on real agents (127.0.0.x): node1 and node2 hold `llm` and each serves `llm/api` (an
/// echo service that greets with its node's name) at its own port; node3, the thin client, holds
/// no role and reaches the service through `connect`.
final class RoleServiceIntegrationTests: XCTestCase {
    var cluster: Cluster!
    var echo: [String: EchoServer] = [:]
    var ports: [String: UInt16] = [:]
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() {
        for e in echo.values { e.stop() }
        cluster.shutdown()
    }

    /// Ports of this test's own, away from the agents' (each cluster has its own port).
    func port(_ offset: UInt16) -> UInt16 { cluster.port + 2_000 + offset * 100 }

    func setUpMesh(serve: Bool = true, check: String? = nil, beforeStart: () throws -> Void = {}) throws {
        try cluster.create(3, extra: { $0 == "node3" ? [] : ["--role", "llm"] })
        try beforeStart()
        for (i, n) in ["node1", "node2"].enumerated() {
            let p = port(UInt16(i))
            ports[n] = p
            let folder = cluster.dir(n) + "/roles/llm"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            var text = "[api]\nport = \(p)\n"
            if let check {
                text += "check = \"healthcheck\"\n"
                XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/healthcheck", contents: Data(check.utf8),
                                                             attributes: [.posixPermissions: 0o755]))
            }
            try text.write(toFile: folder + "/service.toml", atomically: true, encoding: .utf8)
            if serve { echo[n] = try EchoServer(port: p, greeting: n) }
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(self.cluster.names) })
    }

    func services(_ node: String) -> [JSON] {
        guard let r = try? cluster.cli(["services", "--json", "--dir", cluster.dir(node)]), r.status == 0 else { return [] }
        return JSON.parse(r.stdout)?["services"]?.array ?? []
    }

    /// node → health of `llm/api`, as `node3` sees it.
    func health(seenBy node: String = "node3") -> [String: String] {
        var out: [String: String] = [:]
        for s in services(node) where s["service"]?.string == "llm/api" {
            for n in s["nodes"]?.array ?? [] { out[n["node"]?.string ?? "?"] = n["health"]?.string }
        }
        return out
    }

    /// `rolemesh connect` running in the background, and its first line.
    func startConnect(_ args: [String]) throws -> (Process, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Cluster.binary)
        p.arguments = ["connect"] + args + ["--dir", cluster.dir("node3")]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        var line = [UInt8]()
        let fd = out.fileHandleForReading.fileDescriptor
        var b: UInt8 = 0
        while read(fd, &b, 1) == 1, b != 10 { line.append(b) }
        return (p, String(decoding: line, as: UTF8.self))
    }

    func testAThinClientReachesTheHealthyHolderAndTheNextOneAtOnce() throws {
        try setUpMesh()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health() == ["node1": "healthy", "node2": "healthy"] }, "\(self.services("node3"))")
        let s = try XCTUnwrap(services("node3").first)
        XCTAssertEqual(s["service"]?.string, "llm/api")
        XCTAssertEqual(s["where"]?.string, "holders")
        XCTAssertNotNil(s["reason"]?.string)
        let chosen = try XCTUnwrap(s["node"]?.string)
        let other = chosen == "node1" ? "node2" : "node1"
        // status --json: each member's services.
        let m = cluster.member(chosen, seenBy: "node3")
        XCTAssertEqual(m?["services"]?["llm/api"]?.string, "healthy")

        let local = port(5)
        let (connect, line) = try startConnect(["llm/api", "--local", "127.0.0.1:\(local)"])
        defer { kill(connect.processIdentifier, SIGINT); connect.waitUntilExit() }
        XCTAssertEqual(line, "forwarding 127.0.0.1:\(local) -> llm/api (now \(chosen))")
        let first = try XCTUnwrap(TCPClient.exchange("127.0.0.1", local))
        XCTAssertEqual(first.greeting, chosen)
        XCTAssertEqual(first.echo, "ping\n")
        let forwards = cluster.statusJSON("node3")?["forwards"]?.array ?? []
        XCTAssertEqual(forwards.first?["service"]?.string, "llm/api")
        XCTAssertEqual(forwards.first?["listen"]?.string, "127.0.0.1:\(local)")

        // The chosen node's service goes away: the very next connection reaches the other one,
        // tried at once (its check has not failed yet), and the client sees one working connection.
        echo[chosen]?.stop()
        for _ in 0..<5 {
            let next = try XCTUnwrap(TCPClient.exchange("127.0.0.1", local))
            XCTAssertEqual(next.greeting, other)
            XCTAssertEqual(next.echo, "ping\n")
        }
        // `--stdio`: one connection over stdin and stdout.
        let r = try cluster.cli(["connect", "llm/api", "--stdio", "--dir", cluster.dir("node3")], stdin: Data("hello\n".utf8), timeout: 20)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "\(other)\nhello\n")
        // Ctrl-C on `connect`: the agent closes its listener with the command's control connection.
        kill(connect.processIdentifier, SIGINT)
        XCTAssertTrue(waitUntil(timeout: 5) { TCPClient.connect("127.0.0.1", local, timeout: 1).map { close($0); return false } ?? true },
                      "the listener outlived its connect command")
    }

    /// The serving agent connects only to 127.0.0.1 at the port its own service.toml declares for a
    /// service it offers, whatever a trusted peer asks for.
    func testTheServingAgentIsNotAnOpenProxy() throws {
        try setUpMesh()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health()["node1"] == "healthy" })
        let seed = [UInt8](Data(base64Encoded: try String(contentsOfFile: cluster.dir("node3") + "/keys/node3.secret", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))!)
        let pub = [UInt8](Data(base64Encoded: try String(contentsOfFile: cluster.dir("node1") + "/keys/node1.pub", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))!)
        let server = WireAddress(host: cluster.hosts["node1"]!, port: cluster.port)!
        func ask(_ fields: [String: String]) throws -> (Frame?, Frame?) {
            let ch = try blocking { try await SecureChannel.connect(to: server, expected: "node1", me: "node3", keyPair: Ed25519.KeyPair(seed: seed),
                                                                  trusted: ["node1": pub], from: nil) }
            defer { ch.close() }
            let json = "{\"op\":\"connect\"" + fields.sorted { $0.key < $1.key }.map { ",\"\($0.key)\":\"\($0.value)\"" }.joined() + "}"
            try ch.sendBlocking(Frame(.request, Array(json.utf8)))
            let answer = try ch.receiveBlocking()
            return (answer, answer?.type == .info ? try ch.receiveBlocking() : nil)
        }
        // A service node1 does not declare, a port, an address, another role's: refused, nothing connected.
        let canary = try EchoServer(port: port(7), greeting: "canary")
        defer { canary.stop() }
        for fields in [["service": "llm/ssh"], ["service": "llm/\(port(7))"], ["service": "127.0.0.1:\(port(7))"],
                       ["service": "other/api"], [:], ["port": "\(port(7))"], ["host": "127.0.0.1", "port": "\(port(7))"]] {
            let (answer, _) = try ask(fields)
            XCTAssertEqual(answer?.type, .error, "\(fields)")
            XCTAssertEqual(answer?.meshError.code, 77, "\(fields)")
            XCTAssertTrue(answer?.meshError.message.hasPrefix("node1 does not offer") == true, answer?.meshError.message ?? "")
        }
        // The declared service, with an address and port the peer names beside it: still only the declared port.
        let (answer, greeting) = try ask(["service": "llm/api", "to": "127.0.0.1:\(port(7))", "host": "127.0.0.1", "port": "\(port(7))"])
        XCTAssertEqual(answer?.type, .info)
        XCTAssertEqual(greeting?.type, .stdout)
        XCTAssertEqual(greeting.map { String(decoding: $0.payload, as: UTF8.self) }, "node1\n")
    }

    func testBadNamesUnknownServicesAndTakenPortsAreOneSentence() throws {
        try setUpMesh()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health().count == 2 })
        let bad = try cluster.cli(["connect", "llm", "--dir", cluster.dir("node3")])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        let unknown = try cluster.cli(["connect", "llm/nope", "--dir", cluster.dir("node3")])
        XCTAssertEqual(unknown.status, 69, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("no node offers llm/nope"), unknown.stderr)
        let taken = try EchoServer(port: port(6), greeting: "squatter")
        defer { taken.stop() }
        let busy = try cluster.cli(["connect", "llm/api", "--local", "\(port(6))", "--dir", cluster.dir("node3")])
        XCTAssertEqual(busy.status, 1, busy.stderr)
        XCTAssertEqual(busy.stderr.split(separator: "\n").count, 1, busy.stderr)
        XCTAssertTrue(busy.stderr.contains("127.0.0.1:\(port(6)) is taken"), busy.stderr)
        // A bad service.toml names its file, line and key, and stops nothing else.
        try "[api]\nport = \"x\"\n".write(toFile: cluster.dir("node1") + "/roles/llm/service.toml", atomically: true, encoding: .utf8)
        XCTAssertTrue(waitUntil(timeout: 10) {
            (try? self.cluster.cli(["services", "--dir", self.cluster.dir("node1")]))?.stderr
                .contains("roles/llm/service.toml line 2: key \"port\": expected an integer, found a string") == true
        })
        XCTAssertTrue(waitUntil(timeout: 10) { self.health() == ["node2": "healthy"] }, "\(self.health())")
    }

    /// A check executable that fails: unhealthy after 3 failures in a row (5 s apart), its exit
    /// status as the detail, and routing skips the node with `service unhealthy`.
    func testAFailingCheckMakesTheNodeUnhealthyAndRoutingSkipsIt() throws {
        try setUpMesh(check: "#!/bin/sh\n[ \"$ROLEMESH_NODE\" = node1 ] && exit 3\n[ \"$ROLEMESH_SERVICE\" = llm/api ] && [ -n \"$ROLEMESH_PORT\" ]\n")
        let (p, lines) = try watch("node3")
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; p.waitUntilExit() }
        XCTAssertTrue(waitUntil(timeout: 30) { self.health() == ["node1": "unhealthy", "node2": "healthy"] }, "\(self.health())")
        XCTAssertTrue(waitUntil(timeout: 3) {
            self.events(lines).contains { $0["event"]?.string == "service-unhealthy" && $0["node"]?.string == "node1" && $0["service"]?.string == "llm/api" }
        }, lines.withLock { $0.joined() })
        let s = try XCTUnwrap(services("node3").first)
        XCTAssertEqual(s["node"]?.string, "node2")
        let node1 = s["nodes"]?.array?.first { $0["node"]?.string == "node1" }
        XCTAssertEqual(node1?["detail"]?.string, "check exit 3")
        XCTAssertTrue(s["reason"]?.string?.contains("node1: service unhealthy: check exit 3") == true, s["reason"]?.string ?? "")
    }

    /// Revoking the client's key on the serving node ends its forwarded connections there.
    func testRevocationEndsForwardedConnections() throws {
        try setUpMesh()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health().count == 2 })
        let local = port(5)
        let (connect, line) = try startConnect(["llm/api", "--local", "\(local)"])
        defer { kill(connect.processIdentifier, SIGINT); connect.waitUntilExit() }
        let chosen = try XCTUnwrap(line.split(separator: " ").last.map { String($0.dropLast()) })
        let fd = try XCTUnwrap(TCPClient.connect("127.0.0.1", local, timeout: 20))
        defer { close(fd) }
        XCTAssertEqual(TCPClient.read(fd), "\(chosen)\n")
        TCPClient.write(fd, "before\n")
        XCTAssertEqual(TCPClient.read(fd), "before\n")
        cluster.distrust("node3", by: chosen)
        // The connection ends (read sees the end), within the 10 s a revocation takes.
        XCTAssertEqual(TCPClient.read(fd), "", "a revoked node's forwarded connection stayed open")
    }

    /// `forward` in node.toml: listeners the laptop's agent keeps open; one whose port is taken is
    /// shown by `status` and `doctor`, and opened once the port is free (retried every 10 s).
    func testForwardListenersOfNodeTomlAndATakenPort() throws {
        let free = port(5), taken = port(6)
        let squatter = try EchoServer(port: taken, greeting: "squatter")
        try cluster.create(3, extra: { $0 == "node3" ? [] : ["--role", "llm"] })
        let toml = cluster.dir("node3") + "/node.toml"
        try (String(contentsOfFile: toml, encoding: .utf8) + "forward = [\"llm/api=\(free)\", \"llm/web=127.0.0.1:\(taken)\"]\n")
            .write(toFile: toml, atomically: true, encoding: .utf8)
        for (i, n) in ["node1", "node2"].enumerated() {
            let p = port(UInt16(i))
            try FileManager.default.createDirectory(atPath: cluster.dir(n) + "/roles/llm", withIntermediateDirectories: true)
            try "[api]\nport = \(p)\n\n[web]\nport = \(p)\n".write(toFile: cluster.dir(n) + "/roles/llm/service.toml", atomically: true, encoding: .utf8)
            echo[n] = try EchoServer(port: p, greeting: n)
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health() == ["node1": "healthy", "node2": "healthy"] })
        XCTAssertTrue(waitUntil(timeout: 15) { TCPClient.exchange("127.0.0.1", free)?.echo == "ping\n" }, cluster.log("node3"))
        let forwards = cluster.statusJSON("node3")?["forwards"]?.array ?? []
        let web = forwards.first { $0["service"]?.string == "llm/web" }
        XCTAssertTrue(web?["error"]?.string?.contains("is taken") == true, "\(forwards)")
        let doctor = try cluster.cli(["doctor", "--dir", cluster.dir("node3")], timeout: 60)
        XCTAssertTrue(doctor.stdout.contains("forward llm/web"), doctor.stdout)
        XCTAssertTrue(cluster.log("node3").contains("forward llm/web: 127.0.0.1:\(taken) is taken"), cluster.log("node3"))
        // The port is freed: the listener opens at the next try (10 s at most).
        squatter.stop()
        XCTAssertTrue(waitUntil(timeout: 15) { ["node1", "node2"].contains(TCPClient.exchange("127.0.0.1", taken)?.greeting ?? "") })
        // A bad entry: the agent does not start, exit 78 naming it.
        cluster.crash("node3")
        try String(contentsOfFile: toml, encoding: .utf8).replacingOccurrences(of: "\"llm/api=\(free)\"", with: "\"llm\"")
            .write(toFile: toml, atomically: true, encoding: .utf8)
        let bad = try Cluster.run(Cluster.binary, ["agent", "--dir", cluster.dir("node3")], timeout: 10)
        XCTAssertEqual(bad.status, 78, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("invalid forward entry \"llm\""), bad.stderr)
    }

    /// `watch --json` on the laptop: `service-moved` when new connections go elsewhere (the chosen
    /// holder drains), with the service, from and to.
    func testWatchSaysWhereNewConnectionsMoved() throws {
        try setUpMesh()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health().count == 2 })
        let chosen = try XCTUnwrap(services("node3").first?["node"]?.string)
        let other = chosen == "node1" ? "node2" : "node1"
        let (p, lines) = try watch("node3")
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; p.waitUntilExit() }
        Thread.sleep(forTimeInterval: 0.5)
        try cluster.cli(["drain", "--dir", cluster.dir(chosen)])
        XCTAssertTrue(waitUntil(timeout: 10) {
            lines.withLock { $0.joined() }.split(separator: "\n").contains { line in
                guard let e = JSON.parse(String(line)) else { return false }
                return e["event"]?.string == "service-moved" && e["service"]?.string == "llm/api"
                    && e["from"]?.string == chosen && e["to"]?.string == other
            }
        }, lines.withLock { $0.joined() })
    }

    /// Grants apply: node2's key file says it was granted no role (on every node, its own too), so
    /// it offers nothing, and no connection goes to it even were it to announce the service.
    func testANodeNotGrantedTheRoleAttractsNoConnection() throws {
        try setUpMesh(beforeStart: {
            for n in self.cluster.names {
                let k = self.cluster.dir(n) + "/keys/node2.pub"
                try ("# granted:\n" + String(contentsOfFile: k, encoding: .utf8)).write(toFile: k, atomically: true, encoding: .utf8)
            }
        })
        XCTAssertTrue(waitUntil(timeout: 20) { self.health() == ["node1": "healthy"] }, "\(self.health())")
        Thread.sleep(forTimeInterval: 2)
        XCTAssertEqual(health(), ["node1": "healthy"], "a node not granted the role offers its service")
        let s = try XCTUnwrap(services("node3").first)
        XCTAssertEqual(s["node"]?.string, "node1")
        XCTAssertTrue(s["reason"]?.string?.contains("node2: not granted") == true, s["reason"]?.string ?? "")
        for _ in 0..<3 {
            let r = try cluster.cli(["connect", "llm/api", "--stdio", "--dir", cluster.dir("node3")], stdin: Data("x\n".utf8), timeout: 20)
            XCTAssertEqual(r.stdout, "node1\nx\n")
        }
    }

    /// `watch --json` on `node` in the background: the process, and what it printed so far.
    func watch(_ node: String) throws -> (Process, Locked<[String]>) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Cluster.binary)
        p.arguments = ["watch", "--json", "--dir", cluster.dir(node)]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let lines = Locked<[String]>([])
        let fd = out.fileHandleForReading.fileDescriptor
        Thread.detachNewThread {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buf, buf.count)
                if n <= 0 { return }
                lines.withLock { $0.append(String(decoding: buf[0..<n], as: UTF8.self)) }
            }
        }
        return (p, lines)
    }

    func events(_ lines: Locked<[String]>) -> [JSON] {
        lines.withLock { $0.joined() }.split(separator: "\n").compactMap { JSON.parse(String($0)) }
    }
}
