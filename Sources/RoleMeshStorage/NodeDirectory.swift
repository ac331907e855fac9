import RoleMeshPlatform
import RoleMeshCore

/// The files of one node (contract: "A node's directory").
public struct NodeDirectory: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    /// `--dir`, else `$ROLEMESH_DIR`, else `~/.rolemesh`.
    public static func resolve(_ dir: String?) -> NodeDirectory {
        if let dir, !dir.isEmpty { return NodeDirectory(root: URL(fileURLWithPath: dir)) }
        if let env = ProcessInfo.processInfo.environment["ROLEMESH_DIR"], !env.isEmpty {
            return NodeDirectory(root: URL(fileURLWithPath: env))
        }
        return NodeDirectory(root: home.appendingPathComponent(".rolemesh"))
    }

    /// `~`: `$HOME` when set, as ssh, git and the shell take it; the password database only without it.
    public static var home: URL {
        if let h = ProcessInfo.processInfo.environment["HOME"], h.hasPrefix("/") { return URL(fileURLWithPath: h) }
        return FileManager.default.homeDirectoryForCurrentUser
    }

    public var configFile: URL { root.appendingPathComponent("node.toml") }
    public var keysDir: URL { root.appendingPathComponent("keys") }
    public var rolesDir: URL { root.appendingPathComponent("roles") }
    public var stateDir: URL { root.appendingPathComponent("state") }
    public var hooksDir: URL { root.appendingPathComponent("hooks") }
    public var socketPath: String { root.appendingPathComponent("agent.sock").path }
    public func publicKey(_ name: String) -> URL { keysDir.appendingPathComponent("\(name).pub") }
    public func secretKey(_ name: String) -> URL { keysDir.appendingPathComponent("\(name).secret") }

    /// Everything RoleMesh creates is for its owner only: folders 0700, files 0600. Set once at
    /// process start (the CLI and the agent); tasks inherit it.
    public static func restrictNewFiles() { umask(0o077) }

    /// Tightens what an older version or a hand-made node left open to others: `DIR`, `keys/`
    /// and everything under `state/` (journal, task output, queue) lose group and other bits.
    /// Only what this user owns is changed; each change is reported once.
    public func tightenModes(report: (String) -> Void) {
        let me = geteuid()
        func tighten(_ path: String) -> Bool {
            var st = stat()
            guard lstat(path, &st) == 0, st.st_uid == me, st.st_mode & S_IFMT != S_IFLNK, st.st_mode & 0o077 != 0 else { return false }
            return chmod(path, (st.st_mode & 0o7777) & ~0o077) == 0
        }
        for folder in [root.path, keysDir.path, stateDir.path] where tighten(folder) {
            report("\(folder) was open to group or others; now 0700")
        }
        var changed = 0
        for rel in (try? FileManager.default.subpathsOfDirectory(atPath: stateDir.path)) ?? [] where tighten(stateDir.path + "/" + rel) {
            changed += 1
        }
        if changed > 0 { report("\(changed) files under \(stateDir.path) were open to group or others; now owner-only") }
    }

    /// Reads and validates node.toml; errors name the key and line (exit 78).
    public func loadConfig() throws(MeshError) -> NodeConfig {
        guard let text = try? String(contentsOf: configFile, encoding: .utf8) else {
            throw MeshError(MeshError.config, "cannot read \(configFile.path): run `rolemesh init NAME` first")
        }
        do { return try NodeConfig.parse(text) } catch {
            throw MeshError(MeshError.config, "\(configFile.path): \(error.description.replacing("node.toml", with: "").trimmed { ": ".contains($0) })")
        }
    }
}
