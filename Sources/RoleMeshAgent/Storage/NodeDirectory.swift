import Foundation
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
        return NodeDirectory(root: FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".rolemesh"))
    }

    public var configFile: URL { root.appendingPathComponent("node.toml") }
    public var keysDir: URL { root.appendingPathComponent("keys") }
    public var rolesDir: URL { root.appendingPathComponent("roles") }
    public var stateDir: URL { root.appendingPathComponent("state") }
    public var socketPath: String { root.appendingPathComponent("agent.sock").path }
    public func publicKey(_ name: String) -> URL { keysDir.appendingPathComponent("\(name).pub") }
    public func secretKey(_ name: String) -> URL { keysDir.appendingPathComponent("\(name).secret") }

    /// Reads and validates node.toml; errors name the key and line (exit 78).
    public func loadConfig() throws(MeshError) -> NodeConfig {
        guard let text = try? String(contentsOf: configFile, encoding: .utf8) else {
            throw MeshError(MeshError.config, "cannot read \(configFile.path): run `rolemesh init NAME` first")
        }
        do { return try NodeConfig.parse(text) } catch {
            throw MeshError(MeshError.config, "\(configFile.path): \(error.description.replacingOccurrences(of: "node.toml", with: "").trimmingCharacters(in: CharacterSet(charactersIn: ": ")))")
        }
    }
}
