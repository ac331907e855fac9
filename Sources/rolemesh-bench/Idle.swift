import RoleMeshPlatform
import Foundation
import RoleMeshAgent

/// `idle`: a converged `lan` mesh doing nothing; CPU, RSS and traffic per agent, UDP and TCP.
/// Runs inside a network namespace of its own when possible, so the counters hold only its traffic.
enum IdleBench {
    /// Issue 9's targets: ≤ 0.3 % of a core, ≤ 18 MiB per agent (Serf: 0.1 %, 14.5 MiB); issue 22's:
    /// all traffic, UDP and TCP, ≤ 5 packets/s and ≤ 600 B/s of IP traffic per agent.
    static let cpuTarget = 0.3      // % of one core
    static let rssTarget = 18.0     // MiB
    static let packetsTarget = 5.0  // per agent per second, UDP and TCP
    static let bytesTarget = 600.0  // IP bytes per agent per second
    /// After convergence, before the window: the idle steady state, which begins once every agent
    /// has handed back the pages it touched only while starting (5 s after its start, `Agent`).
    static let settleSeconds = 10.0

    /// Per-agent figures of one run, for the summary across N.
    struct Figures { var n: Int; var outPkts: Double; var allPkts: Double?; var tcpSegs: Double; var bytes: Double?; var cpu: Double?; var rss: Double? }

    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["nodes", "seconds", "signals"])
        let ns = try opts.ints("nodes", [10], min: 2, max: 200)
        let seconds = try opts.double("seconds", 30, min: 2, max: 3_600)
        let signals = opts.string("signals", "machine")
        guard ["machine", "steady"].contains(signals) else { throw .usage("--signals must be machine or steady") }
        var all: [Figures] = []
        for n in ns { if let f = run(n: n, seconds: seconds, steadySignals: signals == "steady") { all.append(f) } }
        guard all.count > 1 else { return }
        // Gossip v2's targets (issue 9): per agent, flat in N.
        let base = all[0]
        var rows = [["N", "UDP packets /s", "TCP segments /s", "all packets /s", "bytes sent /s", "CPU % (mean)", "RSS MiB (mean)", "packets vs N=\(base.n)"]]
        for f in all {
            rows.append([String(f.n), fmt(f.outPkts, 2), fmt(f.tcpSegs, 2), fmt(f.allPkts, 2), fmt(f.bytes, 0), fmt(f.cpu, 3), fmt(f.rss, 1),
                         fmt((f.allPkts ?? f.outPkts) / max(base.allPkts ?? base.outPkts, 0.001), 2) + "x"])
        }
        say("")
        say("Per agent, by mesh size (targets: <= 5 packets/s, UDP and TCP, <= 600 B/s and <= 0.3 % CPU at every N; the largest N within 1.3x of the smallest):")
        say(table(rows))
        let flat = all.allSatisfy { ($0.allPkts ?? $0.outPkts) <= packetsTarget && ($0.bytes ?? 0) <= bytesTarget && ($0.cpu ?? 0) <= cpuTarget }
            && (all.last!.allPkts ?? all.last!.outPkts) <= 1.3 * (base.allPkts ?? base.outPkts)
        printResult("idle_by_n", [
            ("nodes", .string(ns.map(String.init).joined(separator: ","))),
            ("pkts_per_agent_s", .string(all.map { fmt($0.outPkts, 2) }.joined(separator: ","))),
            ("tcp_segs_per_agent_s", .string(all.map { fmt($0.tcpSegs, 2) }.joined(separator: ","))),
            ("all_pkts_per_agent_s", .string(all.map { fmt($0.allPkts, 2) }.joined(separator: ","))),
            ("bytes_per_agent_s", .string(all.map { fmt($0.bytes, 0) }.joined(separator: ","))),
            ("cpu_pct_mean", .string(all.map { fmt($0.cpu, 3) }.joined(separator: ","))),
            ("rss_mib_mean", .string(all.map { fmt($0.rss, 1) }.joined(separator: ","))),
            ("flat_and_under_targets", .bool(flat)),
        ])
    }

    static func run(n: Int, seconds: Double, steadySignals: Bool) -> Figures? {
        say("idle: \(n) lan agents, \(fmt(seconds, 0)) s window after convergence + \(Int(settleSeconds)) s settling; signals: "
            + (steadySignals ? "steady, each agent its own (--signals steady)" : "this machine's, shared by every agent") + "; \(machineDescription())")

        var ns: String?
        var scope = "host network namespace: /proc/net/snmp is global (every process on the machine), divided by N"
        if let why = Netns.unavailableReason {
            note("no namespace (\(why)); counting UDP machine-wide")
        } else {
            do {
                ns = try Netns.create(tag: "idle")
                scope = "own network namespace \(ns!): counters hold only this mesh's traffic, divided by N"
            } catch { note("\(error); counting UDP machine-wide") }
        }
        defer { if let ns { Netns.delete(ns) } }

        do {
            let mesh = try Mesh(label: "idle", count: n, profile: "lan", octet: 103, netns: ns)
            defer { mesh.shutdown() }
            mesh.steadySignals = steadySignals
            try mesh.start()
            let converge = try mesh.waitConverged(timeout: 60)
            note("converged in \(fmt(converge)) s; settling \(Int(settleSeconds)) s")
            sleepSeconds(settleSeconds)
            let pids = mesh.names.map { ($0, mesh.pids[$0]!) }
            let probe: pid_t? = ns == nil ? nil : pids[0].1

            var cpu0: [String: Double] = [:], rssMax: [String: Double] = [:]
            for (name, pid) in pids { cpu0[name] = ProcFS.cpuSeconds(pid); rssMax[name] = ProcFS.rssMiB(pid) }
            let udp0 = ProcFS.udp(probe), tcp0 = ProcFS.tcp(probe), lo0 = ProcFS.loopback(probe)
            let t0 = monoNow()
            // One sample a second for RSS peaks; no control requests during the window.
            let samples = Int(seconds.rounded(.up))
            for i in 1...samples {
                sleepSeconds(t0 + min(Double(i), seconds) - monoNow())
                for (name, pid) in pids { if let r = ProcFS.rssMiB(pid) { rssMax[name] = max(rssMax[name] ?? 0, r) } }
            }
            let window = monoNow() - t0
            var cpuPct: [String: Double] = [:]
            for (name, pid) in pids {
                if let a = cpu0[name], let b = ProcFS.cpuSeconds(pid) { cpuPct[name] = (b - a) / window * 100 }
            }
            let udp1 = ProcFS.udp(probe), tcp1 = ProcFS.tcp(probe), lo1 = ProcFS.loopback(probe)
            let alive = mesh.converged()

            let perAgent = Double(n) * window
            let outPkts = ((udp1["OutDatagrams"] ?? 0) - (udp0["OutDatagrams"] ?? 0)) / perAgent
            let inPkts = ((udp1["InDatagrams"] ?? 0) - (udp0["InDatagrams"] ?? 0)) / perAgent
            let tcpSegs = ((tcp1["OutSegs"] ?? 0) - (tcp0["OutSegs"] ?? 0)) / perAgent
            let tcpOpens = ((tcp1["ActiveOpens"] ?? 0) - (tcp0["ActiveOpens"] ?? 0)) / perAgent
            var ipBytes: Double?, allPkts: Double?
            if let a = lo0, let b = lo1 {
                // Loopback counts each packet once (tx = rx), UDP and TCP alike; its byte counter
                // includes a 14-byte Ethernet header.
                let pk = b.txPackets - a.txPackets
                ipBytes = (b.txBytes - a.txBytes - 14 * pk) / perAgent
                allPkts = pk / perAgent
            }

            var rows = [["AGENT", "PID", "CPU % of a core", "RSS MiB (peak)"]]
            for (name, pid) in pids {
                rows.append([name, String(pid), fmt(cpuPct[name], 3), fmt(rssMax[name], 1)])
            }
            say(table(rows))
            say("")
            let cpuVals = Summary(values: Array(cpuPct.values)), rssVals = Summary(values: Array(rssMax.values))
            let cpuMet = cpuVals.max.map { $0 <= cpuTarget }, rssMet = rssVals.max.map { $0 <= rssTarget }
            say(table([
                ["FIGURE (per agent)", "MEAN", "MAX", "TARGET", "VERDICT"],
                ["CPU % of one core", fmt(cpuVals.mean, 3), fmt(cpuVals.max, 3), "≤ \(fmt(cpuTarget, 1)) %", metText(cpuMet)],
                ["RSS MiB", fmt(rssVals.mean, 1), fmt(rssVals.max, 1), "≤ \(fmt(rssTarget, 0)) MiB", metText(rssMet)],
                ["UDP packets sent /s", fmt(outPkts, 2), "-", "-", "-"],
                ["UDP packets received /s", fmt(inPkts, 2), "-", "-", "-"],
                ["TCP segments sent /s", fmt(tcpSegs, 2), "-", "-", "-"],
                ["task channels opened /s", fmt(tcpOpens, 3), "-", "-", "-"],
                ["all packets sent /s (UDP and TCP)", fmt(allPkts, 2), "-", "≤ \(fmt(packetsTarget, 0))", metText(allPkts.map { $0 <= packetsTarget })],
                ["bytes sent /s (IP headers incl.)", fmt(ipBytes, 0), "-", "≤ \(fmt(bytesTarget, 0))", metText(ipBytes.map { $0 <= bytesTarget })],
            ]))
            say("UDP scope: \(scope).")
            say("mesh still fully alive after the window: \(alive)")
            say("Anchor: Serf idle 0.1 % of a core, 14.4 MiB, 2.1 packets/s and 280 B/s sent per agent (anchors.md).")
            printResult("idle", [
                ("nodes", .int(n)), ("seconds", .double(window)),
                ("cpu_pct_mean", .optional(cpuVals.mean)), ("cpu_pct_max", .optional(cpuVals.max)),
                ("rss_mib_mean", .optional(rssVals.mean)), ("rss_mib_max", .optional(rssVals.max)),
                ("udp_out_pkts_per_agent_s", .double(outPkts)), ("udp_in_pkts_per_agent_s", .double(inPkts)),
                ("ip_bytes_out_per_agent_s", .optional(ipBytes)),
                ("tcp_segs_out_per_agent_s", .double(tcpSegs)), ("tcp_opens_per_agent_s", .double(tcpOpens)),
                ("all_pkts_out_per_agent_s", .optional(allPkts)),
                ("udp_scope", .string(ns == nil ? "global" : "namespace")),
                ("cpu_met", .optional(cpuMet)), ("rss_met", .optional(rssMet)), ("still_converged", .bool(alive)),
            ])
            return Figures(n: n, outPkts: outPkts, allPkts: allPkts, tcpSegs: tcpSegs, bytes: ipBytes, cpu: cpuVals.mean, rss: rssVals.mean)
        } catch {
            say("idle failed: \(error)")
            printResult("idle", [("error", .string("\(error)"))])
            return nil
        }
    }
}
