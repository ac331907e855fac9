import RoleMeshPlatform
import Foundation
import Synchronization
import RoleMeshAgent
import RoleMeshStorage
import RoleMeshTaskChannel

/// A temporary directory under /tmp, removed on every exit path.
func makeTempRoot(_ label: String) throws -> String {
    let path = "/tmp/rmbench-\(getpid())-\(label)"
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    Cleanup.shared.addDir(path)
    return path
}

/// Ports: the integration tests use 20000–39999 on 127.0.0.x; the bench stays above, on 127.0.1xx.x.
private let nextPortCounter = Atomic(0)
func freshPort() -> UInt16 {
    let n = nextPortCounter.add(1, ordering: .relaxed).newValue
    return UInt16(41_000 + Int(getpid() % 300) * 40 + n % 40)
}

/// N real `rolemesh agent` processes on 127.0.<octet>.<i+1>, all seeding node1, all trusting each other.
final class Mesh {
    let root: String
    let profile: String
    let port: UInt16
    let octet: Int
    let netns: String?
    private(set) var names: [String] = []
    private(set) var pids: [String: pid_t] = [:]
    private var watchers: [String: LineStream] = [:]

    /// `extra(i)` gives more `init` flags for node i (1-based), e.g. `--role svc`.
    init(label: String, count: Int, profile: String, octet: Int, netns: String? = nil,
         extra: (Int) -> [String] = { _ in [] }) throws {
        root = try makeTempRoot(label)
        self.profile = profile
        self.port = freshPort()
        self.octet = octet
        self.netns = netns
        for i in 1...count {
            let name = "node\(i)"
            let args = ["init", name, "--dir", dir(name), "--listen", address(i), "--seed", address(1),
                        "--profile", profile] + extra(i)
            let r = run(rolemeshBinary, args, timeout: 30)
            guard r.status == 0 else { throw BenchError("rolemesh init \(name) failed (\(r.status)): \(r.stderr)") }
            names.append(name)
        }
        for a in names {
            let src = dir(a) + "/keys/\(a).pub"
            for b in names where b != a {
                try FileManager.default.copyItem(atPath: src, toPath: dir(b) + "/keys/\(a).pub")
            }
        }
    }

    func dir(_ name: String) -> String { root + "/" + name }

    /// Each agent reads its signals from a folder of its own with steady readings (`idle
    /// --signals steady`): N agents on one machine share one load average, which moves with their
    /// own start and with anything else running, and makes all N announce a new load at once — no
    /// mesh of N devices does that. Load 0.25 on this machine's CPUs, memory as it is now, no battery.
    var steadySignals = false

    func steadyProbeRoot(_ name: String) throws -> String {
        let probe = dir(name) + "/probe"
        try FileManager.default.createDirectory(atPath: probe + "/proc", withIntermediateDirectories: true)
        for file in ["cpuinfo", "meminfo", "stat"] {
            let text = (try? String(contentsOfFile: "/proc/" + file, encoding: .utf8)) ?? ""
            try text.write(toFile: probe + "/proc/" + file, atomically: true, encoding: .utf8)
        }
        try "0.25 0.25 0.25 1/100 100\n".write(toFile: probe + "/proc/loadavg", atomically: true, encoding: .utf8)
        return probe
    }
    func address(_ i: Int) -> String { "127.0.\(octet).\(i + 1):\(port)" }
    func log(_ name: String) -> String { root + "/\(name).log" }

    /// Starts every agent, then waits (bounded) until each control socket answers.
    func start() throws { try start(names) }

    /// Starts these agents (again, after a leave), then waits (bounded) until each control socket answers.
    func start(_ some: [String]) throws {
        for name in some {
            var path = rolemeshBinary
            var args = ["agent", "--dir", dir(name)]
            if steadySignals {
                args = ["ROLEMESH_PROBE_ROOT=" + (try steadyProbeRoot(name)), path] + args
                path = "/usr/bin/env"
            }
            if let netns, let ip = Netns.ipTool {
                args = ["netns", "exec", netns, path] + args
                path = ip
            }
            let pid = try spawn(path, args, stdout: .file(log(name)), stderr: .file(log(name)),
                                label: "agent \(name)", dieWithBench: true)
            pids[name] = pid
        }
        for name in some {
            let ok = waitUntil(timeout: 15, interval: 0.05) { self.status(name) != nil || !isRunning(self.pids[name]!) }
            guard ok, isRunning(pids[name]!) else {
                throw BenchError("agent \(name) did not start: \(tail(log(name)))")
            }
        }
    }

    /// `status` over the control socket, as `rolemesh status --json` asks it.
    func status(_ name: String) -> JSON? {
        (try? ControlClient.callLine(NodeDirectory(root: URL(fileURLWithPath: dir(name))), .status)).flatMap(JSON.parse)
    }

