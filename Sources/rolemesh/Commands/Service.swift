import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshStorage

struct Service: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Run the agent as a service: a systemd unit (a launchd job on macOS).",
        subcommands: [ServiceInstall.self, ServiceUninstall.self])
}

struct ServiceInstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Write and enable a unit running `rolemesh agent --dir DIR` (a user unit unless --system).")
    @Flag(help: "A system unit, started at boot, running as the node directory's owner (run it as root).") var system = false
    @Flag(name: .customLong("print"), help: "Print the unit file; write and enable nothing.") var printOnly = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let unit = try ServiceFiles.unit(for: dir.node, system: system)
        let path = ServiceFiles.path(of: unit)
        if printOnly {
            // The unit alone on stdout (it may be redirected into a file); where it would go
            // and what would run, on stderr.
            printOut(unit.render())
            printNote("would write \(path), then run `\(ServiceUnit.shellLine(unit.enableCommands(path: path)))`")
            return
        }
        if let why = ServiceFiles.managerProblem(unit) {
            throw MeshError(MeshError.unavailable, "no service was installed: \(why); run `rolemesh agent --dir \(dir.node.root.path)` "
                            + "from whatever starts programs here instead (`rolemesh service install --print` shows the unit)")
        }
        try ServiceFiles.write(unit, to: path)
        printOut("wrote \(path)")
        // An agent started by hand holds the node's port: the service's own would fail to bind.
        if (try? ControlClient(dir: dir.node)) != nil {
            printOut("note: an agent already runs for \(dir.node.root.path); if it is not this service's, stop it "
                     + "(`rolemesh leave --dir \(dir.node.root.path)`) and run `\(ServiceUnit.shellLine(unit.enableCommands(path: path)))` again")
        }
        try ServiceFiles.runAll(unit.enableCommands(path: path), after: "\(path) was written")
        printOut("enabled and started \(unit.name)")
    }
}

struct ServiceUninstall: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uninstall",
        abstract: "Stop, disable and remove the unit `service install` wrote (user or system).")
    @OptionGroup var dir: DirOption

    func run() async throws {
        let units = try [false, true].map { try ServiceFiles.unit(for: dir.node, system: $0) }
        let installed = units.filter { FileManager.default.fileExists(atPath: ServiceFiles.path(of: $0)) }
        guard !installed.isEmpty else {
            throw MeshError(MeshError.other, "no RoleMesh service is installed for this node (looked for "
                            + units.map { ServiceFiles.path(of: $0) }.joined(separator: " and ") + ")")
        }
        for unit in installed {
            let path = ServiceFiles.path(of: unit)
            // Without a service manager here nothing runs the unit: the file just goes.
            let problem = ServiceFiles.managerProblem(unit)
            // Stopped first: removing the file of a running unit would leave an agent nobody manages.
            if problem == nil {
                try ServiceFiles.runAll(unit.disableCommands, after: "\(path) is still installed", orDelete: path)
            }
            guard unlink(path) == 0 else {
                throw MeshError(MeshError.other, "cannot remove \(path): \(String(cString: strerror(errno)))"
                                + (unit.system && geteuid() != 0 ? " (run it with sudo)" : ""))
            }
            if let problem {
                printOut("removed \(path) (\(problem), so nothing was stopped or disabled)")
                continue
            }
            try ServiceFiles.runAll(unit.forgetCommands, after: "\(path) was removed")
            printOut("stopped, disabled and removed \(path)")
        }
    }
}

/// Where a node's unit lives and how it is written and handed to the service manager.
enum ServiceFiles {
    static func unit(for node: NodeDirectory, system: Bool) throws(MeshError) -> ServiceUnit {
        let config = try node.loadConfig()
        let user = system ? SystemCommand.owner(of: node.root.path) : nil
        if system, user == nil {
            throw MeshError(MeshError.config, "cannot find the owner of \(node.root.path), which a system unit runs as")
        }
        let unit = ServiceUnit(manager: ServiceUnit.platformManager, system: system, node: config.name,
                               binary: SystemCommand.currentExecutable, dir: node.root.path, user: user, home: SystemCommand.home)
        if let bad = unit.unsafeWord {
            throw MeshError(MeshError.usage, "\(bad.escapingControlCharacters) holds a control character (a newline, a tab), which would change what the unit says; "
                            + "use a directory whose path has none")
        }
        return unit
    }

    /// Why the service manager cannot take the unit here (nil: it can): systemctl missing, no
    /// systemd on this machine, or no user manager for this user (a `su` or `sudo` shell).
    static func managerProblem(_ unit: ServiceUnit) -> String? {
        guard let probe = unit.probeCommand else { return nil }
        guard let tool = SystemCommand.find(probe[0]) else { return "\(probe[0]) was not found: this machine has no systemd" }
        let state = Spawn.capture([tool] + probe.dropFirst(), keep: 1, quiet: true, within: 10)
        if ServiceUnit.answeringStates.contains(state.output.trimmed) { return nil }
        let err = Spawn.capture([tool] + probe.dropFirst(), keep: 2, quiet: true, within: 10).output
        let said = err.split(separator: "\n").last.map { ": \($0)" } ?? ""
        if unit.system { return "systemd does not run this machine (`\(ServiceUnit.shellLine([probe]))`\(said))" }
        return "no systemd user manager answers for this user (`\(ServiceUnit.shellLine([probe]))`\(said)); log in as that user (not su or sudo), or use --system"
    }

    static func path(of unit: ServiceUnit) -> String {
        unit.folder(environment: ProcessInfo.processInfo.environment) + "/" + unit.fileName
    }

    static func write(_ unit: ServiceUnit, to path: String) throws(MeshError) {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw MeshError(MeshError.other, "cannot create \(folder): \(error.sentence)" + sudoHint(unit))
        }
        do { try AtomicFile.replace(URL(fileURLWithPath: path), with: unit.render()) } catch {
            throw MeshError(error.code, error.message + sudoHint(unit))
        }
        // A unit file holds no secret; 0644 is what the service tools expect to read.
        chmod(path, 0o644)
    }

    private static func sudoHint(_ unit: ServiceUnit) -> String { unit.system && geteuid() != 0 ? " (run it with sudo)" : "" }

    /// Runs each command in order; on the first that is missing or fails, one sentence saying
    /// what happened and what to do, exit 1: run them by hand, or (`orDelete`) delete that file.
    static func runAll(_ commands: [[String]], after done: String, orDelete file: String? = nil) throws(MeshError) {
        let byHand = ServiceUnit.shellLine(commands)
        let fix = file.map { "fix that and run the command again, or delete \($0) by hand" } ?? "run `\(byHand)` by hand"
        for argv in commands {
            guard let tool = SystemCommand.find(argv[0]) else {
                throw MeshError(MeshError.other, "\(argv[0]) was not found; \(done); \(fix)")
            }
            let r = SystemCommand.run([tool] + argv.dropFirst())
            if r.status != 0 {
                let why = r.stderr.split(separator: "\n").last.map { ": \($0)" } ?? ""
                throw MeshError(MeshError.other, "`\(ServiceUnit.shellLine([argv]))` failed (exit \(r.status)\(why)); \(done); \(fix)")
            }
        }
    }
}
