#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RoleMeshAgent
import RoleMeshCore

/// `capture`: issue 9's privacy target. A `lan` mesh on loopback, with roles and pinned signals,
/// captured passively (as tcpdump would) for the whole window from before the agents start; the
/// capture must hold no node name, role name or signal value.
enum CaptureBench {
    static func main(_ args: [String]) {
        let opts = Options(args, allowed: ["nodes", "seconds"])
        let n = opts.ints("nodes", [5], min: 2, max: 60)[0]
        let seconds = opts.double("seconds", 60, min: 2, max: 3_600)
        say("capture: \(n) lan agents on loopback, \(fmt(seconds, 0)) s of their gossip captured from start; \(machineDescription())")
        do {
            let roles = (1...n).map { "benchrole\($0)" }
            let mesh = try Mesh(label: "capture", count: n, profile: "lan", octet: 104) { ["--role", roles[$0 - 1], "--backup", "benchbackup=1"] }
            defer { mesh.shutdown() }
            let hosts = Set((1...n).map { mesh.address($0).split(separator: ":")[0] }.map(String.init))
            guard let capture = LoopbackCapture(port: mesh.port, hosts: hosts) else {
                throw BenchError("cannot open a packet socket (needs CAP_NET_RAW: run as root)")
            }
            let t0 = monoNow()
            try mesh.start()
            let converge = try mesh.waitConverged(timeout: 60)
            note("converged in \(fmt(converge)) s")
            let pinned = Signals(load: 0.77, memFree: 0.33, battery: 0.42, onBattery: true)
            for name in mesh.names {
                let r = run(rolemeshBinary, ["signal", "set", "load=0.77", "mem_free=0.33", "battery=0.42", "on_battery=true",
                                            "--dir", mesh.dir(name)], timeout: 10)
                guard r.status == 0 else { throw BenchError("signal set on \(name) failed: \(r.stderr)") }
            }
            sleepSeconds(t0 + seconds - monoNow())
            let packets = capture.stop()
            let secrets = LoopbackCapture.secrets(names: mesh.names, roles: roles + ["benchbackup"], signals: pinned)
            let leaks = LoopbackCapture.leaks(of: secrets, in: packets)
            let bytes = packets.reduce(0) { $0 + $1.count }
            say(table([
                ["FIGURE", "VALUE"],
                ["datagrams captured", String(packets.count)],
                ["bytes captured (UDP payload)", String(bytes)],
                ["largest datagram", String(packets.map(\.count).max() ?? 0)],
                ["secrets looked for (names, roles, signal fields)", String(secrets.count)],
                ["secrets found in clear", String(leaks.count)],
            ]))
            for l in leaks.prefix(20) { say("  in clear: \(l)") }
            // Sizes, in 100-byte buckets (loopback shows each datagram twice: out and in).
            var buckets: [Int: Int] = [:]
            for p in packets { buckets[p.count / 100, default: 0] += 1 }
            say("sizes: " + buckets.keys.sorted().map { "\($0 * 100)-\($0 * 100 + 99) B: \(buckets[$0]!)" }.joined(separator: ", "))
            say("Target (issue 9): a passive capture of 60 s of gossip contains no node name, role name or signal value.")
            printResult("capture", [
                ("nodes", .int(n)), ("seconds", .double(seconds)), ("datagrams", .int(packets.count)),
                ("secrets", .int(secrets.count)), ("found_in_clear", .int(leaks.count)), ("met", .bool(leaks.isEmpty && packets.count > 0)),
            ])
        } catch {
            say("capture failed: \(error)")
            printResult("capture", [("error", .string("\(error)"))])
        }
    }
}
