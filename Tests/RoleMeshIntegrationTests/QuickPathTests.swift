import Foundation
import XCTest
import RoleMeshAgent

/// `QuickCommand` and ArgumentParser run the same code: the same words give the same output and
/// exit status either way (`ROLEMESH_QUICK=0` turns the quick path off).
final class QuickPathTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func both(_ args: [String], stdin: String? = nil) throws -> (quick: Cluster.Result, parsed: Cluster.Result) {
        var env = ProcessInfo.processInfo.environment
        env[QuickCommand.switchName] = nil
        let quick = try Cluster.run(Cluster.binary, args, stdin: stdin.map { Data($0.utf8) }, environment: env)
        env[QuickCommand.switchName] = "0"
        let parsed = try Cluster.run(Cluster.binary, args, stdin: stdin.map { Data($0.utf8) }, environment: env)
        return (quick, parsed)
    }

    func assertSame(_ args: [String], stdin: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let (q, p) = try both(args, stdin: stdin)
        XCTAssertEqual(q.status, p.status, "\(args)", file: file, line: line)
        XCTAssertEqual(q.stdout, p.stdout, "\(args)", file: file, line: line)
        XCTAssertEqual(q.stderr, p.stderr, "\(args)", file: file, line: line)
    }

    func testBothPathsGiveTheSameOutputAndStatus() throws {
        let nodes = try cluster.create(2, extra: { $0 == "node2" ? ["--role", "job"] : [] })
        let d = cluster.dir("node2") + "/roles/job"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: d + "/args", contents: Data("#!/bin/sh\nprintf '%s|' \"$@\"; cat; echo >&2 err; exit 3\n".utf8),
                                       attributes: [.posixPermissions: 0o755])
        let dir1 = cluster.dir("node1")
        try assertSame(["--version"])
        // No agent yet: the same sentence and exit status.
        try assertSame(["status", "--dir", dir1])
        try assertSame(["--dir", dir1, "status", "--json"])
        try assertSame(["submit", "job/args", "--dir", dir1])
        try cluster.start()
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        try assertSame(["submit", "--dir", dir1, "job/args", "--", "a b", "--c"], stdin: "in\n")
        try assertSame(["submit", "--dir=\(dir1)", "job/none"])
        try assertSame(["submit", "--heavy", "--dir", dir1, "nobody/args"])
        let (q, p) = try both(["submit", "--detach", "--dir", dir1, "job/args"])
        XCTAssertEqual(q.status, 0, q.stderr)
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(q.stdout.count, p.stdout.count, "an id alone: \(q.stdout) / \(p.stdout)")
    }
}
