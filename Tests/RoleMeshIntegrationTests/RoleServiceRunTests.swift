import Foundation
import XCTest
import RoleMeshControl
import Glibc
import RoleMeshTaskChannel

/// Supervised `run` processes of role services (issue 26), on real agents: started, restarted when
/// killed, logged, unhealthy when they keep dying, and with `where = "route"` only on the role's
/// route, moving with it (stopped before the old node says `left`).
final class RoleServiceRunTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() {
        // The services' processes run in process groups of their own: end any a test left.
        for n in cluster.names { if let pid = pid(n) { kill(-pid, SIGKILL) } }
        cluster.shutdown()
    }

    static let python = "/usr/bin/python3"

    /// Greets with its node's name, then echoes; listens on $ROLEMESH_PORT; writes its pid first.
    static let serve = """
    #!/bin/sh
    echo $$ > "$ROLEMESH_NODE.pid"
    echo "serving $ROLEMESH_SERVICE on $ROLEMESH_PORT"
    exec \(python) -u -c '
    import os, socket, threading
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(os.environ["ROLEMESH_PORT"])))
    s.listen(16)
    name = os.environ["ROLEMESH_NODE"].encode()
    def serve(c):
        c.sendall(name + b"\\n")
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    '
    """

    func port(_ i: Int) -> UInt16 { cluster.port + 2_500 + UInt16(i) * 100 }
    func folder(_ n: String) -> String { cluster.dir(n) + "/roles/llm" }
    func pid(_ n: String) -> pid_t? {
        (try? String(contentsOfFile: folder(n) + "/\(n).pid", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
    func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    /// node1 holds llm; node2 backs it up (when `backup`), node3 is the client.
    func setUpMesh(script: String = serve, where placement: String = "holders", backup: Bool = false) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else { throw XCTSkip("\(Self.python) is not installed") }
        try cluster.create(3, extra: { $0 == "node1" ? ["--role", "llm"] : $0 == "node2" && backup ? ["--backup", "llm"] : [] })
        let nodes: [String] = backup ? ["node1", "node2"] : ["node1"]
        for (i, n) in nodes.enumerated() {
            try FileManager.default.createDirectory(atPath: folder(n), withIntermediateDirectories: true)
            try "[api]\nport = \(port(i))\nrun = \"serve\"\nwhere = \"\(placement)\"\n".write(toFile: folder(n) + "/service.toml", atomically: true, encoding: .utf8)
            XCTAssertTrue(FileManager.default.createFile(atPath: folder(n) + "/serve", contents: Data(script.utf8), attributes: [.posixPermissions: 0o755]))
        }
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(self.cluster.names) })
    }

    func health(_ node: String) -> (String?, String?) {
        guard let r = try? cluster.cli(["services", "--json", "--dir", cluster.dir("node3")]), r.status == 0,
              let s = JSON.parse(r.stdout)?["services"]?.array?.first(where: { $0["service"]?.string == "llm/api" }),
              let n = s["nodes"]?.array?.first(where: { $0["node"]?.string == node }) else { return (nil, nil) }
        return (n["health"]?.string, n["detail"]?.string)
    }

    func stdio() throws -> String {
        try cluster.cli(["connect", "llm/api", "--stdio", "--dir", cluster.dir("node3")], stdin: Data("hello\n".utf8), timeout: 20).stdout
    }

    func testARunProcessIsStartedRestartedWhenKilledAndLogged() throws {
        try setUpMesh()
        XCTAssertTrue(waitUntil(timeout: 20) { self.health("node1").0 == "healthy" }, cluster.log("node1"))
        XCTAssertEqual(try stdio(), "node1\nhello\n")
        let first = try XCTUnwrap(pid("node1"))
        let log = try String(contentsOfFile: cluster.dir("node1") + "/state/services/llm/api.log", encoding: .utf8)
        XCTAssertTrue(log.contains("serving llm/api on \(port(0))"), log)
        kill(first, SIGKILL)
        XCTAssertTrue(waitUntil(timeout: 10) { self.pid("node1").map { $0 != first } == true }, "not restarted: \(cluster.log("node1"))")
        XCTAssertTrue(waitUntil(timeout: 10) { (try? self.stdio()) == "node1\nhello\n" })
    }

    func testAServiceThatKeepsDyingIsUnhealthyWithItsLastExitStatus() throws {
        try setUpMesh(script: "#!/bin/sh\necho $$ > \"$ROLEMESH_NODE.pid\"\nexit 3\n")
        XCTAssertTrue(waitUntil(timeout: 20) { self.health("node1") == ("unhealthy", "run exited with status 3") },
                      "\(health("node1")) \(cluster.log("node1"))")
        // It stays so while it keeps dying (the failing connects it causes do not replace the reason).
        Thread.sleep(forTimeInterval: 6)
        XCTAssertTrue(health("node1") == ("unhealthy", "run exited with status 3"), "\(health("node1"))")
    }

    func testWhereRouteRunsOnlyOnTheRoutesNodeAndMovesWithIt() throws {
        try setUpMesh(where: "route", backup: true)
        XCTAssertTrue(waitUntil(timeout: 20) { self.health("node1").0 == "healthy" }, cluster.log("node1"))
        XCTAssertEqual(try stdio(), "node1\nhello\n")
        let first = try XCTUnwrap(pid("node1"))
        XCTAssertNil(pid("node2"), "the backup started an instance while the holder is the route")
        XCTAssertNil(health("node2").0)
        // A graceful leave: node1 stops its instance before it says `left`; node2 starts one.
        let r = try cluster.cli(["leave", "--dir", cluster.dir("node1")], timeout: 40)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(alive(first), "the old route's instance outlived its agent's leave")
        XCTAssertTrue(waitUntil(timeout: 20) { self.health("node2").0 == "healthy" }, cluster.log("node2"))
        XCTAssertEqual(try stdio(), "node2\nhello\n")
    }
}
