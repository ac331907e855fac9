import RoleMeshPlatform
import Foundation

/// A network namespace of the bench's own (`rmbench-PID[-tag]`) with only `lo` up, deleted on every exit path.
enum Netns {
    static let ipTool = findTool("ip")
    static let iptablesTool = findTool("iptables")

    /// Why namespaces cannot be used here, or nil when they can.
    static var unavailableReason: String? {
        if ipTool == nil { return "`ip` (iproute2) is not installed" }
        if geteuid() != 0 { return "creating a network namespace needs root" }
        return nil
    }

    static func create(tag: String) throws -> String {
        guard let ip = ipTool else { throw BenchError("`ip` is not installed") }
        let name = "rmbench-\(getpid())" + (tag.isEmpty ? "" : "-\(tag)")
        let r = run(ip, ["netns", "add", name], timeout: 10)
        guard r.status == 0 else { throw BenchError("ip netns add \(name) failed: \(r.stderr)") }
        Cleanup.shared.addNamespace(name)
        let up = run(ip, ["netns", "exec", name, "ip", "link", "set", "lo", "up"], timeout: 10)
        guard up.status == 0 else { delete(name); throw BenchError("cannot bring lo up in \(name): \(up.stderr)") }
        return name
    }

    /// Drops each incoming packet with probability `p` (loopback: every packet passes INPUT once).
    static func addRandomLoss(_ ns: String, probability p: Double) throws {
        guard let ip = ipTool, let ipt = iptablesTool else { throw BenchError("`iptables` is not installed") }
        let r = run(ip, ["netns", "exec", ns, ipt, "-A", "INPUT", "-m", "statistic", "--mode", "random",
                         "--probability", String(p), "-j", "DROP"], timeout: 10)
        guard r.status == 0 else { throw BenchError("iptables in \(ns) failed: \(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))") }
    }

    /// Packets the loss rule dropped so far.
    static func droppedPackets(_ ns: String) -> Double? {
        guard let ip = ipTool, let ipt = iptablesTool else { return nil }
        let r = run(ip, ["netns", "exec", ns, ipt, "-L", "INPUT", "-n", "-v", "-x"], timeout: 10)
        for line in r.stdout.split(separator: "\n") where line.contains("DROP") && line.contains("statistic") {
            return line.split(separator: " ").first.flatMap { Double($0) }
        }
        return nil
    }

    static func delete(_ name: String) {
        guard let ip = ipTool else { return }
        _ = run(ip, ["netns", "del", name], timeout: 10)
        Cleanup.shared.forgetNamespace(name)
    }

    /// Namespaces left by an earlier bench that was killed outright (its PID no longer runs).
    static func removeStale() {
        guard unavailableReason == nil, let ip = ipTool else { return }
        let r = run(ip, ["netns", "list"], timeout: 10)
        for line in r.stdout.split(separator: "\n") {
            guard let name = line.split(separator: " ").first.map(String.init), name.hasPrefix("rmbench-") else { continue }
            let pidText = name.dropFirst("rmbench-".count).prefix { $0.isNumber }
            guard let pid = Int32(pidText), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            note("removing stale namespace \(name) of a bench that no longer runs")
            _ = run(ip, ["netns", "del", name], timeout: 10)
        }
    }
}
