import Foundation
import XCTest
import Glibc
import RoleMeshPlatform
import RoleMeshTaskChannel

/// `rolemesh service install|uninstall` as a person runs it. Nothing is enabled on this machine:
/// `--print` writes nothing, and the install tests put a stand-in systemctl first on PATH
/// and a scratch HOME, so the real service manager is never called.
final class ServiceIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster() }
    override func tearDown() { cluster.shutdown() }

    var scratch: URL { cluster.root }

    /// A node made with a relative --dir, as `rolemesh init` from a home folder would.
    func makeNode() throws -> String {
        let r = try Cluster.run(Cluster.binary, ["init", "svc1", "--dir", "node", "--listen", "127.0.0.2:\(cluster.port)"],
                                timeout: 20, directory: scratch)
        XCTAssertEqual(r.status, 0, r.stderr)
        return scratch.appendingPathComponent("node").path
    }

    func testPrintShowsTheUserUnitAndWritesNothing() throws {
        let dir = try makeNode()
        let home = scratch.appendingPathComponent("home").path
        let r = try Cluster.run(Cluster.binary, ["service", "install", "--print", "--dir", "node"],
                                timeout: 20, environment: ["HOME": home, "PATH": "/nonexistent"], directory: scratch)
        XCTAssertEqual(r.status, 0, r.stderr)
        let binary = URL(fileURLWithPath: Cluster.binary).resolvingSymlinksInPath().path
        let lines = Set(r.stdout.split(separator: "\n").map(String.init))
        for expected in ["ExecStart=\(binary) agent --dir \(dir)", "Restart=on-failure", "KillSignal=SIGTERM",
                         "StandardError=journal", "WantedBy=default.target"] {
            XCTAssertTrue(lines.contains(expected), "missing \(expected) in:\n\(r.stdout)")
        }
        XCTAssertFalse(r.stdout.contains("User="), "a user unit runs as its user")
        XCTAssertFalse(FileManager.default.fileExists(atPath: home), "--print must write nothing")
        // Where it would go and what would run, on stderr (stdout stays the unit alone).
        XCTAssertTrue(r.stderr.contains("would write \(home)/.config/systemd/user/rolemesh-svc1.service, then run "
                                        + "`systemctl --user daemon-reload && systemctl --user enable --now rolemesh-svc1.service`"), r.stderr)
        try verify(r.stdout, name: "rolemesh-svc1.service")
    }

    /// A newline in a path written into the unit would add lines such as `ExecStartPre=` (issue 24):
    /// refused, nothing printed or written.
    func testAControlCharacterInThePathIsRefused() throws {
        let evil = scratch.appendingPathComponent("node\nExecStartPre=/bin/sh -c id").path
        let made = try cluster.cli(["init", "svc2", "--dir", evil, "--listen", "127.0.0.2:\(cluster.port)"])
        XCTAssertEqual(made.status, 0, made.stderr)
        for args in [["service", "install", "--print", "--dir", evil], ["service", "install", "--dir", evil]] {
            let r = try cluster.cli(args)
            XCTAssertEqual(r.status, 64, r.stderr)
            XCTAssertEqual(r.stdout, "")
            XCTAssertTrue(r.stderr.contains("control character"), r.stderr)
            XCTAssertFalse(r.stderr.contains("\n\n"), "the path is shown escaped")
        }
    }

    func testPrintSystemUnitRunsAsTheNodesOwner() throws {
        _ = try makeNode()
        let r = try cluster.cli(["service", "install", "--system", "--print", "--dir", scratch.appendingPathComponent("node").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let owner = String(cString: getpwuid(geteuid())!.pointee.pw_name)
        XCTAssertTrue(r.stdout.contains("\nUser=\(owner)\n"), r.stdout)
        XCTAssertTrue(r.stdout.contains("\nWantedBy=multi-user.target\n"), r.stdout)
        try verify(r.stdout, name: "rolemesh-svc1.service")
    }

    /// `systemd-analyze verify` on the unit, where it exists and can run here.
    func verify(_ unit: String, name: String) throws {
        guard let tool = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("skipped: systemd-analyze is not installed, the unit was not verified")
            return
        }
        let folder = scratch.appendingPathComponent("verify")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent(name)
        try unit.write(to: file, atomically: true, encoding: .utf8)
        // --man=no: the man page is not installed system-wide here.
        let r = try Cluster.run(tool, ["verify", "--man=no", file.path], timeout: 60)
        if r.status != 0, r.stderr.contains("Failed to initialize manager") {
            print("skipped: systemd-analyze cannot run here (\(r.stderr.split(separator: "\n").last ?? ""))")
            return
        }
        XCTAssertEqual(r.status, 0, "systemd-analyze verify: \(r.stderr)")
        XCTAssertEqual(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines), "", "systemd-analyze verify warns")
    }

    /// A stand-in systemctl that records its arguments and answers `is-system-running` (with
    /// "running", or when failing with systemd's "Failed to connect to bus").
    func fakeSystemctl(exit: Int32 = 0) throws -> (path: String, calls: URL) {
        let bin = scratch.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        let calls = scratch.appendingPathComponent("calls")
        let script = "#!/bin/sh\necho \"$@\" >> '\(calls.path)'\n"
            + (exit == 0 ? "case \"$*\" in *is-system-running) echo running;; esac\n" : "echo 'Failed to connect to bus' >&2\nexit \(exit)\n")
        let tool = bin.appendingPathComponent("systemctl")
        try script.write(to: tool, atomically: true, encoding: .utf8)
        chmod(tool.path, 0o755)
        return (bin.path, calls)
    }

    func testInstallWritesEnablesAndUninstallRemoves() throws {
        let dir = try makeNode()
        let (bin, calls) = try fakeSystemctl()
        let home = scratch.appendingPathComponent("home").path
        let env = ["HOME": home, "PATH": bin]
        let unit = home + "/.config/systemd/user/rolemesh-svc1.service"

        let install = try Cluster.run(Cluster.binary, ["service", "install", "--dir", dir], timeout: 20, environment: env)
        XCTAssertEqual(install.status, 0, install.stderr)
        let printed = try cluster.cli(["service", "install", "--print", "--dir", dir]).stdout
        XCTAssertEqual(try String(contentsOfFile: unit, encoding: .utf8), printed, "install writes what --print shows")
        XCTAssertEqual(try String(contentsOf: calls, encoding: .utf8),
                       "--user is-system-running\n--user daemon-reload\n--user enable --now rolemesh-svc1.service\n")

        let uninstall = try Cluster.run(Cluster.binary, ["service", "uninstall", "--dir", dir], timeout: 20, environment: env)
        XCTAssertEqual(uninstall.status, 0, uninstall.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: unit))
        XCTAssertTrue(try String(contentsOf: calls, encoding: .utf8)
            .hasSuffix("--user is-system-running\n--user disable --now rolemesh-svc1.service\n--user daemon-reload\n"))

        let again = try Cluster.run(Cluster.binary, ["service", "uninstall", "--dir", dir], timeout: 20, environment: env)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("no RoleMesh service is installed"), again.stderr)
    }

    /// Without a working systemd (none on the machine, or no user manager for this shell) install
    /// writes nothing and says what to do instead, in one sentence; uninstall then just removes the
    /// file (issue 24: it wrote the unit, exited 1, and uninstall said it "is still installed").
    func testWithoutAWorkingSystemdInstallWritesNothingAndUninstallRemovesTheFile() throws {
        let dir = try makeNode()
        let home = scratch.appendingPathComponent("home").path
        let unit = home + "/.config/systemd/user/rolemesh-svc1.service"

        let missing = try Cluster.run(Cluster.binary, ["service", "install", "--dir", dir], timeout: 20,
                                      environment: ["HOME": home, "PATH": scratch.appendingPathComponent("empty").path])
        XCTAssertEqual(missing.status, 69, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("no service was installed: systemctl was not found: this machine has no systemd"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("run `rolemesh agent --dir \(dir)`"), missing.stderr)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, "one sentence: \(missing.stderr)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: unit), "nothing may be written")

        let (bin, _) = try fakeSystemctl(exit: 1)
        let failing = try Cluster.run(Cluster.binary, ["service", "install", "--dir", dir], timeout: 20,
                                      environment: ["HOME": home, "PATH": bin])
        XCTAssertEqual(failing.status, 69, failing.stderr)
        XCTAssertTrue(failing.stderr.contains("no systemd user manager answers") && failing.stderr.contains("Failed to connect to bus")
                      && failing.stderr.contains("not su or sudo"), failing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: unit))

        // A unit left from a machine that had systemd: uninstall removes the file and says so.
        try FileManager.default.createDirectory(atPath: home + "/.config/systemd/user", withIntermediateDirectories: true)
        try "[Unit]\n".write(toFile: unit, atomically: true, encoding: .utf8)
        let gone = try Cluster.run(Cluster.binary, ["service", "uninstall", "--dir", dir], timeout: 20,
                                   environment: ["HOME": home, "PATH": scratch.appendingPathComponent("empty").path])
        XCTAssertEqual(gone.status, 0, gone.stderr)
        XCTAssertTrue(gone.stdout.contains("removed \(unit) (systemctl was not found: this machine has no systemd, so nothing was stopped or disabled)"), gone.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: unit))
    }

    func testInstallWithoutANodeIsBadConfiguration() throws {
        let r = try cluster.cli(["service", "install", "--print", "--dir", scratch.appendingPathComponent("none").path])
        XCTAssertEqual(r.status, 78)
        XCTAssertTrue(r.stderr.contains("rolemesh init"), r.stderr)
    }
}
