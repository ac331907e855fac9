import RoleMeshPlatform
import Foundation
import RoleMeshAgent

/// `failover`: role failover in RoleMesh (`lan`, `fast`) next to Serf's failure detection,
/// plus a false-failover check at 10 % packet loss inside a network namespace.
enum FailoverBench {
    static let ratioTarget = 0.5
    private static let loss = Locked(0.1)
    /// The false-failover check's packet loss (`--loss-percent`), set once from the options.
    static var lossProbability: Double {
        get { loss.withLock { $0 } }
        set { loss.withLock { $0 = newValue } }
    }

    struct Run {
        var converge: Double
        var last: Double?          // every survivor printed role-moved svc → node2
        var first: Double?
        var lastDead: Double?      // every survivor printed member-dead node1 (for comparison)
        var missing: [String]
        var wrongMoves: [String]   // role-moved for svc to anyone but node2
    }

    struct Loss {
        var skipped: String?
        var minutes = 0.0
        var converge: Double?
        var counts: [String: Int] = [:]
        var measuredLoss: Double?
        var agentsRunning = true
        var watchersLive = false
        var error: String?
    }

    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["nodes", "runs", "loss-minutes", "loss-percent"])
        let n = try opts.int("nodes", 10, min: 3, max: 200)
        let runs = try opts.int("runs", 3, min: 1, max: 50)
        let lossMinutes = try opts.double("loss-minutes", 2, min: 0, max: 120)
        lossProbability = try opts.double("loss-percent", 10, min: 0.1, max: 90) / 100
        say("failover: \(n) nodes, \(runs) run(s) each; loss check \(fmt(lossMinutes, 1)) min at \(Int((lossProbability * 100).rounded())) % loss; \(machineDescription())")
        say("serf: \(SerfCluster.version())")

        var rm: [String: [Run]] = ["lan": [], "fast": []]
        for profile in ["lan", "fast"] {
            for r in 1...runs {
                note("rolemesh \(profile) failover run \(r)/\(runs)")
                do {
                    let x = try roleMeshOnce(profile: profile, nodes: n, run: r)
                    note("  every survivor moved svc to node2 after \(fmt(x.last, 3)) s")
                    rm[profile]!.append(x)
                } catch {
                    note("  run failed: \(error)")
                    rm[profile]!.append(Run(converge: 0, missing: ["(run failed: \(error))"], wrongMoves: []))
                }
            }
        }

        var serf: [SerfFailover.Run] = []
        var serfSkipped: String?
        if SerfCluster.binary == nil {
            serfSkipped = "serf is not installed: Serf comparison skipped"
            say(serfSkipped!)
        } else {
            for r in 1...runs {
                note("serf run \(r)/\(runs)")
                do {
                    let x = try SerfFailover.once(nodes: n, run: r)
                    note("  every survivor lists it failed after \(fmt(x.last, 3)) s")
                    serf.append(x)
                } catch {
                    note("  run failed: \(error)")
                    serf.append(SerfFailover.Run(converge: 0, missing: ["(run failed: \(error))"]))
                }
            }
        }

        let loss = lossMinutes > 0 ? lossCheck(nodes: n, minutes: lossMinutes)
                                   : Loss(skipped: "--loss-minutes 0")

        // Tables.
        var rows = [["SYSTEM", "RUN", "CONVERGE s", "FIRST s", "LAST SURVIVOR s", "NOTES"]]
        for profile in ["lan", "fast"] {
            for (i, r) in rm[profile]!.enumerated() {
                var notes = ["member-dead everywhere \(fmt(r.lastDead, 2)) s"]
                if !r.missing.isEmpty { notes.append("missing: " + r.missing.joined(separator: ",")) }
                if !r.wrongMoves.isEmpty { notes.append("wrong moves: " + r.wrongMoves.joined(separator: ",")) }
                rows.append(["rolemesh \(profile) (role-moved svc→node2)", String(i + 1), fmt(r.converge), fmt(r.first, 3),
                             fmt(r.last, 3), notes.joined(separator: "; ")])
            }
        }
        for (i, r) in serf.enumerated() {
            var notes = ["poll every \(fmt((r.meanPollInterval ?? 0) * 1000, 0)) ms per survivor"]
            if !r.missing.isEmpty { notes.append("missing: " + r.missing.joined(separator: ",")) }
            rows.append(["serf lan (status failed)", String(i + 1), fmt(r.converge), fmt(r.first, 3), fmt(r.last, 3),
                         notes.joined(separator: "; ")])
        }
        say(table(rows))
        say("")

        let lanS = Summary(values: rm["lan"]!.compactMap(\.last))
        let fastS = Summary(values: rm["fast"]!.compactMap(\.last))
        let serfS = Summary(values: serf.compactMap(\.last))
        let ratio: Double? = (lanS.median != nil && serfS.median != nil) ? lanS.median! / serfS.median! : nil
        let lanComplete = lanS.count == runs && rm["lan"]!.allSatisfy { $0.wrongMoves.isEmpty }
        let ratioMet: Bool? = ratio.map { $0 <= ratioTarget && lanComplete }
        say(table([
            ["SYSTEM", "KILL → EVERY SURVIVOR KNOWS (median, range)"],
            ["rolemesh lan", lanS.text()],
            ["rolemesh fast", fastS.text()],
            ["serf lan", serfSkipped == nil ? serfS.text() : "skipped"],
        ]))
        say("ratio rolemesh lan / serf = \(fmt(ratio, 3)) (target ≤ \(ratioTarget)): \(metText(ratioMet))")
        say("Anchor: Serf in anchors.md took 5.8–7.2 s (medians) for the same measurement.")
        say("")

        let falseEvents = (loss.counts["member-dead"] ?? 0) + (loss.counts["role-moved"] ?? 0)
        let lossMet: Bool? = loss.skipped != nil || loss.error != nil ? nil : falseEvents == 0 && loss.agentsRunning && loss.watchersLive
        if let s = loss.skipped {
            say("false-failover check at \(Int((lossProbability * 100).rounded())) % loss: skipped (\(s))")
        } else if let e = loss.error {
            say("false-failover check at \(Int((lossProbability * 100).rounded())) % loss: failed to run: \(e)")
        } else {
            say("false-failover check: \(n) lan agents in a namespace, \(Int((lossProbability * 100).rounded())) % of incoming packets dropped (measured \(fmt((loss.measuredLoss ?? 0) * 100, 1)) %), \(fmt(loss.minutes, 1)) min")
            var lrows = [["EVENT (all watchers together)", "COUNT", "ALLOWED"]]
            for k in ["member-dead", "role-moved", "member-suspect", "member-alive", "member-updated", "member-left"] {
                let allowed = (k == "member-dead" || k == "role-moved") ? "0" : "-"
                lrows.append([k, String(loss.counts[k] ?? 0), allowed])
            }
            say(table(lrows))
            say("converged under loss in \(fmt(loss.converge)) s; all agents still running: \(loss.agentsRunning); watch streams proven live afterwards (a drain reached every watcher): \(loss.watchersLive); verdict: \(metText(lossMet))")
        }

        func runsJSON(_ rs: [Run]) -> JSON {
            .array(rs.map { r in .object([("converge_s", .double(r.converge)), ("first_s", .optional(r.first)),
                                          ("last_s", .optional(r.last)), ("member_dead_everywhere_s", .optional(r.lastDead)),
                                          ("missing", .array(r.missing.map(JSON.string))),
                                          ("wrong_moves", .array(r.wrongMoves.map(JSON.string)))]) })
        }
        printResult("failover", [
            ("nodes", .int(n)), ("runs", .int(runs)),
            ("rolemesh_lan", lanS.json), ("rolemesh_fast", fastS.json),
            ("serf_lan", serfSkipped == nil ? serfS.json : .null), ("serf_version", .string(SerfCluster.version())),
            ("ratio_lan_over_serf", .optional(ratio)), ("target_ratio", .double(ratioTarget)), ("ratio_met", .optional(ratioMet)),
            ("loss_check", .object([
                ("skipped", .optional(loss.skipped)), ("error", .optional(loss.error)),
                ("minutes", .double(loss.minutes)), ("loss_probability", .double(lossProbability)),
                ("measured_loss", .optional(loss.measuredLoss)),
                ("member_dead", .int(loss.counts["member-dead"] ?? 0)), ("role_moved", .int(loss.counts["role-moved"] ?? 0)),
                ("member_suspect", .int(loss.counts["member-suspect"] ?? 0)), ("watchers_live", .bool(loss.watchersLive)),
                ("agents_running", .bool(loss.agentsRunning)), ("met", .optional(lossMet)),
            ])),
            ("rolemesh_lan_runs", runsJSON(rm["lan"]!)), ("rolemesh_fast_runs", runsJSON(rm["fast"]!)),
        ])
    }

    static func roleFlags(_ i: Int) -> [String] {
        i == 1 ? ["--role", "svc"] : i == 2 ? ["--backup", "svc=1"] : []
    }

    /// node1 holds svc, node2 is backup 1; SIGKILL node1; until every survivor printed role-moved svc → node2.
    static func roleMeshOnce(profile: String, nodes: Int, run: Int) throws -> Run {
        let mesh = try Mesh(label: "failover-\(profile)-\(run)", count: nodes, profile: profile, octet: 104, extra: roleFlags)
        defer { mesh.shutdown() }
        try mesh.start()
        let converge = try mesh.waitConverged(timeout: profile == "fast" ? 30 : 60, role: "svc", route: "node1")
        let survivors = Array(mesh.names.dropFirst())
        let watchers = try mesh.startWatchers(survivors)

        let t0 = monoNow()
        mesh.crash("node1")
        func moved(_ w: LineStream) -> Double? {
            firstEvent(w, since: t0) { $0["event"]?.string == "role-moved" && $0["role"]?.string == "svc" && $0["to"]?.string == "node2" }
        }
        func dead(_ w: LineStream) -> Double? {
            firstEvent(w, since: t0) { $0["event"]?.string == "member-dead" && $0["node"]?.string == "node1" }
        }
        let timeout = profile == "fast" ? 15.0 : 30.0
        _ = waitUntil(timeout: timeout, interval: 0.01) { watchers.values.allSatisfy { moved($0) != nil && dead($0) != nil } }
        sleepSeconds(0.3)

        var times: [Double] = [], deads: [Double] = [], missing: [String] = [], wrong: [String] = []
        for (name, w) in watchers.sorted(by: { $0.key < $1.key }) {
            if let t = moved(w) { times.append(t - t0) } else { missing.append(name) }
            if let t = dead(w) { deads.append(t - t0) }
            for e in events(w) where e.json["event"]?.string == "role-moved" && e.json["role"]?.string == "svc"
                && e.json["to"]?.string != "node2" {
                wrong.append("\(name) saw →\(e.json["to"]?.string ?? "nobody")")
            }
        }
        mesh.stopWatchers()
        return Run(converge: converge, last: missing.isEmpty ? times.max() : nil, first: times.min(),
                   lastDead: deads.count == survivors.count ? deads.max() : nil, missing: missing, wrongMoves: wrong)
    }

    /// N lan agents in a fresh namespace dropping 10 % of incoming packets; every event counted for `minutes`.
    static func lossCheck(nodes: Int, minutes: Double) -> Loss {
        if let why = Netns.unavailableReason { return Loss(skipped: why) }
        if Netns.iptablesTool == nil { return Loss(skipped: "iptables is not installed") }
        var loss = Loss(minutes: minutes)
        note("false-failover check: \(fmt(minutes, 1)) min at \(Int((lossProbability * 100).rounded())) % loss")
        var ns: String?
        do {
            ns = try Netns.create(tag: "loss")
            defer { Netns.delete(ns!) }
            try Netns.addRandomLoss(ns!, probability: lossProbability)
            let mesh = try Mesh(label: "loss", count: nodes, profile: "lan", octet: 105, netns: ns, extra: roleFlags)
            defer { mesh.shutdown() }
            try mesh.start()
            loss.converge = try mesh.waitConverged(timeout: 90, role: "svc", route: "node1")
            let watchers = try mesh.startWatchers(mesh.names)
            let probe = mesh.pids["node1"]!
            let udp0 = ProcFS.udp(probe)["InDatagrams"] ?? 0, drop0 = Netns.droppedPackets(ns!) ?? 0
            let end = monoNow() + minutes * 60
            for _ in 0..<Int(minutes * 60 + 2) {
                let left = end - monoNow()
                if left <= 0 { break }
                sleepSeconds(min(1, left))
                if !mesh.pids.values.allSatisfy(isRunning) { loss.agentsRunning = false; break }
            }
            let udp1 = ProcFS.udp(probe)["InDatagrams"] ?? 0, drop1 = Netns.droppedPackets(ns!) ?? 0
            let dropped = drop1 - drop0, delivered = udp1 - udp0
            if dropped + delivered > 0 { loss.measuredLoss = dropped / (dropped + delivered) }
            for (_, w) in watchers {
                for e in events(w) { if let k = e.json["event"]?.string { loss.counts[k, default: 0] += 1 } }
            }
            // Proof the streams were live: draining node3 (no role) must reach every other watcher.
            let probeNode = mesh.names[2], t1 = monoNow()
            let d = run(rolemeshBinary, ["drain", "--dir", mesh.dir(probeNode)], timeout: 10)
            loss.watchersLive = d.status == 0 && waitUntil(timeout: 10, interval: 0.05) {
                watchers.filter { $0.key != probeNode }.values.allSatisfy { w in
                    firstEvent(w, since: t1) { $0["event"]?.string == "member-updated" && $0["node"]?.string == probeNode } != nil
                }
            }
            mesh.stopWatchers()
        } catch {
            loss.error = "\(error)"
        }
        return loss
    }
}
