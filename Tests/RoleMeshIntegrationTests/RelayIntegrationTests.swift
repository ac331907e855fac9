import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc

/// Reaching a member through another (docs/contract.md, "Away from home"): three agents inside a
/// network namespace the test creates, where iptables drops everything between the laptop and the
/// pi while both reach the server.
final class RelayIntegrationTests: XCTestCase {
    var cluster: Cluster!
    var namespace: String?

    override func setUp() { cluster = Cluster(profile: "fast") }

    override func tearDown() {
        cluster.shutdown()
        if let ns = namespace { _ = try? Cluster.run("/usr/sbin/ip", ["netns", "del", ns], timeout: 10) }
    }

    func sh(_ args: [String]) throws {
        let r = try Cluster.run(args[0], Array(args.dropFirst()), timeout: 10)
        guard r.status == 0 else { throw XCTSkip("cannot set up the network namespace (\(args.joined(separator: " "))): \(r.stderr)") }
    }

    func testAMemberBehindAnotherIsReachedThroughItEndToEnd() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip"),
              FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables") else { throw XCTSkip("needs root, ip and iptables") }
        let ns = "rm11-relay-\(getpid())"
        try sh(["/usr/sbin/ip", "netns", "add", ns])
        namespace = ns
        let inNS = ["/usr/sbin/ip", "netns", "exec", ns]
        try sh(inNS + ["/usr/sbin/ip", "link", "set", "lo", "up"])
        let hosts = ["server": "127.0.0.3", "laptop": "127.0.0.4", "pi": "127.0.0.5"]
        for (a, b) in [("laptop", "pi"), ("pi", "laptop")] {
            try sh(inNS + ["/usr/sbin/iptables", "-A", "INPUT", "-s", hosts[a]!, "-d", hosts[b]!, "-j", "DROP"])
        }
        for name in ["server", "laptop", "pi"] {
            cluster.hosts[name] = hosts[name]
            let r = try cluster.cli(["init", name, "--dir", cluster.dir(name), "--listen", cluster.address(name),
                                     "--seed", cluster.address("server"), "--profile", "fast"] + (name == "pi" ? ["--role", "job"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            cluster.names.append(name)
        }
        for a in cluster.names { for b in cluster.names { cluster.trust(a, by: b) } }
        let d = cluster.dir("pi") + "/roles/job"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: d + "/hello", contents: Data("#!/bin/sh\necho \"hello from $ROLEMESH_NODE to $ROLEMESH_FROM\"\nread line\necho \"got $line\"\nexit 3\n".utf8),
                                       attributes: [.posixPermissions: 0o755]))
        for name in cluster.names { try cluster.startOne(name, wrapper: inNS) }
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.states(seenBy: "laptop")["pi"] == "alive" },
                      "laptop never heard of pi: \(cluster.states(seenBy: "laptop"))")

        // The laptop's first channel to the pi (its slot exchange when the pi came alive) finds no
        // direct path and goes through the server.
        func reach(_ node: String, seenBy observer: String) -> String? { cluster.member(node, seenBy: observer)?["reach"]?.string }
        XCTAssertTrue(waitUntil(timeout: 20) { reach("pi", seenBy: "laptop") == "via server" },
                      "laptop shows pi as \(String(describing: reach("pi", seenBy: "laptop"))): \(cluster.log("laptop"))")
        XCTAssertEqual(reach("server", seenBy: "laptop"), "direct")
        XCTAssertEqual(reach("pi", seenBy: "server"), "direct")

        let r = try cluster.cli(["submit", "--dir", cluster.dir("laptop"), "job/hello", "--to", "pi"], stdin: Data("ping\n".utf8))
        XCTAssertEqual(r.status, 3, r.stderr + cluster.log("laptop"))
        XCTAssertEqual(r.stdout, "hello from pi to laptop\ngot ping\n")
        // The pi ran it for the laptop itself (the channel is end to end): the journal says so.
        let tasks = (try? cluster.cli(["tasks", "--json", "--dir", cluster.dir("pi")])).flatMap { JSON.parse($0.stdout) }
        XCTAssertEqual(tasks?["tasks"]?.array?.first?["from"]?.string, "laptop")
        // Where it matters, the relay is said (issue 24): submit, tasks, logs and route.
        XCTAssertTrue(r.stderr.contains("job/hello goes to pi via server: no direct path from here"), r.stderr)
        let mine = (try? cluster.cli(["tasks", "--json", "--dir", cluster.dir("laptop")])).flatMap { JSON.parse($0.stdout) }
        let row = mine?["tasks"]?.array?.first { $0["node"]?.string == "pi" }
        XCTAssertEqual(row?["via"]?.string, "server", "\(String(describing: mine))")
        let table = try cluster.cli(["tasks", "--dir", cluster.dir("laptop")]).stdout
        XCTAssertTrue(table.contains("pi via server"), table)
        let logs = try cluster.cli(["logs", row?["id"]?.string ?? "?", "--dir", cluster.dir("laptop")])
        XCTAssertTrue(logs.stderr.contains("fetching the output from pi via server"), logs.stderr)
        XCTAssertEqual(logs.stdout, "hello from pi to laptop\ngot ping\n")
        let route = (try? cluster.cli(["route", "job", "--json", "--dir", cluster.dir("laptop")])).flatMap { JSON.parse($0.stdout) }
        XCTAssertEqual(route?["node"]?.string, "pi")
        XCTAssertEqual(route?["via"]?.string, "server")

        // The laptop and the pi see each other again (back home): the direct path is tried again in
        // the background 30 s after it failed, with no task needing it (issue 24: "via" stayed 53 s).
        for (a, b) in [("laptop", "pi"), ("pi", "laptop")] {
            try sh(inNS + ["/usr/sbin/iptables", "-D", "INPUT", "-s", hosts[a]!, "-d", hosts[b]!, "-j", "DROP"])
        }
        XCTAssertTrue(waitUntil(timeout: 42, interval: 0.5) { reach("pi", seenBy: "laptop") == "direct" },
                      "laptop still reaches pi \(String(describing: reach("pi", seenBy: "laptop"))): \(cluster.log("laptop"))")
        let again = try cluster.cli(["submit", "--dir", cluster.dir("laptop"), "job/hello", "--to", "pi"], stdin: Data("pong\n".utf8))
        XCTAssertEqual(again.status, 3, again.stderr)
        XCTAssertEqual(again.stdout, "hello from pi to laptop\ngot pong\n")
    }
}
