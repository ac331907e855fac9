import RoleMeshPlatform
import Foundation
import RoleMeshAgent
import RoleMeshTaskChannel

/// N HashiCorp Serf agents (default `lan` profile) on 127.0.102.<i+1>, all joining s1.
final class SerfCluster {
    static let binary = findTool("serf")

    let root: String
    let port: UInt16
    let rpcPort: UInt16
    let serf: String
    private(set) var names: [String] = []
    private(set) var pids: [String: pid_t] = [:]
    private let octet = 102

    init(label: String, count: Int) throws {
        guard let serf = SerfCluster.binary else { throw BenchError("serf is not installed") }
        self.serf = serf
        root = try makeTempRoot(label)
        port = freshPort()
        rpcPort = port &+ 2_000
        names = (1...count).map { "s\($0)" }
    }

    func host(_ name: String) -> String { "127.0.\(octet).\(Int(name.dropFirst())! + 1)" }
    func rpc(_ name: String) -> String { "\(host(name)):\(rpcPort)" }

    static func version() -> String {
        guard let b = binary else { return "not installed" }
        return run(b, ["version"], timeout: 10).stdout.split(separator: "\n").first.map(String.init) ?? "?"
    }

    /// s1 first (until its RPC answers), then the others with `-join` to s1.
    func start() throws {
        for (i, name) in names.enumerated() {
            var args = ["agent", "-node=\(name)", "-bind=\(host(name)):\(port)", "-rpc-addr=\(rpc(name))"]
            if i > 0 { args.append("-join=\(host(names[0])):\(port)") }
            let log = root + "/\(name).log"
            pids[name] = try spawn(serf, args, stdout: .file(log), stderr: .file(log), label: "serf \(name)", dieWithBench: true)
            if i == 0 {
                guard waitUntil(timeout: 15, interval: 0.1, { self.members(seenBy: name) != nil }) else {
                    throw BenchError("serf s1 did not start: \(tail(log))")
                }
            }
        }
    }

    /// name → status as `serf members -format=json` on `name` lists them; nil if it does not answer.
    func members(seenBy name: String, timeout: Double = 5) -> [String: String]? {
        SerfCluster.members(serf: serf, rpc: rpc(name), timeout: timeout)
    }

    static func members(serf: String, rpc: String, timeout: Double) -> [String: String]? {
        let r = run(serf, ["members", "-rpc-addr=\(rpc)", "-format=json"], timeout: timeout)
        guard r.status == 0, let j = JSON.parse(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        var out: [String: String] = [:]
        for m in j["members"]?.array ?? [] {
            if let n = m["name"]?.string, let s = m["status"]?.string { out[n] = s }
        }
        return out
    }

    func waitConverged(timeout: Double) throws -> Double {
        let t0 = monoNow()
        let ok = waitUntil(timeout: timeout, interval: 0.2) {
            self.names.allSatisfy { o in
                guard let m = self.members(seenBy: o) else { return false }
                return self.names.allSatisfy { m[$0] == "alive" }
            }
        }
        guard ok else { throw BenchError("serf did not converge within \(Int(timeout)) s") }
        return monoNow() - t0
    }

    func crash(_ name: String) {
        guard let pid = pids[name] else { return }
        killAndReap(pid)
        pids[name] = nil
    }

    func shutdown() {
        for (_, pid) in pids { kill(pid, SIGKILL) }
        for (_, pid) in pids { _ = reap(pid, timeout: 5) }
        pids = [:]
        if ProcessInfo.processInfo.environment["KEEP_BENCH_DIRS"] == nil { Cleanup.shared.removeDir(root) }
    }
}

/// Per-survivor results from the polling threads.
final class PollResults: Sendable {
    private let state = Locked<(found: [String: Double], polls: [String: Int])>(([:], [:]))
    func record(_ name: String, _ t: Double) { state.withLock { $0.found[name] = t } }
    func countPoll(_ name: String) { state.withLock { $0.polls[name, default: 0] += 1 } }
    var snapshot: (found: [String: Double], polls: [String: Int]) { state.withLock { $0 } }
}

enum SerfFailover {
    struct Run {
        var converge: Double
        var last: Double?          // nil: not every survivor listed it failed in time
        var first: Double?
        var missing: [String]
        var meanPollInterval: Double?
    }

    /// SIGKILL the last agent; poll every survivor in parallel (every 50 ms) until each lists it `failed`.
    static func once(nodes: Int, run: Int, timeout: Double = 40) throws -> Run {
        let c = try SerfCluster(label: "serf-\(run)", count: nodes)
        defer { c.shutdown() }
        try c.start()
        let converge = try c.waitConverged(timeout: 60)
        let victim = c.names.last!
        let survivors = Array(c.names.dropLast())
        let results = PollResults()
        let group = DispatchGroup()

        let t0 = monoNow()
        c.crash(victim)
        let deadline = t0 + timeout
        let serf = c.serf
        for s in survivors {
            group.enter()
            let rpc = c.rpc(s)
            let t = Thread {
                defer { group.leave() }
                var next = monoNow()
                for _ in 0..<Int(timeout / 0.05 + 10) {
                    if monoNow() >= deadline { break }
                    let m = SerfCluster.members(serf: serf, rpc: rpc, timeout: 3)
                    results.countPoll(s)
                    if m?[victim] == "failed" { results.record(s, monoNow() - t0); break }
                    next += 0.05
                    sleepSeconds(next - monoNow())
                }
            }
            t.start()
        }
        _ = group.wait(timeout: .now() + timeout + 10)
        let snap = results.snapshot
        let missing = survivors.filter { snap.found[$0] == nil }
        let elapsed = snap.found.values.max() ?? (monoNow() - t0)
        let pollCount = snap.polls.values.reduce(0, +)
        return Run(converge: converge, last: missing.isEmpty ? snap.found.values.max() : nil,
                   first: snap.found.values.min(), missing: missing,
                   meanPollInterval: pollCount > 0 ? elapsed * Double(survivors.count) / Double(pollCount) : nil)
    }
}

