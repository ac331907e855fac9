import Foundation
import RoleMeshCore
import RoleMeshSimulation

/// `scale`: the real membership core in the simulator (virtual time, `lan` profile, no
/// signatures) at growing N. For each N: what one node sends per second when idle, how long after
/// a crash the first member and every member see it dead (in seconds and in gossip rounds, one
/// round being one heartbeat interval), and what `--loss-percent` loss does in `--seconds`
/// (suspicions and false deaths of live nodes). The mesh starts converged (`addConvergedMesh`).
/// Each N runs in a child process of its own, whose peak memory is reported: every node holds the
/// whole view and the simulator holds every node, so memory (N²) is what bounds N here.
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
        var wall: Double = 0
        var msgsPerNodeLoss: Double = 0     // sent, at the loss
    }

    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["nodes", "seconds", "loss-percent", "one"])
        let sizes = try opts.ints("nodes", [100, 300, 1000], min: 10, max: 20_000).sorted()
        let lossSeconds = try opts.int("seconds", 60, min: 10, max: 3_600)
        let lossPercent = try opts.double("loss-percent", 10, min: 0, max: 90)
        let loss = lossPercent / 100
        if try opts.int("one", 0, min: 0, max: 1) == 1, let n = sizes.first {
            // The child's part: one size, one line for the parent.
            let r = once(n, lossSeconds: lossSeconds, loss: loss)
            say("ROW \(r.n) \(r.setupWall) \(r.msgsPerNode) \(r.firstDead.map { "\($0)" } ?? "-") \(r.allDead.map { "\($0)" } ?? "-") \(r.rounds.map(String.init) ?? "-") \(r.suspects) \(r.falseDead) \(r.peakMiB) \(r.wall) \(r.msgsPerNodeLoss)")
            return
        }
        say("scale: simulated \(sizes.map(String.init).joined(separator: ", ")) nodes, lan profile; \(machineDescription())")
        var rows: [Row] = []
        var skipped: [String] = []
        // Every node holds every member: memory grows with N². A size that cannot fit is reported,
        // not attempted. Each size runs in a process of its own (this binary with `--one 1`), so
        // its peak is its own and its memory is given back before the next.
        // (150 bytes a record: 14.7 GiB measured at 10,000 nodes, 30 s of loss; smaller meshes
        // need more per record, but they are small.)
        let bytesPerRecord = 150.0
        for n in sizes {
            let need = Double(n) * Double(n) * bytesPerRecord
            if let available = availableBytes(), need > available {
                let why = "\(n) nodes: not run, they need about \(fmt(need / 1_073_741_824, 0)) GiB (\(n)² member records of \(fmt(bytesPerRecord, 0)) bytes), \(fmt(available / 1_073_741_824, 1)) GiB available"
                note(why)
                skipped.append(why)
                continue
            }
            note("scale \(n) nodes")
            if let row = child(n, lossSeconds: lossSeconds, lossPercent: lossPercent, skipped: &skipped) { rows.append(row) }
        }
        var t = [["N", "SETUP wall s", "MSGS/s per node", "@\(Int(loss * 100))%", "1ST DEAD s", "ALL DEAD s", "ROUNDS", "SUSPECTS @\(Int(loss * 100))%", "FALSE DEAD", "PEAK MiB", "WALL s"]]
        for r in rows {
            t.append([String(r.n), fmt(r.setupWall, 1), fmt(r.msgsPerNode, 2), fmt(r.msgsPerNodeLoss, 2), fmt(r.firstDead, 2), fmt(r.allDead, 2),
                      r.rounds.map(String.init) ?? "-", String(r.suspects), String(r.falseDead), fmt(r.peakMiB, 0), fmt(r.wall, 0)])
        }
        say(table(t))
        for why in skipped { say(why) }
        say("rounds: seconds from the crash until every survivor lists the node dead, over the \(TimingProfile.lan.heartbeat) ms heartbeat; suspects: member-suspect events about live nodes in \(lossSeconds) s at \(Int(loss * 100)) % loss, all nodes together")
        printResult("scale", [
            ("nodes", .string(rows.map { String($0.n) }.joined(separator: ","))),
            ("msgs_per_node_s", .string(rows.map { fmt($0.msgsPerNode, 2) }.joined(separator: ","))),
            ("msgs_per_node_s_at_loss", .string(rows.map { fmt($0.msgsPerNodeLoss, 2) }.joined(separator: ","))),
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
        let mesh = SimulatedMesh(seed: UInt64(n), wire: false)
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
        let sentBefore = mesh.sent
        let kindsBefore = mesh.sentByKind
        mesh.run(for: Millis(lossSeconds) * 1000)
        let kinds = mesh.sentByKind.keys.sorted().map { k in
            "\(k) \(fmt(Double(mesh.sentByKind[k]! - (kindsBefore[k] ?? 0)) / Double(n) / Double(lossSeconds), 2))"
        }
        note("  sent per node per second at the loss, by kind: \(kinds.joined(separator: ", "))")
        // Sent, not delivered: what each node pays under loss (refutations, retries, syncs).
        let msgsLoss = Double(mesh.sent - sentBefore) / Double(n) / Double(lossSeconds)
        note("  loss done: peak \(fmt(peakMiB(), 0)) MiB, now \(fmt(rssMiB(), 0)) MiB")
        let live = Set(mesh.liveNodes)
        var suspects = 0, falseDead = 0
        for (_, _, e) in mesh.events[mark...] where live.contains(e.node) {
            if e.kind == .memberSuspect { suspects += 1 }
            if e.kind == .memberDead { falseDead += 1 }
        }
        let rounds = allDead.map { Int(($0 * 1000 / Double(profile.heartbeat)).rounded(.up)) }
        return Row(n: n, setupWall: setup, msgsPerNode: msgs, firstDead: first.map { Double($0) / 1000 },
                   allDead: allDead, rounds: rounds, suspects: suspects, falseDead: falseDead, peakMiB: peakMiB(),
                   wall: Date().timeIntervalSince(started), msgsPerNodeLoss: msgsLoss)
    }

    /// Runs one size in a child process (its progress notes go to our stderr) and reads its row.
    static func child(_ n: Int, lossSeconds: Int, lossPercent: Double, skipped: inout [String]) -> Row? {
        let out = "/tmp/rmbench-\(getpid())-scale-\(n).out"
        Cleanup.shared.addDir(out)
        defer { Cleanup.shared.removeDir(out) }
        let args = ["scale", "--nodes", String(n), "--seconds", String(lossSeconds), "--loss-percent", String(lossPercent), "--one", "1"]
        let status: Int32?
        do {
            let pid = try spawn(benchBinary, args, stdout: .file(out), stderr: .fd(2), label: "scale \(n)", dieWithBench: true)
            status = reap(pid, timeout: 4 * 3600)
            if status == nil { killAndReap(pid) }
        } catch {
            skipped.append("\(n) nodes: \(error)")
            return nil
        }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard status == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("ROW ") }) else {
            let why = "\(n) nodes: the run ended without a result (\(status.map { $0 == 137 ? "killed, out of memory?" : "exit \($0)" } ?? "over 4 hours"))"
            note(why)
            skipped.append(why)
            return nil
        }
        let f = line.split(separator: " ").dropFirst().map(String.init)
        guard f.count == 11 else { skipped.append("\(n) nodes: unreadable result"); return nil }
        return Row(n: Int(f[0]) ?? n, setupWall: Double(f[1]) ?? 0, msgsPerNode: Double(f[2]) ?? 0,
                   firstDead: Double(f[3]), allDead: Double(f[4]), rounds: Int(f[5]),
                   suspects: Int(f[6]) ?? 0, falseDead: Int(f[7]) ?? 0, peakMiB: Double(f[8]) ?? 0, wall: Double(f[9]) ?? 0,
                   msgsPerNodeLoss: Double(f[10]) ?? 0)
    }

    /// MemAvailable of /proc/meminfo, in bytes.
    static func availableBytes() -> Double? { ProcFS.kB("MemAvailable", in: "/proc/meminfo").map { $0 * 1024 } }

    /// VmRSS of this process: what it holds now.
    static func rssMiB() -> Double { (ProcFS.kB("VmRSS", in: "/proc/self/status") ?? 0) / 1024 }

    /// VmHWM of this process: the most memory it has held so far.
    static func peakMiB() -> Double { (ProcFS.kB("VmHWM", in: "/proc/self/status") ?? 0) / 1024 }
}
