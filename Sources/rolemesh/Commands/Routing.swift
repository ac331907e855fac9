import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage

struct Route: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "route", abstract: "Where a task for ROLE would go now, and why every other node was skipped.")
    @Argument(help: "The role.") var role: String
    @Flag(help: "Route heavy work (skips nodes on battery or throttled).") var heavy = false
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(role) else { throw ValidationError("invalid role name \"\(role)\"") }
    }

    func run() async throws {
        let c = try ControlClient(dir: dir.node)
        try c.send(.route(role: role, heavy: heavy))
        let line = try c.firstLine()
        // No node: the answer still names every skipped node, and carries the failure too.
        guard let r = ControlJSON.decode(RouteReply.self, from: line) else {
            try ControlClient.check(line)
            throw MeshError(MeshError.other, "the agent's answer could not be read")
        }
        if json {
            printOut(ControlJSON.string(r.printed))
        } else {
            printOut("\(role)\(heavy ? " (heavy)" : "") -> \(r.node ?? "(no node)")" + (r.via.map { " (via \($0): no direct path from here)" } ?? ""))
            for s in r.skipped { printOut("  skipped \(s.node): \(s.reason)") }
        }
        if let failure = r.error { throw MeshError(MeshError.unavailable, failure) }
    }
}

/// `rolemesh roles add|remove ROLE`
struct Roles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "roles", abstract: "Add or remove a role this node holds; persisted and gossiped.")
    @Argument(help: "add or remove") var action: RoleAction
    @Argument(help: "The role.") var role: String
    @OptionGroup var dir: DirOption

    func run() async throws {
        let r = try ControlClient.call(dir.node, .roles(action, role: role), as: OkReply.self)
        if let note = r.note { printNote(note) }
        if action == .add { Self.noteMissingTasks(role, dir.node) }
    }

    /// Holding a role whose folder is missing here is allowed (tasks may be copied in later), but said.
    static func noteMissingTasks(_ role: String, _ node: NodeDirectory) {
        let folder = node.rolesDir.appendingPathComponent(role).path
        if !FileManager.default.isDirectory(atPath: folder) {
            printNote("\(folder)/ does not exist: \(role) offers no tasks on this node until executable files are put there")
        }
    }
}

/// `rolemesh backup add|remove ROLE [--priority P]`
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backup", abstract: "Stand by for a role (priority 1 is first), or stop; persisted and gossiped.")
    @Argument(help: "add or remove") var action: RoleAction
    @Argument(help: "The role.") var role: String
    @Option(help: "Priority; 1 is first.") var priority: Int = 1
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard (1...255).contains(priority) else { throw ValidationError("--priority must be 1...255") }
    }

    func run() async throws {
        let r = try ControlClient.call(dir.node, .backup(action, role: role, priority: priority), as: OkReply.self)
        if let note = r.note { printNote(note) }
        if action == .add { Roles.noteMissingTasks(role, dir.node) }
    }
}

typealias RoleAction = ControlRequest.RoleAction
extension ControlRequest.RoleAction: ExpressibleByArgument {}

/// `rolemesh signal set KEY=VALUE...` · `rolemesh signal clear`
struct Signal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Pin resource signals over what the probes read.",
        discussion: "Keys: load (per core), mem_free (0..1), battery (0..1), on_battery (bool), throttled (bool), idle (bool).")
    @Argument(help: "set or clear") var action: SignalAction
    @Argument(help: "KEY=VALUE pairs (for set).") var assignments: [String] = []
    @OptionGroup var dir: DirOption

    enum SignalAction: String, ExpressibleByArgument, CaseIterable { case set, clear }

    func validate() throws {
        if action == .set, assignments.isEmpty { throw ValidationError("signal set needs KEY=VALUE") }
        if action == .clear, !assignments.isEmpty { throw ValidationError("signal clear takes no arguments") }
    }

    func run() async throws {
        let req = ControlRequest.signal(action == .clear ? .clear : .set(assignments))
        _ = try ControlClient.callLine(dir.node, req)
    }
}

struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain", abstract: "Stop taking new tasks (running ones finish).")
    @OptionGroup var dir: DirOption
    func run() async throws { _ = try ControlClient.callLine(dir.node, .drain) }
}

struct Undrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "undrain", abstract: "Take new tasks again.")
    @OptionGroup var dir: DirOption
    func run() async throws { _ = try ControlClient.callLine(dir.node, .undrain) }
}
