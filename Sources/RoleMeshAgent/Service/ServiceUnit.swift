import RoleMeshPlatform

/// The file that runs `rolemesh agent --dir DIR` at login or boot: a systemd unit on Linux, a
/// launchd property list on macOS. Pure text, so `service install --print` and the tests see
/// exactly what `install` writes.
public struct ServiceUnit: Equatable, Sendable {
    public enum Manager: Sendable { case systemd, launchd }

    public var manager: Manager
    /// A system unit (started at boot, runs as `user`) rather than the user's own.
    public var system: Bool
    public var node: String
    /// Absolute paths: a service starts with another working directory and PATH.
    public var binary: String
    public var dir: String
    /// The account a system unit runs as: the node directory's owner, whose key the agent accepts.
    public var user: String?
    /// The installing user's home: where user units and launchd logs go.
    public var home: String

    public init(manager: Manager, system: Bool, node: String, binary: String, dir: String, user: String? = nil, home: String) {
        self.manager = manager; self.system = system; self.node = node
        self.binary = binary; self.dir = dir; self.user = user; self.home = home
    }

    /// The platform's service manager.
    public static var platformManager: Manager {
        .systemd
    }

    /// What the service manager calls it: `rolemesh-NAME` (systemd), `rolemesh.NAME` (launchd).
    public var name: String { manager == .systemd ? "rolemesh-\(node).service" : "rolemesh.\(node)" }

    public var fileName: String { manager == .systemd ? name : "\(name).plist" }

    public var arguments: [String] { [binary, "agent", "--dir", dir] }

    /// Where the file goes: systemd's user or system unit folder, launchd's agents or daemons.
    public func folder(environment: [String: String]) -> String {
        switch (manager, system) {
        case (.systemd, false):
            let config = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? home + "/.config"
            return config + "/systemd/user"
        case (.systemd, true): return "/etc/systemd/system"
        case (.launchd, false): return home + "/Library/LaunchAgents"
        case (.launchd, true): return "/Library/LaunchDaemons"
        }
    }

    /// What loads, enables and starts the installed file at `path`, in order (argv[0] is found on PATH).
    public func enableCommands(path: String) -> [[String]] {
        switch manager {
        case .systemd: [systemctl + ["daemon-reload"], systemctl + ["enable", "--now", name]]
        case .launchd: [["launchctl", "bootstrap", launchdDomain, path]]
        }
    }

    /// What stops and disables it before its file is removed.
    public var disableCommands: [[String]] {
        switch manager {
        case .systemd: [systemctl + ["disable", "--now", name]]
        case .launchd: [["launchctl", "bootout", "\(launchdDomain)/\(name)"]]
        }
    }

    /// What makes the manager forget the removed file.
    public var forgetCommands: [[String]] { manager == .systemd ? [systemctl + ["daemon-reload"]] : [] }

    /// Asks whether the service manager runs and answers here (systemd only): a machine or a shell
    /// without it (a container, `su`) cannot enable anything, so nothing is written for it.
    public var probeCommand: [String]? { manager == .systemd ? systemctl + ["is-system-running"] : nil }

    /// `is-system-running`'s words for a manager that takes commands ("offline" and errors: none).
    public static let answeringStates: Set<String> = ["running", "degraded", "starting", "initializing", "maintenance", "stopping"]

    /// A path or name written into the file that holds a control character (a newline would add
    /// lines such as `ExecStartPre=` to a unit; the plist cannot hold one): nil when there is none.
    public var unsafeWord: String? {
        ([binary, dir, home] + (user.map { [$0] } ?? [])).first { w in w.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f } }
    }

    private var systemctl: [String] { system ? ["systemctl"] : ["systemctl", "--user"] }
    private var launchdDomain: String { system ? "system" : "gui/\(getuid())" }

    /// Commands as a person types them: `a && b`, words with spaces single-quoted.
    public static func shellLine(_ commands: [[String]]) -> String {
        commands.map { argv in
            argv.map { w in
                w.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@%+".contains($0) }) && !w.isEmpty
                    ? w : "'" + w.replacingScalar("'", with: "'\\''") + "'"
            }.joined(separator: " ")
        }.joined(separator: " && ")
    }

    public func render() -> String { manager == .systemd ? systemdUnit() : launchdPlist() }

    // MARK: systemd

    /// Seconds systemd waits for the graceful leave before SIGKILL: the agent lets running
    /// tasks finish for at most 30 s.
    static let stopTimeout = 45

    func systemdUnit() -> String {
        var unit = """
        [Unit]
        Description=RoleMesh agent (node \(node))
        Documentation=man:rolemesh(1)

        """
        // Only the system manager has network-online.target; a user unit naming it gets a warning.
        if system { unit += "Wants=network-online.target\nAfter=network-online.target\n" }
        unit += """

        [Service]
        Type=simple
        ExecStart=\(arguments.map(Self.systemdQuoted).joined(separator: " "))

        """
        if system, let user { unit += "User=\(user)\n" }
        unit += """
        Restart=on-failure
        RestartSec=2
        # 78 is a bad node.toml or key: restarting cannot fix it.
        RestartPreventExitStatus=78
        # SIGTERM is the agent's graceful leave: it tells the mesh, lets running tasks finish
        # (at most 30 s), then exits 0. Only the agent gets it; tasks still running after
        # TimeoutStopSec are killed with the rest of the unit.
        KillSignal=SIGTERM
        KillMode=mixed
        TimeoutStopSec=\(Self.stopTimeout)
        StandardOutput=journal
        StandardError=journal
        SyslogIdentifier=rolemesh-\(node)

        [Install]
        WantedBy=\(system ? "multi-user.target" : "default.target")

        """
        return unit
    }

    /// One ExecStart word: quoted when it holds a space or quote, with systemd's `%` and `$`
    /// specifiers doubled so a path is taken literally.
    static func systemdQuoted(_ word: String) -> String {
        var w = word.replacingScalar("%", with: "%%").replacingScalar("$", with: "$$")
        guard w.contains(where: { $0 == " " || $0 == "\t" || $0 == "\"" || $0 == "'" || $0 == "\\" }) || w.isEmpty else { return w }
        w = w.replacingScalar("\\", with: "\\\\").replacingScalar("\"", with: "\\\"")
        return "\"\(w)\""
    }

    // MARK: launchd

    func launchdPlist() -> String {
        func string(_ s: String) -> String {
            "<string>" + s.replacingScalar("&", with: "&amp;").replacingScalar("<", with: "&lt;")
                .replacingScalar(">", with: "&gt;") + "</string>"
        }
        let log = (system ? "/Library/Logs" : "\(home)/Library/Logs") + "/rolemesh-\(node).log"
        var plist = """
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
          <key>Label</key>\(string(name))
          <key>ProgramArguments</key>
          <array>
        \(arguments.map { "    " + string($0) }.joined(separator: "\n"))
          </array>

        """
        if system, let user { plist += "  <key>UserName</key>\(string(user))\n" }
        // KeepAlive with SuccessfulExit false: restarted after a crash, not after a graceful leave
        // (launchd stops a job with SIGTERM, the agent's graceful leave, and exit 0).
        plist += """
          <key>RunAtLoad</key><true/>
          <key>KeepAlive</key>
          <dict><key>SuccessfulExit</key><false/></dict>
          <key>ExitTimeOut</key><integer>\(Self.stopTimeout)</integer>
          <key>StandardErrorPath</key>\(string(log))
          <key>StandardOutPath</key>\(string(log))
        </dict>
        </plist>

        """
        return plist
    }
}
