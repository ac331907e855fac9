import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshCore
import RoleMeshStorage

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create a node: its directory, node.toml and key pair.")
    @Argument(help: "This node's name (letters, digits, '.', '_', '-').") var name: String
    @OptionGroup var node: NodeOptions
    @Option(name: .customLong("seed"), help: "A peer to contact on start (repeatable).") var seeds: [String] = []
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
        for s in seeds where NodeConfig.splitHostPort(s) == nil { throw ValidationError("invalid --seed \"\(s)\" (expected HOST:PORT)") }
    }

    func run() async throws {
        // A new mesh: its recovery code, shown once, and this node its first introducer.
        var config = try node.config(name: name, seeds: seeds)
        let (code, recoveryKey) = Recovery.newCode()
        config.recovery = recoveryKey
        let pair = try NodeSetup.create(dir.node, config)
        try Recovery.recordFirstIntroducer(dir.node, name: name, key: pair.publicKey, code: code)
        let pub = dir.node.publicKey(name)
        printOut(pub.path)
        printOut((try? String(contentsOf: pub, encoding: .utf8)) ?? "")
        printOut("recovery code (write it down now: it is shown this once and stored nowhere):")
        printOut("  \(code.text)")
        printOut("with it, on any device of this mesh, `rolemesh revoke NAME --recovery` and `rolemesh introducers add NAME --recovery` work even when every introducer is lost or stolen")
    }
}

/// The flags `init` and `join` share: how the new node listens and what it holds.
struct NodeOptions: ParsableArguments {
    @Option(help: "UDP gossip and TCP task address, HOST:PORT; 0.0.0.0 (the default, what a laptop should use) follows the device's addresses as it changes networks.") var listen: String = "0.0.0.0:7946"
    @Option(name: .customLong("role"), help: "A role this node holds (repeatable).") var roles: [String] = []
    @Option(name: .customLong("backup"), help: "A role this node stands by for, ROLE[=PRIORITY] (repeatable).") var backups: [String] = []
    @Option(help: "Timing profile: lan, travel or fast.") var profile: String = "lan"

    func validate() throws {
        guard TimingProfile.named(profile) != nil else { throw ValidationError("unknown profile \"\(profile)\" (lan, travel, fast)") }
        for r in roles where !NodeName.isValid(r) { throw ValidationError("invalid role name \"\(r)\"") }
        guard NodeConfig.splitHostPort(listen) != nil else { throw ValidationError("invalid --listen \"\(listen)\" (expected HOST:PORT)") }
        _ = try parsedBackups()
    }

    func parsedBackups() throws -> [String: Int] {
        var out: [String: Int] = [:]
        for b in backups {
            let parts = b.split(separator: "=", maxSplits: 1).map(String.init)
            let p = parts.count == 2 ? Int(parts[1]) : 1
            guard let p, p >= 1, NodeName.isValid(parts[0]) else { throw ValidationError("invalid --backup \"\(b)\" (expected ROLE or ROLE=PRIORITY)") }
            out[parts[0]] = p
        }
        return out
    }

    func config(name: String, seeds: [String]) throws -> NodeConfig {
        NodeConfig(name: name, listen: listen, seeds: seeds, roles: roles, backup: try parsedBackups(), profile: profile)
    }
}

/// Creating a node, for `init` and `join`: DIR, `roles/`, `node.toml` and the key pair.
enum NodeSetup {
    /// 73 when `node.toml` or the secret key is there already.
    static func refuseExisting(_ node: NodeDirectory, name: String) throws(MeshError) {
        let fm = FileManager.default
        if fm.fileExists(atPath: node.configFile.path) {
            throw MeshError(MeshError.cantCreate, "\(node.configFile.path) already exists; nothing was changed")
        }
        if fm.fileExists(atPath: node.secretKey(name).path) {
            throw MeshError(MeshError.cantCreate, "\(node.secretKey(name).path) already exists; nothing was changed")
        }
    }

    static func create(_ node: NodeDirectory, _ config: NodeConfig) throws(MeshError) -> Ed25519.KeyPair {
        try refuseExisting(node, name: config.name)
        // Check what we are about to write, so init never creates a node.toml the agent refuses.
        do { _ = try NodeConfig.parse(config.render()) } catch {
            throw MeshError(MeshError.usage, "\(error)")
        }
        do {
            try FileManager.default.createDirectory(at: node.root, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: node.rolesDir, withIntermediateDirectories: true)
        } catch { throw MeshError(MeshError.other, "cannot create \(node.root.path): \(error.sentence)") }
        let pair = try KeyStore.generate(name: config.name, in: node)
        try AtomicFile.replace(node.configFile, with: config.render())
        return pair
    }

    /// Undoes `create` (a join that was refused): the node's files go, folders stay.
    static func remove(_ node: NodeDirectory, name: String) {
        for f in [node.configFile, node.secretKey(name), node.publicKey(name)] { try? FileManager.default.removeItem(at: f) }
    }
}

struct Keygen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keygen", abstract: "Write a key pair into DIR/keys/ and nothing else.")
    @Argument(help: "The node name the keys are for.") var name: String
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
    }

    func run() async throws {
        _ = try KeyStore.generate(name: name, in: dir.node)
        let pub = dir.node.publicKey(name)
        printOut(pub.path)
        printOut((try? String(contentsOf: pub, encoding: .utf8)) ?? "")
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the agent in the foreground, logging to stderr. SIGINT/SIGTERM leave gracefully.")
    @Flag(help: "Log debug detail (the same as --log-level debug).") var verbose = false
    @Option(name: .customLong("log-level"), help: "The lowest level logged: trace, debug, info (the default), notice, warning or error.")
    var logLevel: LogLevel?
    @OptionGroup var dir: DirOption

    /// swift-log's levels, as the command line spells them (`critical` is never needed to quiet the agent).
    enum LogLevel: String, ExpressibleByArgument, CaseIterable { case trace, debug, info, notice, warning, error }

    func validate() throws {
        if verbose, let logLevel, logLevel != .debug { throw ValidationError("--verbose is --log-level debug; give one or the other") }
    }

    func run() async throws {
        Log.verbose = verbose
        if let logLevel { Log.setLevel(named: logLevel.rawValue) }
        let agent = try Agent(dir: dir.node)
        RoleMesh.boundLeaving(of: agent)
        // Until the agent has left the mesh (SIGINT, SIGTERM, `rolemesh leave`); then the process ends.
        try await agent.run()
    }
}
