import Foundation
import XCTest
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshStorage

/// The checks that need no agent, through `Doctor.run` on a scratch node (no traffic: no seeds).
final class DoctorTests: XCTestCase {
    var root: URL!
    var node: NodeDirectory { NodeDirectory(root: root) }

    override func setUp() {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("doctor-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: root) }

    func makeNode(listen: String = "127.0.0.2:1") throws {
        _ = try KeyStore.generate(name: "desk", in: node)
        try NodeConfig(name: "desk", listen: listen).render().write(to: node.configFile, atomically: true, encoding: .utf8)
    }

    func run() async -> DoctorReport { await Doctor.run(node) }

    func check(_ name: String, _ report: DoctorReport) -> DoctorCheck? { report.checks.first { $0.name == name } }

    func testNoNodeSaysInit() async {
        let r = await run()
        XCTAssertFalse(r.ok)
        XCTAssertEqual(r.checks.map(\.name), ["config", "clock"])
        XCTAssertEqual(check("config", r)?.fix, "rolemesh init NAME --dir \(root.path)")
    }

    func testABadConfigNamesTheKeyAndLine() async throws {
        try "name = \"desk\"\nlisten = \"127.0.0.2:1\"\nmax_task = 2\n".write(to: node.configFile, atomically: true, encoding: .utf8)
        let c = check("config", await run())
        XCTAssertEqual(c?.ok, false)
        XCTAssertTrue(c?.detail.contains("line 3") == true && c?.detail.contains("max_task") == true, c?.detail ?? "")
    }

    func testAnOpenSecretGetsChmod() async throws {
        try makeNode()
        let secret = node.secretKey("desk").path
        XCTAssertEqual(chmod(secret, 0o640), 0)
        let c = check("secret key", await run())
        XCTAssertEqual(c?.ok, false)
        XCTAssertEqual(c?.fix, "chmod 600 \(secret)")
        XCTAssertEqual(c?.detail, "\(secret) is readable by group or others (mode 640)")
        XCTAssertEqual(chmod(secret, 0o600), 0)
        let fixed = await run()
        XCTAssertEqual(check("secret key", fixed)?.ok, true)
    }

    func testAListenAddressTakenByAnotherProgramOrNotOnThisMachine() async throws {
        // Another program holds the UDP port (bound only, nothing is sent).
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = inet_addr("127.0.0.2")
        let bound = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(bound, 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        try makeNode(listen: "127.0.0.2:\(UInt16(bigEndian: sa.sin_port))")
        let taken = check("listen", await run())
        XCTAssertEqual(taken?.ok, false)
        XCTAssertTrue(taken?.detail.contains("in use by another program") == true, taken?.detail ?? "")
        XCTAssertTrue(taken?.fix?.contains("ss -ulpn") == true, taken?.fix ?? "")

        // TEST-NET-1 is nobody's address here: binding fails, nothing is sent.
        try NodeConfig(name: "desk", listen: "192.0.2.1:7946").render().write(to: node.configFile, atomically: true, encoding: .utf8)
        let foreign = check("listen", await run())
        XCTAssertEqual(foreign?.ok, false)
        XCTAssertEqual(foreign?.detail, "192.0.2.1 is not an address of this machine")
    }

    func testAStateFileFromTheFutureMeansTheClockWentBack() async throws {
        try makeNode()
        let before = await run()
        XCTAssertEqual(check("clock", before)?.ok, true)
        try FileManager.default.createDirectory(at: node.stateDir, withIntermediateDirectories: true)
        let file = node.stateDir.appendingPathComponent("incarnation")
        try "3\n".write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(86_400)], ofItemAtPath: file.path)
        let c = check("clock", await run())
        XCTAssertEqual(c?.ok, false)
        XCTAssertTrue(c?.detail.contains("the clock went back") == true, c?.detail ?? "")
        XCTAssertEqual(c?.fix, "turn on time synchronisation: sudo timedatectl set-ntp true")
    }

    func testJSONHasEveryFieldAndNullFixes() async throws {
        try makeNode()
        let json = ControlJSON.string(await run())
        let parsed = JSON.parse(json)
        XCTAssertEqual(parsed?["ok"]?.bool, false, json)     // no agent runs
        for c in parsed?["checks"]?.array ?? [] {
            XCTAssertNotNil(c["name"]?.string); XCTAssertNotNil(c["ok"]?.bool); XCTAssertNotNil(c["detail"]?.string)
            XCTAssertEqual(c["fix"]?.isNull, c["ok"]?.bool == true, "\(c)")
        }
    }
}
