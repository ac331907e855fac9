import RoleMeshPlatform
import Foundation
import RoleMeshAgent

// Starting and ending child processes (always by PID), and reading /proc.

/// Everything the bench must undo on any exit path: child PIDs, temp dirs, namespaces.
final class Cleanup: Sendable {
    static let shared = Cleanup()
    private struct State {
        var pids: [pid_t: String] = [:]
        var dirs: [String] = []
        var namespaces: [String] = []
    }
    private let state = Locked(State())

    func track(_ pid: pid_t, _ label: String) { state.withLock { $0.pids[pid] = label } }
    func untrack(_ pid: pid_t) { state.withLock { $0.pids[pid] = nil } }
    func addDir(_ d: String) { state.withLock { $0.dirs.append(d) } }
    func removeDir(_ d: String) {
        try? FileManager.default.removeItem(atPath: d)
        state.withLock { $0.dirs.removeAll { $0 == d } }
    }
    func addNamespace(_ n: String) { state.withLock { $0.namespaces.append(n) } }
    func forgetNamespace(_ n: String) { state.withLock { $0.namespaces.removeAll { $0 == n } } }

    /// SIGKILL every tracked child by PID, reap it, delete namespaces and temp dirs.
    func runAll() {
        let (p, d, n) = state.withLock { s in
            defer { s.pids = [:]; s.dirs = []; s.namespaces = [] }
            return (s.pids, s.dirs, s.namespaces)
        }
        for pid in p.keys { kill(pid, SIGKILL) }
        for pid in p.keys { _ = reap(pid, timeout: 3) }
        for ns in n { Netns.delete(ns) }
        for dir in d { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Ctrl-C, SIGTERM, SIGHUP: clean up, then `end` (main.swift's: exit 130/143/129). Keep the
    /// sources returned for the bench's life (a released source stops delivering).
    func installSignalHandlers(then end: @escaping @Sendable (Int32) -> Never) -> [any DispatchSourceSignal] {
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                note("signal \(sig): stopping every child and cleaning up")
                Cleanup.shared.runAll()
                end(sig)
            }
            s.resume()
            sources.append(s)
        }
        return sources
    }
}

/// glibc functions Swift does not import (they need _GNU_SOURCE), looked up at run time.
enum GNU {
    private static func sym(_ name: String) -> UnsafeMutableRawPointer? { dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) }
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias GetCPU = @convention(c) () -> Int32
    typealias SetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32
    static let pipe2: Pipe2? = sym("pipe2").map { unsafeBitCast($0, to: Pipe2.self) }
    static let getcpu: GetCPU? = sym("sched_getcpu").map { unsafeBitCast($0, to: GetCPU.self) }
    static let setAffinity: SetAffinity? = sym("sched_setaffinity").map { unsafeBitCast($0, to: SetAffinity.self) }
}

/// A pipe whose two ends close on exec, so no other child inherits them.
func cloexecPipe(_ fds: inout [Int32]) -> Int32 {
    guard let p2 = GNU.pipe2 else { return -1 }
    return fds.withUnsafeMutableBufferPointer { p2($0.baseAddress!, O_CLOEXEC) }
}

/// Finds an executable on $PATH (plus the sbin directories, where `ip` and `iptables` live).
func findTool(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
        let p = dir + "/" + name
        if access(p, X_OK) == 0 { return p }
    }
    return nil
}

/// This binary (`scale` runs each size in a child of its own).
let benchBinary: String = {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    return n > 0 ? String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}()

/// The `rolemesh` binary built next to this one, or the one `ROLEMESH_BENCH_BINARY` names (the
/// packaged build, whose start-up is what a device sees).
let rolemeshBinary: String = ProcessInfo.processInfo.environment["ROLEMESH_BENCH_BINARY"]
    ?? URL(fileURLWithPath: benchBinary).deletingLastPathComponent().appendingPathComponent("rolemesh").path

/// `setpriv --pdeathsig KILL`: a long-lived child dies with the bench even if the bench is SIGKILLed.
/// The death signal fires when the spawning *thread* exits, so it is used only from the main thread.
let setprivPath = findTool("setpriv")

enum ChildOutput {
    case null
    case file(String)       // appended
    case fd(Int32)          // dup2'd; caller owns it
}

/// posix_spawn with stdin from /dev/null, its own process group, default signal dispositions.
/// The PID is tracked by `Cleanup` until `reap` or `killAndReap`.
func spawn(_ path: String, _ args: [String], stdout: ChildOutput = .null, stderr: ChildOutput = .null,
           label: String, dieWithBench: Bool = false) throws -> pid_t {
    var argv = [path] + args
    var exe = path
    if dieWithBench, let sp = setprivPath, Thread.isMainThread {
        argv = [sp, "--pdeathsig", "KILL", "--"] + argv
        exe = sp
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    func wire(_ o: ChildOutput, _ target: Int32) {
        switch o {
        case .null: posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0)
        case .file(let p): posix_spawn_file_actions_addopen(&actions, target, p, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        case .fd(let fd): posix_spawn_file_actions_adddup2(&actions, fd, target)
        }
    }
    wire(stdout, 1)
    wire(stderr, 2)

    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attr, &defaults)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setpgroup(&attr, 0)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

    let cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, exe, &actions, &attr, cargs, environ)
    guard rc == 0 else { throw BenchError("cannot start \(exe): \(String(cString: strerror(rc)))") }
    Cleanup.shared.track(pid, label)
    return pid
}

