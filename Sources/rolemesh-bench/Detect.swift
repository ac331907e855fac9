import Foundation
import RoleMeshAgent

/// `detect`: SIGKILL one agent of a converged mesh; seconds until the last survivor's
/// `watch --json` stream printed `member-dead` for it.
enum DetectBench {
    static let targets: [String: Double] = ["fast": 1.0, "lan": 2.5]

    struct Run {
        var profile: String
        var converge: Double
        var firstSuspect: Double?
        var firstDead: Double?
        var lastDead: Double?       // nil: not every survivor saw it within the timeout
        var missing: [String]
        var falseDead: [String]     // survivors declared dead by someone (must stay empty)
    }

    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["nodes", "runs"])
        let n = try opts.int("nodes", 10, min: 3, max: 200)
        let runs = try opts.int("runs", 3, min: 1, max: 50)
        say("detect: \(n) agents per mesh, \(runs) run(s) per profile; \(machineDescription())")

        var results: [Run] = []
        for profile in ["fast", "lan"] {
            for r in 1...runs {
                note("detect \(profile) run \(r)/\(runs)")
                do {
                    let run = try once(profile: profile, nodes: n, run: r)
                    results.append(run)
                    note("  last member-dead after \(fmt(run.lastDead, 3)) s")
                } catch {
                    note("  run failed: \(error)")
                    results.append(Run(profile: profile, converge: 0, missing: ["(run failed: \(error))"], falseDead: []))
                }
            }
        }

        var rows = [["PROFILE", "RUN", "CONVERGE s", "1ST SUSPECT s", "1ST DEAD s", "LAST DEAD s", "NOTES"]]
        for (i, r) in results.enumerated() {
            var notes: [String] = []
            if !r.missing.isEmpty { notes.append("missing: " + r.missing.joined(separator: ",")) }
            if !r.falseDead.isEmpty { notes.append("false dead: " + r.falseDead.joined(separator: ",")) }
            rows.append([r.profile, String(i % runs + 1), fmt(r.converge), fmt(r.firstSuspect, 3), fmt(r.firstDead, 3),
                         fmt(r.lastDead, 3), notes.isEmpty ? "-" : notes.joined(separator: "; ")])
        }
        say(table(rows))
        say("")

        var fields: [(String, JSON)] = [("nodes", .int(n)), ("runs", .int(runs))]
        var summary = [["PROFILE", "KILL → LAST SURVIVOR'S member-dead", "TARGET", "VERDICT"]]
        for profile in ["fast", "lan"] {
            let rs = results.filter { $0.profile == profile }
            let done = rs.compactMap(\.lastDead)
            let s = Summary(values: done)
            let target = targets[profile]!
            let complete = done.count == rs.count && rs.allSatisfy { $0.falseDead.isEmpty }
            let met: Bool? = s.median.map { $0 < target && complete }
            summary.append([profile, s.text(), "< \(fmt(target, 1)) s", metText(met)])
            var f = s.json
            if case .object(let kv) = f {
                f = .object(kv + [("target_s", .double(target)), ("met", .optional(met)),
                                  ("incomplete_runs", .int(rs.count - done.count)),
                                  ("first_dead_median", .optional(Summary(values: rs.compactMap(\.firstDead)).median))])
            }
            fields.append((profile, f))
        }
        say(table(summary))
        say("Anchor: Serf 0.9.4 (memberlist, lan profile, N=10) takes 5.8–7.2 s (medians; range 5.6–8.2 s) from SIGKILL until every survivor lists the member failed (anchors.md).")
        fields.append(("serf_anchor", .string("5.8-7.2 s (median of 3, two series; range 5.6-8.2 s), anchors.md")))
        printResult("detect", fields)
    }

    static func once(profile: String, nodes: Int, run: Int) throws -> Run {
        let mesh = try Mesh(label: "detect-\(profile)-\(run)", count: nodes, profile: profile, octet: 101)
        defer { mesh.shutdown() }
        try mesh.start()
        let converge = try mesh.waitConverged(timeout: profile == "fast" ? 30 : 60)
        let victim = mesh.names.last!          // never the seed (node1)
        let survivors = Array(mesh.names.dropLast())
        let watchers = try mesh.startWatchers(survivors)

        let t0 = monoNow()
        mesh.crash(victim)
        let timeout = profile == "fast" ? 15.0 : 30.0
        func deadSeen(_ w: LineStream) -> Double? {
            firstEvent(w, since: t0) { $0["event"]?.string == "member-dead" && $0["node"]?.string == victim }
        }
        _ = waitUntil(timeout: timeout, interval: 0.01) { watchers.values.allSatisfy { deadSeen($0) != nil } }
        sleepSeconds(0.3)     // catch stray events right after, for the false-dead check

        var deadTimes: [Double] = []
        var missing: [String] = []
        var suspectTimes: [Double] = []
        var falseDead: Set<String> = []
        for (name, w) in watchers {
            if let t = deadSeen(w) { deadTimes.append(t - t0) } else { missing.append(name) }
            if let t = firstEvent(w, since: t0, { $0["event"]?.string == "member-suspect" && $0["node"]?.string == victim }) {
                suspectTimes.append(t - t0)
            }
            for e in events(w) where e.json["event"]?.string == "member-dead" {
                if let n = e.json["node"]?.string, n != victim { falseDead.insert(n) }
            }
        }
        mesh.stopWatchers()
        return Run(profile: profile, converge: converge, firstSuspect: suspectTimes.min(), firstDead: deadTimes.min(),
                   lastDead: missing.isEmpty ? deadTimes.max() : nil, missing: missing.sorted(), falseDead: falseDead.sorted())
    }
}
