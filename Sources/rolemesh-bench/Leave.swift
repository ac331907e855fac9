import Foundation
import RoleMeshAgent

/// `leave`: graceful leave. `rolemesh leave` on one node of a converged `lan` mesh, timed from
/// just before the command starts until every other node's `watch` stream says `member-left`.
/// The node is started again (and the mesh converged) before the next run.
enum LeaveBench {
    static let target = 0.2     // s, issue 9 (Serf: 0.9–1.0 s)

    struct Run {
        var last: Double?           // every survivor printed member-left
        var first: Double?
        var commandReturned: Double // `rolemesh leave` exited
        var exitedByItself: Bool    // the agent stopped on its own, as `leave` promises
        var missing: [String]
    }

    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["nodes", "runs"])
        let n = try opts.int("nodes", 8, min: 3, max: 200)
        let runs = try opts.int("runs", 5, min: 1, max: 50)
        say("leave: \(n) lan agents, \(runs) run(s); `rolemesh leave` on one node until every other node's watch shows member-left; \(machineDescription())")

        var results: [Run] = []
        var converge: Double?
        var error: String?
        do {
            let mesh = try Mesh(label: "leave", count: n, profile: "lan", octet: 106)
            defer { mesh.shutdown() }
            try mesh.start()
            converge = try mesh.waitConverged(timeout: 60)
            for r in 1...runs {
                // Never node1: it is every node's seed, through which the leaver rejoins.
                let leaver = mesh.names[1 + (r - 1) % (n - 1)]
                note("run \(r)/\(runs): \(leaver) leaves")
                let x = try once(mesh, leaver: leaver)
                note("  every survivor saw member-left after \(fmt(x.last, 3)) s (leave returned after \(fmt(x.commandReturned, 3)) s)")
                results.append(x)
                try mesh.start([leaver])
                try mesh.waitConverged(timeout: 60)
            }
        } catch let e {
            note("failed: \(e)")
            error = "\(e)"
        }

        var rows = [["RUN", "FIRST s", "LAST SURVIVOR s", "LEAVE RETURNED s", "NOTES"]]
        for (i, r) in results.enumerated() {
            var notes: [String] = []
            if !r.missing.isEmpty { notes.append("missing: " + r.missing.joined(separator: ",")) }
            if !r.exitedByItself { notes.append("agent did not stop by itself") }
            rows.append([String(i + 1), fmt(r.first, 3), fmt(r.last, 3), fmt(r.commandReturned, 3), notes.joined(separator: "; ")])
        }
        say(table(rows))
        say("")
        let s = Summary(values: results.compactMap(\.last))
        let complete = s.count == runs && results.allSatisfy(\.exitedByItself)
        let met: Bool? = s.max.map { $0 <= target && complete }
        say("leave → every survivor shows member-left: \(s.text(digits: 3)); converged first in \(fmt(converge)) s")
        say("target: max ≤ \(target) s (Serf 0.9–1.0 s): \(metText(met))")
        printResult("leave", [
            ("nodes", .int(n)), ("runs", .int(runs)), ("converge_s", .optional(converge)),
            ("leave_to_all_left", s.json), ("target_s", .double(target)), ("met", .optional(met)),
            ("leave_returned_s", Summary(values: results.map(\.commandReturned)).json),
            ("error", .optional(error)),
        ])
    }

    /// Watchers on every other node, then `rolemesh leave` on `leaver`; until each watcher printed member-left.
    static func once(_ mesh: Mesh, leaver: String) throws -> Run {
        let survivors = mesh.names.filter { $0 != leaver }
        let watchers = try mesh.startWatchers(survivors)
        defer { mesh.stopWatchers() }
        func left(_ w: LineStream, since t0: Double) -> Double? {
            firstEvent(w, since: t0) { $0["event"]?.string == "member-left" && $0["node"]?.string == leaver }
        }
        let t0 = monoNow()
        let result = run(rolemeshBinary, ["leave", "--dir", mesh.dir(leaver)], timeout: 30)
        let returned = monoNow() - t0
        guard result.status == 0 else { throw BenchError("rolemesh leave on \(leaver) failed (\(result.status)): \(result.stderr)") }
        _ = waitUntil(timeout: 10, interval: 0.01) { watchers.values.allSatisfy { left($0, since: t0) != nil } }
        let exited = mesh.awaitExit(leaver, timeout: 40)

        var times: [Double] = [], missing: [String] = []
        for (name, w) in watchers.sorted(by: { $0.key < $1.key }) {
            if let t = left(w, since: t0) { times.append(t - t0) } else { missing.append(name) }
        }
        return Run(last: missing.isEmpty ? times.max() : nil, first: times.min(), commandReturned: returned,
                   exitedByItself: exited, missing: missing)
    }
}