/// Waits (bounded) for `pid` to exit; its exit status, or nil if it is still running.
func reap(_ pid: pid_t, timeout: Double) -> Int32? {
    let deadline = monoNow() + timeout
    for _ in 0..<Int(timeout * 200 + 2) {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid || (r < 0 && errno == ECHILD) {
            Cleanup.shared.untrack(pid)
            if r < 0 { return -1 }
            // WIFEXITED / WEXITSTATUS by hand (the macros are not imported).
            return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
        if monoNow() >= deadline { break }
        sleepSeconds(0.005)
    }
    return nil
}

/// Whether `pid` is still running (reaps it if it has exited).
func isRunning(_ pid: pid_t) -> Bool { reap(pid, timeout: 0) == nil }

func killAndReap(_ pid: pid_t, _ sig: Int32 = SIGKILL) {
    kill(pid, sig)
    if reap(pid, timeout: 5) == nil {
        kill(pid, SIGKILL)
        _ = reap(pid, timeout: 5)
    }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool
}

/// Runs a command to completion, capturing its output; killed (by PID) after `timeout` seconds.
func run(_ path: String, _ args: [String], timeout: Double = 30, label: String? = nil) -> RunResult {
    var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
    guard cloexecPipe(&outPipe) == 0 else { return RunResult(status: -1, stdout: "", stderr: "pipe failed", timedOut: false) }
    guard cloexecPipe(&errPipe) == 0 else {
        close(outPipe[0]); close(outPipe[1])
        return RunResult(status: -1, stdout: "", stderr: "pipe failed", timedOut: false)
    }
    let pid: pid_t
    do {
        pid = try spawn(path, args, stdout: .fd(outPipe[1]), stderr: .fd(errPipe[1]), label: label ?? path)
    } catch {
        for fd in outPipe + errPipe { close(fd) }
        return RunResult(status: -1, stdout: "", stderr: "\(error)", timedOut: false)
    }
    close(outPipe[1]); close(errPipe[1])
    var out = [UInt8](), err = [UInt8]()
    var open = [outPipe[0], errPipe[0]]
    let deadline = monoNow() + timeout
    var timedOut = false
    var buf = [UInt8](repeating: 0, count: 65_536)
    while !open.isEmpty {
        let left = deadline - monoNow()
        if left <= 0 { timedOut = true; break }
        var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let r = poll(&fds, nfds_t(fds.count), Int32(min(left, 1) * 1000) + 1)
        if r < 0 && errno != EINTR { break }
        for f in fds where f.revents != 0 {
            let n = buf.withUnsafeMutableBytes { read(f.fd, $0.baseAddress, $0.count) }
            if n > 0 {
                if f.fd == outPipe[0] { out += buf[0..<n] } else { err += buf[0..<n] }
            } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                close(f.fd)
                open.removeAll { $0 == f.fd }
            }
        }
    }
    for fd in open { close(fd) }
    if timedOut { kill(pid, SIGKILL) }
    var status = reap(pid, timeout: timedOut ? 5 : max(1, deadline - monoNow()))
    if status == nil { kill(pid, SIGKILL); status = reap(pid, timeout: 5) }
    return RunResult(status: status ?? -1, stdout: String(decoding: out, as: UTF8.self),
                     stderr: String(decoding: err, as: UTF8.self), timedOut: timedOut || status == nil)
}

/// A child whose stdout is read line by line on a thread; each line is stamped on arrival.
final class LineStream: Sendable {
    let pid: pid_t
    let label: String
    private let fd: Int32
    private let state = Locked<(lines: [(time: Double, text: String)], ended: Bool)>(([], false))
    private static let maxLines = 100_000

    init(_ path: String, _ args: [String], label: String, stderr: ChildOutput = .null) throws {
        var p: [Int32] = [-1, -1]
        guard cloexecPipe(&p) == 0 else { throw BenchError("pipe failed") }
        do {
            pid = try spawn(path, args, stdout: .fd(p[1]), stderr: stderr, label: label, dieWithBench: true)
        } catch {
            close(p[0]); close(p[1]); throw error
        }
        close(p[1])
        fd = p[0]
        self.label = label
        let t = Thread { [self] in self.readLoop() }
        t.start()
    }