    func states(seenBy name: String) -> [String: String] {
        var out: [String: String] = [:]
        for m in status(name)?["members"]?.array ?? [] {
            if let n = m["name"]?.string, let s = m["state"]?.string { out[n] = s }
        }
        return out
    }

    /// Every one of `observers` lists every one of `names` alive (and, if given, routes `role` to `route`).
    func converged(_ observers: [String]? = nil, role: String? = nil, route: String? = nil) -> Bool {
        for o in observers ?? names {
            guard let s = status(o) else { return false }
            var st: [String: String] = [:]
            for m in s["members"]?.array ?? [] {
                if let n = m["name"]?.string, let v = m["state"]?.string { st[n] = v }
            }
            guard names.allSatisfy({ st[$0] == "alive" }) else { return false }
            if let role, s["roles"]?[role]?["route"]?.string != route { return false }
        }
        return true
    }

    /// Waits for convergence; the seconds it took, or throws after `timeout`.
    @discardableResult
    func waitConverged(timeout: Double, role: String? = nil, route: String? = nil) throws -> Double {
        let t0 = monoNow()
        guard waitUntil(timeout: timeout, interval: 0.2, { converged(role: role, route: route) }) else {
            let views = names.map { n in "\(n): " + states(seenBy: n).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
            throw BenchError("the mesh did not converge within \(Int(timeout)) s\n" + views.joined(separator: "\n"))
        }
        return monoNow() - t0
    }

    /// `rolemesh watch --json` on each node; returns once each agent has accepted its watcher.
    func startWatchers(_ on: [String]) throws -> [String: LineStream] {
        // The agent closes a status connection just after answering: let the last one go, and
        // take the smallest of a few counts, so a closing connection is not mistaken for the watcher.
        sleepSeconds(0.1)
        var baseline: [String: Int] = [:]
        for _ in 0..<3 {
            for n in on { baseline[n] = min(baseline[n] ?? Int.max, ProcFS.socketCount(pids[n]!)) }
            sleepSeconds(0.02)
        }
        var out: [String: LineStream] = [:]
        for n in on {
            let w = try LineStream(rolemeshBinary, ["watch", "--json", "--dir", dir(n)], label: "watch \(n)",
                                   stderr: .file(root + "/watch-\(n).err"))
            out[n] = w
            watchers[n] = w
        }
        // Ready when the agent holds one more socket (the accepted watch connection).
        for n in on {
            let ok = waitUntil(timeout: 10, interval: 0.02) { ProcFS.socketCount(self.pids[n]!) > baseline[n]! }
            guard ok, isRunning(out[n]!.pid) else {
                throw BenchError("watch on \(n) did not connect (Unix sockets held: \(baseline[n]!) before, \(ProcFS.socketCount(pids[n]!)) now; "
                                 + "watch \(isRunning(out[n]!.pid) ? "running" : "exited")): \(tail(root + "/watch-\(n).err"))")
            }
        }
        sleepSeconds(0.2)     // the request line is read and the watcher registered on the agent's queue
        return out
    }

    func crash(_ name: String) {
        guard let pid = pids[name] else { return }
        killAndReap(pid)
        pids[name] = nil
    }

    /// Waits (bounded) for an agent that stops by itself (`rolemesh leave`), then kills it if it did not.
    /// True if it exited on its own.
    @discardableResult
    func awaitExit(_ name: String, timeout: Double) -> Bool {
        guard let pid = pids[name] else { return true }
        let exited = reap(pid, timeout: timeout) != nil
        if !exited { killAndReap(pid) }
        pids[name] = nil
        return exited
    }

    func stopWatchers() {
        for w in watchers.values { w.stop() }
        watchers = [:]
    }

    /// Ends every agent and watcher by PID, removes the directory.
    func shutdown() {
        stopWatchers()
        for (_, pid) in pids { kill(pid, SIGKILL) }
        for (_, pid) in pids { _ = reap(pid, timeout: 5) }
        pids = [:]
        if ProcessInfo.processInfo.environment["KEEP_BENCH_DIRS"] == nil { Cleanup.shared.removeDir(root) }
    }
}

/// Parsed `watch --json` events of one stream, with their arrival times.
func events(_ w: LineStream) -> [(time: Double, json: JSON)] {
    w.lines.compactMap { l in JSON.parse(l.text).map { (l.time, $0) } }
}

/// First arrival of an event matching `match` on stream `w`, at or after `since`.
func firstEvent(_ w: LineStream, since: Double, _ match: (JSON) -> Bool) -> Double? {
    events(w).first { $0.time >= since && match($0.json) }?.time
}

func tail(_ path: String, _ n: Int = 1500) -> String {
    String((readFile(path) ?? "").suffix(n))
}
