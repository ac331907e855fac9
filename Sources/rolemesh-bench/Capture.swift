import RoleMeshPlatform
import Foundation
import RoleMeshAgent
import RoleMeshCore
import RoleMeshTestSupport

/// `capture`: issue 9's privacy target, with the task channel since issue 24. A `lan` mesh on
/// loopback, with roles and pinned signals, captured passively (as tcpdump would) for the whole
/// window from before the agents start, while every node submits a task to the next one once a
/// few seconds; the capture, UDP and TCP, must hold no node name, role name, task name or signal
/// value.
enum CaptureBench {
    static func main(_ args: [String]) throws(BenchExit) {
        let opts = try Options(args, allowed: ["nodes", "seconds"])
        let n = try opts.ints("nodes", [5], min: 2, max: 60)[0]
        let seconds = try opts.double("seconds", 60, min: 2, max: 3_600)
        say("capture: \(n) lan agents on loopback, \(fmt(seconds, 0)) s of their gossip captured from start; \(machineDescription())")
        do {
            let roles = (1...n).map { "benchrole\($0)" }
            let mesh = try Mesh(label: "capture", count: n, profile: "lan", octet: 104) { ["--role", roles[$0 - 1], "--backup", "benchbackup=1"] }
            defer { mesh.shutdown() }
            for (i, name) in mesh.names.enumerated() {
                let folder = mesh.dir(name) + "/roles/\(roles[i])"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                precondition(FileManager.default.createFile(atPath: folder + "/benchtask", contents: Data("#!/bin/sh\necho \"$ROLEMESH_NODE\"\n".utf8),
                                                            attributes: [.posixPermissions: 0o755]), "cannot write a task file")
            }
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
            // Task channels: each node submits to the next one's role, round after round.
            var submitted = 0, failedSubmits = 0
            while monoNow() < t0 + seconds - 1 {
                for (i, name) in mesh.names.enumerated() where monoNow() < t0 + seconds - 1 {
                    let r = run(rolemeshBinary, ["submit", "\(roles[(i + 1) % n])/benchtask", "--dir", mesh.dir(name)], timeout: 20)
                    if r.status == 0 { submitted += 1 } else { failedSubmits += 1 }
                }
                sleepSeconds(min(5, t0 + seconds - monoNow()))
            }
            sleepSeconds(t0 + seconds - monoNow())
            let packets = capture.stop()
            let segments = capture.tcpSegments
            let secrets = LoopbackCapture.secrets(names: mesh.names, roles: roles + ["benchbackup"], signals: pinned)
                + [(what: "the task's name", bytes: Array("benchtask".utf8))]
            let leaks = LoopbackCapture.leaks(of: secrets, in: packets)
            let tcpLeaks = LoopbackCapture.leaks(of: secrets, in: segments, unit: "TCP segment") + LoopbackCapture.streamLeaks(of: secrets, in: segments)
            let bytes = packets.reduce(0) { $0 + $1.count }
            say(table([
                ["FIGURE", "VALUE"],
                ["datagrams captured", String(packets.count)],
                ["bytes captured (UDP payload)", String(bytes)],
                ["largest datagram", String(packets.map(\.count).max() ?? 0)],
                ["tasks submitted (each over a task channel)", "\(submitted) (\(failedSubmits) failed)"],
                ["TCP segments with payload captured", String(segments.count)],
                ["TCP payload bytes captured", String(segments.reduce(0) { $0 + $1.count })],
                ["secrets looked for (names, roles, the task, signal fields)", String(secrets.count)],
                ["secrets found in clear (UDP)", String(leaks.count)],
                ["secrets found in clear (TCP)", String(tcpLeaks.count)],
            ]))
            for l in (leaks + tcpLeaks).prefix(20) { say("  in clear: \(l)") }
            // Sizes, in 100-byte buckets (loopback shows each datagram twice: out and in).
            var buckets: [Int: Int] = [:]
            for p in packets { buckets[p.count / 100, default: 0] += 1 }
            say("sizes: " + buckets.keys.sorted().map { "\($0 * 100)-\($0 * 100 + 99) B: \(buckets[$0]!)" }.joined(separator: ", "))
            say("Target (issues 9 and 24): a passive capture of 60 s of gossip and task channels contains no node name, role name or signal value.")
            printResult("capture", [
                ("nodes", .int(n)), ("seconds", .double(seconds)), ("datagrams", .int(packets.count)),
                ("tcp_segments", .int(segments.count)), ("tasks", .int(submitted)),
                ("secrets", .int(secrets.count)), ("found_in_clear", .int(leaks.count)), ("found_in_clear_tcp", .int(tcpLeaks.count)),
                ("met", .bool(leaks.isEmpty && tcpLeaks.isEmpty && packets.count > 0 && !segments.isEmpty)),
            ])
        } catch {
            say("capture failed: \(error)")
            printResult("capture", [("error", .string("\(error)"))])
        }
    }
}