    private func readLoop() {
        var pending = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let now = monoNow()
            pending += buf[0..<n]
            while let nl = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeSubrange(...nl)
                state.withLock { if $0.lines.count < Self.maxLines { $0.lines.append((now, line)) } }
            }
        }
        close(fd)
        state.withLock { $0.ended = true }
    }

    var lines: [(time: Double, text: String)] { state.withLock { $0.lines } }
    var ended: Bool { state.withLock { $0.ended } }

    /// Ends the child by PID; the reader thread then sees end of file and exits.
    func stop() {
        killAndReap(pid)
        _ = waitUntil(timeout: 2, interval: 0.01) { self.ended }
    }
}

// MARK: - /proc

enum ProcFS {
    static let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of a process, in seconds.
    static func cpuSeconds(_ pid: pid_t) -> Double? {
        guard let s = readFile("/proc/\(pid)/stat"), let close = s.lastIndex(of: ")") else { return nil }
        let fields = s[s.index(after: close)...].split(separator: " ")
        // After "pid (comm)": fields[0] is state (field 3); utime is field 14, stime field 15.
        guard fields.count > 12, let u = Double(fields[11]), let k = Double(fields[12]) else { return nil }
        return (u + k) / clockTicks
    }

    static func state(_ pid: pid_t) -> String? {
        guard let s = readFile("/proc/\(pid)/stat"), let close = s.lastIndex(of: ")") else { return nil }
        return s[s.index(after: close)...].split(separator: " ").first.map(String.init)
    }

    /// VmRSS in MiB.
    static func rssMiB(_ pid: pid_t) -> Double? { kB("VmRSS", in: "/proc/\(pid)/status").map { $0 / 1024 } }

    /// A "Field:   1234 kB" line of /proc/PID/status or /proc/meminfo. The number is padded to 8
    /// columns, so from 10 GB on nothing but a tab separates it from the name.
    static func kB(_ field: String, in path: String) -> Double? {
        guard let s = readFile(path) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix(field + ":") {
            let parts = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return parts.first.flatMap { Double($0) }
        }
        return nil
    }

    /// Open sockets of a process (count of fds that are sockets).
    static func socketCount(_ pid: pid_t) -> Int {
        let dir = "/proc/\(pid)/fd"
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return 0 }
        // Only Unix-domain sockets (the control socket and its connections): the agent's TCP task and
        // slot connections come and go on their own, slowly under packet loss, and would blur the count.
        // A connection's server end lives in the *client's* namespace (the bench's), not the agent's.
        let unix = unixSocketInodes("/proc/\(pid)/net/unix").union(unixSocketInodes("/proc/self/net/unix"))
        var n = 0
        var buf = [CChar](repeating: 0, count: 256)
        for f in fds {
            let len = readlink(dir + "/" + f, &buf, buf.count - 1)
            guard len > 9 else { continue }
            let link = String(decoding: buf[0..<len].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard link.hasPrefix("socket:["), link.hasSuffix("]") else { continue }
            if unix.contains(String(link.dropFirst(8).dropLast())) { n += 1 }
        }
        return n
    }

    /// Inodes of the Unix-domain sockets a /proc/…/net/unix file lists (column 7).
    static func unixSocketInodes(_ path: String) -> Set<String> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var out: Set<String> = []
        for line in text.split(separator: "\n").dropFirst() {
            let cols = line.split(separator: " ", omittingEmptySubsequences: true)
            if cols.count >= 7 { out.insert(String(cols[6])) }
        }
        return out
    }

    /// The Udp line of /proc/[pid]/net/snmp (the network namespace of `pid`, or ours).
    static func udp(_ pid: pid_t? = nil) -> [String: Double] { snmp("Udp", pid) }

    /// TCP counters (`OutSegs`, `ActiveOpens`, ...) from /proc/[pid]/net/snmp.
    static func tcp(_ pid: pid_t? = nil) -> [String: Double] { snmp("Tcp", pid) }

    static func snmp(_ proto: String, _ pid: pid_t?) -> [String: Double] {
        guard let s = readFile(pid.map { "/proc/\($0)/net/snmp" } ?? "/proc/net/snmp") else { return [:] }
        let lines = s.split(separator: "\n").filter { $0.hasPrefix(proto + ": ") }
        guard lines.count >= 2 else { return [:] }
        let keys = lines[0].split(separator: " ").dropFirst(), vals = lines[1].split(separator: " ").dropFirst()
        var out: [String: Double] = [:]
        for (k, v) in zip(keys, vals) { out[String(k)] = Double(v) }
        return out
    }

    /// Loopback counters from /proc/[pid]/net/dev: (rx bytes, rx packets, tx bytes, tx packets).
    static func loopback(_ pid: pid_t? = nil) -> (rxBytes: Double, rxPackets: Double, txBytes: Double, txPackets: Double)? {
        guard let s = readFile(pid.map { "/proc/\($0)/net/dev" } ?? "/proc/net/dev") else { return nil }
        for line in s.split(separator: "\n") {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("lo:") else { continue }
            let f = t.dropFirst(3).split(separator: " ").compactMap { Double($0) }
            guard f.count >= 10 else { return nil }
            return (f[0], f[1], f[8], f[9])
        }
        return nil
    }
}
