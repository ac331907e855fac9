import RoleMeshPlatform
import Foundation
import RoleMeshAgent
import RoleMeshStorage

/// A private sshd on a loopback port, with throwaway ed25519 host and user keys made in its own
/// temp dir, for the anchors of `tasks` (ssh) and `services` (ssh -L). Needs `ssh`, `ssh-keygen`
/// and `sshd` (Debian openssh-client and openssh-server); creates `/run/sshd` if it is missing.
struct PrivateSSHD {
    let pid: pid_t
    let ssh: String
    /// `ssh` options and destination: `ssh` + `base` + a command runs it there.
    let base: [String]
    let port: UInt16

    /// nil with the reason when ssh is not installed or sshd does not come up.
    static func start(port: UInt16) throws -> (PrivateSSHD?, String) {
        guard let ssh = findTool("ssh"), let keygen = findTool("ssh-keygen"),
              let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return (nil, "ssh, ssh-keygen or sshd is not installed (Debian: openssh-client, openssh-server): ssh side skipped")
        }
        let dir = try makeTempRoot("sshd")
        chmod(dir, 0o700)
        for k in ["host", "user"] {
            let r = run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", "\(dir)/\(k)"], timeout: 20)
            guard r.status == 0 else { throw BenchError("ssh-keygen failed: \(r.stderr)") }
        }
        try FileManager.default.copyItem(atPath: "\(dir)/user.pub", toPath: "\(dir)/authorized_keys")
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
        AllowTcpForwarding yes
        PidFile \(dir)/sshd.pid
        """
        try AtomicFile.replace(URL(fileURLWithPath: "\(dir)/sshd_config"), with: config)
        try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let pid = try spawn(sshd, ["-D", "-e", "-f", "\(dir)/sshd_config"], stderr: .file("\(dir)/sshd.log"), label: "sshd", dieWithBench: true)
        let user = String(cString: getpwuid(getuid())!.pointee.pw_name)
        let base = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "LogLevel=ERROR", "-i", "\(dir)/user", "-p", String(port), "\(user)@127.0.0.1"]
        guard waitUntil(timeout: 10, interval: 0.2, { run(ssh, base + ["true"], timeout: 10).status == 0 }) else {
            killAndReap(pid)
            return (nil, "sshd did not come up: \(tail("\(dir)/sshd.log", 400))")
        }
        return (PrivateSSHD(pid: pid, ssh: ssh, base: base, port: port), "")
    }

    func stop() { killAndReap(pid) }
}
