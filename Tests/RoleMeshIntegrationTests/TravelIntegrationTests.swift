import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc

/// Moving between networks (docs/contract.md, "New devices, revocation, and travelling"; README,
/// "Travelling"), with each device in a network namespace of its own, since loopback hides these
/// bugs: a laptop listening on 0.0.0.0 whose address changes, and a laptop behind a NAT router.
/// The home nodes share one namespace; the laptop has its own, joined to home by a veth pair or
/// through a router namespace that masquerades.
final class TravelIntegrationTests: XCTestCase {
    var cluster: Cluster!
    var namespaces: [String] = []
    let ip = "/usr/sbin/ip", iptables = "/usr/sbin/iptables"

    override func setUp() { cluster = Cluster(profile: "lan") }

    override func tearDown() {
        cluster.shutdown()
        for ns in namespaces { _ = try? Cluster.run(ip, ["netns", "del", ns], timeout: 10) }
    }

    func sh(_ args: [String]) throws {
        let r = try Cluster.run(args[0], Array(args.dropFirst()), timeout: 10)
        guard r.status == 0 else { throw XCTSkip("cannot set up the network namespaces (\(args.joined(separator: " "))): \(r.stderr)") }
    }

    func requireRoot() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: ip),
              FileManager.default.isExecutableFile(atPath: iptables) else { throw XCTSkip("needs root, ip and iptables") }
    }

    /// A namespace the test owns (deleted in tearDown), with its loopback up.
    func namespace(_ role: String) throws -> String {
        let ns = "rmtr-\(role)-\(getpid())"
        _ = try? Cluster.run(ip, ["netns", "del", ns], timeout: 10)
        try sh([ip, "netns", "add", ns])
        namespaces.append(ns)
        try sh([ip, "netns", "exec", ns, ip, "link", "set", "lo", "up"])
        return ns
    }

    /// A veth pair between two namespaces, each end with its addresses (CIDR) and up.
    func link(_ a: String, _ aAddrs: [String], _ b: String, _ bAddrs: [String], name: String) throws {
        let ea = "\(name)a", eb = "\(name)b"
        try sh([ip, "link", "add", ea, "netns", a, "type", "veth", "peer", "name", eb, "netns", b])
        for (ns, dev, addrs) in [(a, ea, aAddrs), (b, eb, bAddrs)] {
            for addr in addrs { try sh([ip, "netns", "exec", ns, ip, "addr", "add", addr, "dev", dev]) }
            try sh([ip, "netns", "exec", ns, ip, "link", "set", dev, "up"])
        }
    }

    /// home1 (holding `job`) and home2 in `home`, fixed addresses; the laptop on 0.0.0.0 in `laptop`,
    /// seeded with home1.
    func startMesh(home: String, laptop: String, laptopHost: String, laptopFixed: Bool = false) throws {
        cluster.hosts = ["home1": "10.77.0.1", "home2": "10.77.0.2", "laptop": laptopHost]
        for name in ["home1", "home2", "laptop"] {
            let listen = name == "laptop" && !laptopFixed ? "0.0.0.0:\(cluster.port)" : cluster.address(name)
            let r = try cluster.cli(["init", name, "--dir", cluster.dir(name), "--listen", listen,
                                     "--seed", cluster.address("home1"), "--profile", "lan"] + (name == "home1" ? ["--role", "job"] : []))
            XCTAssertEqual(r.status, 0, r.stderr)
            cluster.names.append(name)
        }
        for a in cluster.names { for b in cluster.names { cluster.trust(a, by: b) } }
        for name in cluster.names {
            try cluster.startOne(name, wrapper: [ip, "netns", "exec", name == "laptop" ? laptop : home])
        }
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(self.cluster.names) },
                      "the mesh did not come up: \(cluster.states(seenBy: "laptop")) \(cluster.log("laptop"))")
    }

    /// The whole log of `name` (the cluster's `log` keeps only its end).
    func fullLog(_ name: String) -> String {
        cluster.logs[name].flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
    }

    func suspicions(in name: String, after offset: Int) -> [String] {
        fullLog(name).dropFirst(offset).components(separatedBy: "\n").filter { $0.contains("member-suspect") || $0.contains("member-dead") }
    }

    func incarnation(of node: String, seenBy observer: String) -> Int? { cluster.member(node, seenBy: observer)?["incarnation"]?.int }

    func testALaptopOnTheUnspecifiedAddressIsFollowedWhenItsAddressChanges() throws {
        try requireRoot()
        let home = try namespace("home"), laptop = try namespace("lap")
        try link(home, ["10.77.0.1/24", "10.77.0.2/24"], laptop, ["10.77.0.5/24"], name: "rmtr\(getpid() % 10000)")
        try startMesh(home: home, laptop: laptop, laptopHost: "10.77.0.5")
        XCTAssertEqual(cluster.member("laptop", seenBy: "home1")?["address"]?.string, "10.77.0.5:\(cluster.port)")
        let before = incarnation(of: "laptop", seenBy: "home1")
        // A task from the laptop on home1 leaves a kept channel between them, from the old address.
        let script = cluster.dir("home1") + "/roles/job/hi"
        try FileManager.default.createDirectory(atPath: cluster.dir("home1") + "/roles/job", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: script, contents: Data("#!/bin/sh\necho hi from $ROLEMESH_NODE\n".utf8),
                                           attributes: [.posixPermissions: 0o755])
        let first = try cluster.cli(["submit", "job/hi", "--dir", cluster.dir("laptop")], timeout: 20)
        XCTAssertEqual(first.stdout, "hi from home1\n", first.stderr)
        let marks = Dictionary(uniqueKeysWithValues: cluster.names.map { ($0, fullLog($0).count) })

        // Another network: the old address goes, then a new one comes (as DHCP does; in that order,
        // since deleting a primary address also deletes the secondaries of its subnet).
        let dev = "rmtr\(getpid() % 10000)b"
        try sh([ip, "netns", "exec", laptop, ip, "addr", "del", "10.77.0.5/24", "dev", dev])
        try sh([ip, "netns", "exec", laptop, ip, "addr", "add", "10.77.0.99/24", "dev", dev])
        let moved = "10.77.0.99:\(cluster.port)"
        XCTAssertTrue(waitUntil(timeout: 10) {
            ["home1", "home2"].allSatisfy { self.cluster.member("laptop", seenBy: $0)?["address"]?.string == moved }
                && self.cluster.member("laptop", seenBy: "laptop")?["address"]?.string == moved
        }, "not followed within 10 s: home1 \(String(describing: cluster.member("laptop", seenBy: "home1"))), laptop log \(cluster.log("laptop"))")
        XCTAssertTrue(fullLog("laptop").contains("this device's address changed"), cluster.log("laptop"))
        // The kept channel left from the old address is dead (the kernel keeps it and says nothing):
        // the next task goes on a new one, at once, not into it (where it waited a quarter of an hour).
        let started = Date()
        let again = try cluster.cli(["submit", "job/hi", "--dir", cluster.dir("laptop")], timeout: 20)
        XCTAssertEqual(again.stdout, "hi from home1\n", "after the move: \(again.status) \(again.stderr)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "the task after the move took \(Date().timeIntervalSince(started)) s")

        // Calm afterwards: everyone alive, no suspicion anywhere, and no refutation (the laptop's
        // incarnation did not rise: an address is not an identity).
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(self.cluster.names) })
        let quietUntil = Date().addingTimeInterval(15)
        while Date() < quietUntil {
            XCTAssertTrue(cluster.allAlive(cluster.names), "\(cluster.states(seenBy: "home1")) \(cluster.states(seenBy: "laptop"))")
            _ = waitUntil(timeout: 1) { false }
        }
        for name in cluster.names {
            XCTAssertEqual(suspicions(in: name, after: marks[name]!), [], "\(name) suspected someone after the move")
        }
        XCTAssertEqual(incarnation(of: "laptop", seenBy: "home1"), before, "the laptop's incarnation rose")
        XCTAssertEqual(incarnation(of: "laptop", seenBy: "home2"), before)
    }

    func testALaptopBehindNATSeesHomeAliveAndRoutesThereEveryTime() throws {
        try requireRoot()
        let home = try namespace("home"), router = try namespace("nat"), laptop = try namespace("lap")
        let tag = "rmn\(getpid() % 10000)"
        try link(home, ["10.77.0.1/24", "10.77.0.2/24"], router, ["10.77.0.254/24"], name: tag + "h")
        try link(router, ["192.168.50.1/24"], laptop, ["192.168.50.2/24"], name: tag + "l")
        try sh([ip, "netns", "exec", laptop, ip, "route", "add", "default", "via", "192.168.50.1"])
        try sh([ip, "netns", "exec", router, "/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"])
        try sh([ip, "netns", "exec", router, iptables, "-t", "nat", "-A", "POSTROUTING", "-o", tag + "hb", "-j", "MASQUERADE"])
        // Home has no route to 192.168.50.0/24: only the router's mappings bring traffic back.
        try startMesh(home: home, laptop: laptop, laptopHost: "192.168.50.2")
        // Home reaches the laptop where its datagrams come from: the router.
        XCTAssertTrue(cluster.member("laptop", seenBy: "home1")?["address"]?.string?.hasPrefix("10.77.0.254:") == true,
                      String(describing: cluster.member("laptop", seenBy: "home1")))
        let before = incarnation(of: "laptop", seenBy: "home1")
        let marks = Dictionary(uniqueKeysWithValues: cluster.names.map { ($0, fullLog($0).count) })

        // 35 s of use (past the 30 s a NAT keeps an idle UDP mapping): every `route` from the laptop
        // finds home1, and nobody suspects anybody.
        var tries = 0, failures: [String] = []
        let end = Date().addingTimeInterval(35)
        while Date() < end {
            let r = try cluster.cli(["route", "job", "--dir", cluster.dir("laptop")])
            tries += 1
            if r.status != 0 || !r.stdout.contains("home1") { failures.append("\(r.status) \(r.stdout) \(r.stderr)") }
            _ = waitUntil(timeout: 1.5) { false }
        }
        XCTAssertGreaterThan(tries, 12)
        XCTAssertEqual(failures, [], "\(failures.count) of \(tries) routes failed")
        XCTAssertTrue(cluster.allAlive(cluster.names))
        for name in cluster.names {
            XCTAssertEqual(suspicions(in: name, after: marks[name]!), [], "\(name) suspected someone behind the NAT")
        }
        XCTAssertEqual(incarnation(of: "laptop", seenBy: "home1"), before, "the laptop's incarnation rose")
        XCTAssertEqual(incarnation(of: "home1", seenBy: "laptop"), incarnation(of: "home1", seenBy: "home2"))
    }

    func testAFixedListenAddressThatVanishesIsReportedAndTheNodeComesBackWithIt() throws {
        try requireRoot()
        let home = try namespace("home"), laptop = try namespace("lap")
        let tag = "rmf\(getpid() % 10000)"
        try link(home, ["10.77.0.1/24", "10.77.0.2/24"], laptop, ["10.77.0.5/24"], name: tag)
        try startMesh(home: home, laptop: laptop, laptopHost: "10.77.0.5", laptopFixed: true)
        let mark = fullLog("laptop").count

        try sh([ip, "netns", "exec", laptop, ip, "addr", "del", "10.77.0.5/24", "dev", tag + "b"])
        XCTAssertTrue(waitUntil(timeout: 5) { self.fullLog("laptop").contains("is no longer on this device") },
                      "the laptop said nothing: \(cluster.log("laptop"))")
        // Cut off, the laptop accuses nobody (home, which cannot hear it, rightly does).
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.states(seenBy: "home1")["laptop"] == "dead" })
        XCTAssertEqual(cluster.states(seenBy: "laptop")["home1"], "alive")
        XCTAssertEqual(suspicions(in: "laptop", after: mark), [])

        // The address returns: the same sockets work again, and the mesh heals.
        try sh([ip, "netns", "exec", laptop, ip, "addr", "add", "10.77.0.5/24", "dev", tag + "b"])
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(self.cluster.names) },
                      "not healed: \(cluster.states(seenBy: "home1")) \(cluster.log("laptop"))")
        XCTAssertTrue(fullLog("laptop").contains("is back"), cluster.log("laptop"))
        for name in cluster.names {
            XCTAssertFalse(fullLog(name).contains("whose key is not trusted"), "\(name) took a trusted device for a stranger")
        }
    }
}
