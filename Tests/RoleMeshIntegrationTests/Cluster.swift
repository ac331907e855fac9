import Foundation
import XCTest
import RoleMeshAgent
import Glibc

/// Real `rolemesh agent` processes on 127.0.0.x addresses, each in its own node directory.
/// Every process it starts is ended by PID in `shutdown()`.
final class Cluster {
    static let binary: String = {
        if let env = ProcessInfo.processInfo.environment["ROLEMESH_BIN"] { return env }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [dir.appendingPathComponent("rolemesh"),
                          dir.deletingLastPathComponent().appendingPathComponent("rolemesh")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }?.path ?? "rolemesh"
    }()

    /// Each cluster gets its own port so a test never meets a straggler of another.
    /// Below Linux's ephemeral range (32768-60999): an agent's outgoing task connection, bound to
    /// its host, could otherwise hold the very port a later cluster listens on ("address in use").
    nonisolated(unsafe) static var nextPort: UInt16 = UInt16(20_000 + (getpid() % 1_000) * 10)

    let root: URL
    let port: UInt16
    let profile: String
    var names: [String] = []
    var hosts: [String: String] = [:]
    var processes: [String: Process] = [:]
    var logs: [String: URL] = [:]

    init(profile: String = "fast") {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("rm-it-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        port = Cluster.nextPort
        Cluster.nextPort += 1
        self.profile = profile
    }

    func dir(_ name: String) -> String { root.appendingPathComponent(name).path }
    func address(_ name: String) -> String { "\(hosts[name]!):\(port)" }

    /// Creates nodes n on 127.0.0.(first+i), all seeding the first, all trusting each other.
    /// `introducers`: written into every node's node.toml (each `init` makes a mesh of its own, so
    /// nodes set up by hand accept none but themselves until told whose statements count).
    @discardableResult
    /// `host(i)`: node i's address (0-based) instead of 127.0.x.y (nodes in namespaces of their own).
    func create(_ count: Int, prefix: String = "node", firstHost: Int = 2, extra: (String) -> [String] = { _ in [] },
                trustAll: Bool = true, introducers: [String]? = nil, host: ((Int) -> String)? = nil) throws -> [String] {
        var created: [String] = []
        for i in 0..<count {
            let name = "\(prefix)\(i + 1)"
            hosts[name] = host?(i) ?? "127.0.\((firstHost + i) / 250).\((firstHost + i) % 250 + 1)"
            let seed = names.first.map(address) ?? address(name)
            let r = try cli(["init", name, "--dir", dir(name), "--listen", address(name), "--seed", seed, "--profile", profile] + extra(name))
            XCTAssertEqual(r.status, 0, r.stderr)
            names.append(name)
            created.append(name)
        }
        if let introducers {
            for n in created { setIntroducers(introducers.isEmpty ? [] : introducers == ["*"] ? names : introducers, on: n) }
        }
        if trustAll { for a in names { for b in names { trust(a, by: b) } } }
        return created
    }

    /// `introducers = [...]` in `node`'s node.toml (`["*"]` in `create`: every node created).
    func setIntroducers(_ list: [String], on node: String) {
        let path = dir(node) + "/node.toml"
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let line = "introducers = [" + list.map { "\"\($0)\"" }.joined(separator: ", ") + "]\n"
        try? (text + line).write(toFile: path, atomically: true, encoding: .utf8)
    }

    func trust(_ node: String, by other: String) {
        let src = URL(fileURLWithPath: dir(node)).appendingPathComponent("keys/\(node).pub")
        let dst = URL(fileURLWithPath: dir(other)).appendingPathComponent("keys/\(node).pub")
        if node != other, !FileManager.default.fileExists(atPath: dst.path) { try? FileManager.default.copyItem(at: src, to: dst) }
    }

    func distrust(_ node: String, by other: String) {
        try? FileManager.default.removeItem(atPath: dir(other) + "/keys/\(node).pub")
    }

    func start(_ names: [String]? = nil) throws {
        for n in names ?? self.names { try startOne(n) }
    }

    /// `wrapper`: a command that execs the agent (same PID), e.g. `["/usr/bin/prlimit", "--nofile=64:64"]`.
    /// `binary`: another `rolemesh` (the previous release's, for the mixed-version test).
    func startOne(_ name: String, environment: [String: String] = [:], wrapper: [String] = [], arguments: [String] = [],
                  binary: String = Cluster.binary) throws {
        let p = Process()
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let command = wrapper + [binary, "agent", "--dir", dir(name)] + arguments
        p.executableURL = URL(fileURLWithPath: command[0])
        p.arguments = Array(command.dropFirst())
        let log = root.appendingPathComponent("\(name).log")
        XCTAssertTrue(FileManager.default.createFile(atPath: log.path, contents: nil))
        let h = try FileHandle(forWritingTo: log)
        h.seekToEndOfFile()
        p.standardError = h
        p.standardOutput = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        processes[name] = p
        logs[name] = log
        // Ready when its control socket answers.
        XCTAssertTrue(waitUntil(timeout: 10) { self.statusJSON(name) != nil }, "agent \(name) did not start: \(self.log(name))")
    }

    func pid(_ name: String) -> Int32? { processes[name]?.processIdentifier }

    func signal(_ name: String, _ sig: Int32) {
        guard let p = processes[name], p.isRunning else { return }
        kill(p.processIdentifier, sig)
    }

    /// SIGKILL and reap.
    func crash(_ name: String) {
        signal(name, SIGKILL)
        processes[name]?.waitUntilExit()
        processes[name] = nil
    }

    func waitForExit(_ name: String, timeout: Double = 10) -> Int32? {
        guard let p = processes[name] else { return nil }
        let ok = waitUntil(timeout: timeout) { !p.isRunning }
        guard ok else { return nil }
        processes[name] = nil
        return p.terminationStatus
    }

    func shutdown() {
        for (_, p) in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        processes = [:]
        guard ProcessInfo.processInfo.environment["KEEP_TEST_DIRS"] == nil else { return }
        // A task an agent started may outlive it for a moment and still write into the folder
        // (a slot's run appending to a log there), which fails the removal half-way and leaves an
        // empty folder behind: try again, bounded.
        for _ in 0..<10 {
            try? FileManager.default.removeItem(at: root)
            if !FileManager.default.fileExists(atPath: root.path) { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// A cluster replaced without `shutdown()` (a test that swaps setUp's for another profile)
    /// must not leave its folder behind in the temporary directory.
    deinit { shutdown() }

    func log(_ name: String) -> String {
        logs[name].flatMap { try? String(contentsOf: $0, encoding: .utf8) }.map { String($0.suffix(3000)) } ?? ""
    }

    // MARK: - Looking at the mesh as a user does

    func statusJSON(_ name: String) -> JSON? {
        guard let r = try? cli(["status", "--json", "--dir", dir(name)]), r.status == 0 else { return nil }
        return JSON.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// member name → state, as `name` sees the mesh.
    func states(seenBy name: String) -> [String: String] {
        var out: [String: String] = [:]
        for m in statusJSON(name)?["members"]?.array ?? [] {
            if let n = m["name"]?.string, let s = m["state"]?.string { out[n] = s }
        }
        return out
    }

    func member(_ node: String, seenBy name: String) -> JSON? {
        statusJSON(name)?["members"]?.array?.first { $0["name"]?.string == node }
    }

    func everyone(_ observers: [String], sees node: String, as state: String) -> Bool {
        observers.allSatisfy { states(seenBy: $0)[node] == state }
    }

    func allAlive(_ nodes: [String]) -> Bool {
        nodes.allSatisfy { o in
            let s = states(seenBy: o)
            return nodes.allSatisfy { s[$0] == "alive" }
        }
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs the CLI, as a person would, with optional stdin.
    @discardableResult
    func cli(_ args: [String], stdin: Data? = nil, timeout: Double = 60) throws -> Result {
        try Cluster.run(Cluster.binary, args, stdin: stdin, timeout: timeout)
    }

    static func run(_ path: String, _ args: [String], stdin: Data? = nil, timeout: Double = 60,
                    environment: [String: String]? = nil, directory: URL? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        if let directory { p.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let inPipe = Pipe()
        p.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
        try p.run()
        if let stdin { feed(inPipe, stdin) }
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let timer = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        timer.cancel()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// Writes `data` to a child's stdin pipe in the background, then closes it. A child that exits
/// before reading (a command refused early) must fail its own test, not kill this whole test
/// process with SIGPIPE while a later test runs: the write's error is ignored, and so is SIGPIPE.
func feed(_ pipe: Pipe, _ data: Data) {
    _ = ignoreSIGPIPE
    DispatchQueue.global().async {
        try? pipe.fileHandleForWriting.write(contentsOf: data)
        try? pipe.fileHandleForWriting.close()
    }
}

private let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

/// Polls `condition` until it holds or `timeout` seconds pass. Bounded in time and count.
@discardableResult
func waitUntil(timeout: Double, interval: Double = 0.1, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: interval)
    }
    return condition()
}
