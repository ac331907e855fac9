import Foundation
import RoleMeshCore
import RoleMeshSimulation

/// `scale`: the real membership core in the simulator (virtual time, `lan` profile, no
/// signatures) at growing N. For each N: what one node sends per second when idle, how long after
/// a crash the first member and every member see it dead (in seconds and in gossip rounds, one
/// round being one heartbeat interval), and what `--loss-percent` loss does in `--seconds`
/// (suspicions and false deaths of live nodes). Also the process's peak memory, since every node
/// holds the whole view and the simulator holds every node: that is what bounds N here.
enum ScaleBench {
    struct Row {
        var n: Int
        var setupWall: Double
        var msgsPerNode: Double
        var firstDead: Double?
        var allDead: Double?
        var rounds: Int?
        var suspects = 0
        var falseDead = 0
        var peakMiB: Double
    }

    static func main(_ args: [String]) {
        let opts = Options(args, allowed: ["nodes", "seconds", "loss-percent"])
        let sizes = opts.ints("nodes", [100, 300, 1000], min: 10, max: 20_000).sorted()   // (peak memory per record below)
        let lossSeconds = opts.int("seconds", 60, min: 10, max: 3_600)
        let loss = opts.double("loss-percent", 10, min: 0, max: 90) / 100
        say("scale: simulated \(sizes.map(String.init).joined(separator: ", ")) nodes, lan profile; \(machineDescription())")
        var rows: [Row] = []
        var skipped: [String] = []
        // Every node holds every member: memory grows with N². A size that cannot fit is reported,
        // not attempted (the kernel would kill the bench half-way).
        // (About 170 bytes measured at 1,000 nodes; each run measures it again, above what the bench
        // held before.)
        var bytesPerRecord = 170.0
        let baseMiB = peakMiB()
        for n in sizes {
            let need = Double(n) * Double(n) * bytesPerRecord
            if let available = availableBytes(), need > available {
                let why = "\(n) nodes: not run, they need about \(fmt(need / 1_073_741_824, 0)) GiB (\(n)² member records of \(fmt(bytesPerRecord, 0)) bytes), \(fmt(available / 1_073_741_824, 1)) GiB available"
                note(why)
                skipped.append(why)
                continue
            }
            note("scale \(n) nodes")
            let row = once(n, lossSeconds: lossSeconds, loss: loss)
            rows.append(row)
            let measured = (row.peakMiB - baseMiB) * 1_048_576 / Double(n * n)
            if measured > 0 { bytesPerRecord = measured }   // (unreadable: keep the last estimate)
        }
        var t = [["N", "SETUP wall s", "MSGS/s per node", "1ST DEAD s", "ALL DEAD s", "ROUNDS", "SUSPECTS @\(Int(loss * 100))%", "FALSE DEAD", "PEAK MiB"]]
        for r in rows {
            t.append([String(r.n), fmt(r.setupWall, 1), fmt(r.msgsPerNode, 2), fmt(r.firstDead, 2), fmt(r.allDead, 2),
                      r.rounds.map(String.init) ?? "-", String(r.suspects), String(r.falseDead), fmt(r.peakMiB, 0)])
        }
        say(table(t))
        for why in skipped { say(why) }
        say("rounds: seconds from the crash until every survivor lists the node dead, over the \(TimingProfile.lan.heartbeat) ms heartbeat; suspects: member-suspect events about live nodes in \(lossSeconds) s at \(Int(loss * 100)) % loss, all nodes together")
        printResult("scale", [
            ("nodes", .string(rows.map { String($0.n) }.joined(separator: ","))),
            ("msgs_per_node_s", .string(rows.map { fmt($0.msgsPerNode, 2) }.joined(separator: ","))),
            ("all_dead_s", .string(rows.map { fmt($0.allDead, 2) }.joined(separator: ","))),
            ("rounds", .string(rows.map { $0.rounds.map(String.init) ?? "-" }.joined(separator: ","))),
            ("suspects", .string(rows.map { String($0.suspects) }.joined(separator: ","))),
            ("false_dead", .string(rows.map { String($0.falseDead) }.joined(separator: ","))),
            ("not_run", .string(skipped.joined(separator: "; "))),
        ])
    }

