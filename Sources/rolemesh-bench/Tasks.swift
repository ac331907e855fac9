#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import RoleMeshAgent

/// `tasks`: `rolemesh submit ROLE/true` to another local agent against `ssh 127.0.0.1 true` with
/// key authentication (a private sshd started here on a loopback port), and the MB/s of a large
/// stdout stream through each. Side by side, in one run.
enum TasksBench {
    static func main(_ args: [String]) {
        let o = Options(args, allowed: ["runs", "megabytes"])
        let runs = o.int("runs", 20, min: 3, max: 500)
        let megabytes = o.int("megabytes", 50, min: 1, max: 1000)
        do {
            try body(runs: runs, bytes: megabytes * 1_048_576)
        } catch {
            note("tasks: \(error)")
            Cleanup.shared.runAll()
            exit(1)
        }
    }

    static func time(_ f: () throws -> Void) rethrows -> Double {
        let t0 = monoNow()
        try f()
        return monoNow() - t0
    }

    static func body(runs: Int, bytes: Int) throws {
        say("tasks: \(machineDescription())")
        // RoleMesh: node1 submits, node2 holds role "bench".
        let mesh = try Mesh(label: "tasks", count: 2, profile: "lan", octet: 150, extra: { $0 == 2 ? ["--role", "bench"] : [] })
        defer { mesh.shutdown() }
        let roleDir = mesh.dir("node2") + "/roles/bench"
        try FileManager.default.createDirectory(atPath: roleDir, withIntermediateDirectories: true)
        precondition(FileManager.default.createFile(atPath: roleDir + "/true", contents: Data("#!/bin/sh\nexit 0\n".utf8), attributes: [.posixPermissions: 0o755]), "cannot write a task file")
        precondition(FileManager.default.createFile(atPath: roleDir + "/stream", contents: Data("#!/bin/sh\nexec head -c \"$1\" /dev/zero\n".utf8),
                                       attributes: [.posixPermissions: 0o755]), "cannot write a task file")
        try mesh.start()
        try mesh.waitConverged(timeout: 30, role: "bench", route: "node2")
        let submit = { (extra: [String]) -> RunResult in
            run(rolemeshBinary, ["submit", "--dir", mesh.dir("node1")] + extra, timeout: 120, label: "submit")
        }
        for _ in 0..<3 { _ = submit(["bench/true"]) }      // warm caches, as ssh's are warm
        var rmLatency: [Double] = []
        for _ in 0..<runs {
            var r: RunResult?
            let dt = time { r = submit(["bench/true"]) }
            guard r?.status == 0 else { throw BenchError("submit bench/true failed: \(r?.stderr ?? "")") }
            rmLatency.append(dt * 1000)
        }
        var rmRate: [Double] = []
        for _ in 0..<3 {
            var r: RunResult?
            let dt = time { r = submit(["bench/stream", "--", String(bytes)]) }
            guard r?.status == 0, r?.stdout.utf8.count == bytes else { throw BenchError("submit bench/stream returned \(r?.stdout.utf8.count ?? 0) bytes") }
            rmRate.append(Double(bytes) / 1_048_576 / dt)
        }

        // ssh with key authentication against a private sshd on a loopback port.
        var sshLatency: [Double] = [], sshRate: [Double] = []
        var sshNote = ""
        if let ssh = findTool("ssh"), let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
           let keygen = findTool("ssh-keygen") {
            let dir = try makeTempRoot("sshd")
            chmod(dir, 0o700)
            for k in ["host", "user"] {
                let r = run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", "\(dir)/\(k)"], timeout: 20)
                guard r.status == 0 else { throw BenchError("ssh-keygen failed: \(r.stderr)") }
            }
            try FileManager.default.copyItem(atPath: "\(dir)/user.pub", toPath: "\(dir)/authorized_keys")
            let port = freshPort() + 500
            let config = """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(dir)/host
            AuthorizedKeysFile \(dir)/authorized_keys
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin prohibit-password
            StrictModes no
            UsePAM no
            PidFile \(dir)/sshd.pid
            """
            try AtomicFile.replace(URL(fileURLWithPath: "\(dir)/sshd_config"), with: config)
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
            let pid = try spawn(sshd, ["-D", "-e", "-f", "\(dir)/sshd_config"], stderr: .file("\(dir)/sshd.log"), label: "sshd", dieWithBench: true)
            defer { killAndReap(pid) }
            let user = String(cString: getpwuid(getuid())!.pointee.pw_name)
            let base = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "LogLevel=ERROR", "-i", "\(dir)/user", "-p", String(port), "\(user)@127.0.0.1"]
            let up = waitUntil(timeout: 10, interval: 0.2) { run(ssh, base + ["true"], timeout: 10).status == 0 }
            if up {
                for _ in 0..<3 { _ = run(ssh, base + ["true"], timeout: 10) }
                for _ in 0..<runs {
                    var r: RunResult?
                    let dt = time { r = run(ssh, base + ["true"], timeout: 30, label: "ssh") }
                    guard r?.status == 0 else { throw BenchError("ssh true failed: \(r?.stderr ?? "")") }
                    sshLatency.append(dt * 1000)
                }
                for _ in 0..<3 {
                    var r: RunResult?
                    let dt = time { r = run(ssh, base + ["head -c \(bytes) /dev/zero"], timeout: 120, label: "ssh") }
                    guard r?.status == 0, r?.stdout.utf8.count == bytes else { throw BenchError("ssh stream returned \(r?.stdout.utf8.count ?? 0) bytes") }
                    sshRate.append(Double(bytes) / 1_048_576 / dt)
                }
            } else {
                sshNote = "sshd did not come up: \(tail("\(dir)/sshd.log", 400))"
            }
        } else {
            sshNote = "ssh, ssh-keygen or sshd is not installed (Debian: openssh-client, openssh-server): ssh side skipped"
        }
        if !sshNote.isEmpty { note(sshNote) }

        let rl = Summary(values: rmLatency), sl = Summary(values: sshLatency)
        let rr = Summary(values: rmRate), sr = Summary(values: sshRate)
        let ratio = rl.median.flatMap { r in sl.median.map { r / $0 } }
        let met = ratio.map { $0 <= 0.2 }
        say(table([
            ["", "rolemesh submit", "ssh (key auth)", "ratio", "target"],
            ["ROLE/true, median ms", fmt(rl.median, 1), fmt(sl.median, 1), fmt(ratio, 3), "≤ 0.2 × ssh: \(metText(met))"],
            ["ROLE/true, range ms", "\(fmt(rl.min, 1))–\(fmt(rl.max, 1))", "\(fmt(sl.min, 1))–\(fmt(sl.max, 1))", "", "\(runs) runs each"],
            ["\(bytes / 1_048_576) MB stdout, median MB/s", fmt(rr.median, 0), fmt(sr.median, 0),
             fmt(rr.median.flatMap { r in sr.median.map { r / $0 } }, 2), "side by side"],
        ]))
        say("anchor (anchors.md): ssh host true 282 ms median here; 50 MB adds ~85 ms (~600 MB/s)")
        printResult("tasks", [("submit_true_ms", rl.json), ("ssh_true_ms", sl.json), ("ratio", .optional(ratio)),
                              ("target_met", .optional(met)), ("stream_mb_s", rr.json), ("ssh_stream_mb_s", sr.json),
                              ("bytes", .int(bytes)), ("note", .string(sshNote))])
    }
}