    static func once(_ n: Int, lossSeconds: Int, loss: Double) -> Row {
        let started = Date()
        let profile = TimingProfile.lan
        let mesh = SimulatedMesh(seed: UInt64(n))
        mesh.recordEvents = false
        mesh.watchRoutes = false       // no roles here; each route check reads a whole view
        let names = (0..<n).map { String(format: "n%05d", $0) }
        // A converged start (every node knows every other, as after a quiet run), then 10 s for the
        // rings and beats to settle: joining 10,000 nodes one by one would take hours of wall time.
        mesh.addConvergedMesh(names, profile: profile)
        mesh.run(for: 10_000)
        let setup = Date().timeIntervalSince(started)
        note("  converged start and 10 virtual s: \(fmt(setup, 1)) s wall, peak \(fmt(peakMiB(), 0)) MiB, now \(fmt(rssMiB(), 0)) MiB")

        // Idle traffic: datagrams delivered per node per second (no loss: all that were sent).
        let before = mesh.delivered
        mesh.run(for: 20_000)
        let msgs = Double(mesh.delivered - before) / Double(n) / 20

        // A crash.
        let victim = names[n / 3]
        mesh.kill(victim)
        let start = mesh.now
        let first = mesh.run(until: { mesh.liveNodes.contains { mesh.state(of: victim, seenBy: $0) == .dead } }, step: 50, timeout: 60_000)
        let last = mesh.run(until: { mesh.everyone(sees: victim, as: .dead) }, step: 50, timeout: 60_000)
        // (`last` counts from where `first` stopped: the time since the crash is the clock's.)
        let allDead = last.map { _ in Double(mesh.now - start) / 1000 }

        note("  idle traffic and the crash: \(fmt(Date().timeIntervalSince(started), 1)) s wall so far, peak \(fmt(peakMiB(), 0)) MiB, now \(fmt(rssMiB(), 0)) MiB")
        // Loss: suspicions and false deaths of live nodes.
        mesh.run(for: 10_000)
        mesh.loss = loss
        mesh.recordEvents = true
        let mark = mesh.events.count
        mesh.run(for: Millis(lossSeconds) * 1000)
        note("  loss done: peak \(fmt(peakMiB(), 0)) MiB, now \(fmt(rssMiB(), 0)) MiB")
        let live = Set(mesh.liveNodes)
        var suspects = 0, falseDead = 0
        for (_, _, e) in mesh.events[mark...] where live.contains(e.node) {
            if e.kind == .memberSuspect { suspects += 1 }
            if e.kind == .memberDead { falseDead += 1 }
        }
        let rounds = allDead.map { Int(($0 * 1000 / Double(profile.heartbeat)).rounded(.up)) }
        return Row(n: n, setupWall: setup, msgsPerNode: msgs, firstDead: first.map { Double($0) / 1000 },
                   allDead: allDead, rounds: rounds, suspects: suspects, falseDead: falseDead, peakMiB: peakMiB())
    }

    /// MemAvailable of /proc/meminfo, in bytes.
    static func availableBytes() -> Double? { ProcFS.kB("MemAvailable", in: "/proc/meminfo").map { $0 * 1024 } }

    /// VmRSS of this process: what it holds now.
    static func rssMiB() -> Double { (ProcFS.kB("VmRSS", in: "/proc/self/status") ?? 0) / 1024 }

    /// VmHWM of this process: the most memory it has held so far.
    static func peakMiB() -> Double { (ProcFS.kB("VmHWM", in: "/proc/self/status") ?? 0) / 1024 }
}
