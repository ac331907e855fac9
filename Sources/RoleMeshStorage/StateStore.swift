import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// What the agent keeps across restarts under `DIR/state/`: its incarnation (which only
/// rises) and the members it knew, so it rejoins even when no seed is alive.
public struct StateStore: Sendable {
    public let dir: URL
    public init(dir: NodeDirectory) { self.dir = dir.stateDir }

    public var incarnationFile: URL { dir.appendingPathComponent("incarnation") }
    public var peersFile: URL { dir.appendingPathComponent("peers.json") }

    public func prepare() throws(MeshError) {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw MeshError(MeshError.other, "cannot create \(dir.path): \(error.sentence)")
        }
    }

    /// The incarnation for this run: one above the last one used, persisted before use.
    public func nextIncarnation() throws(MeshError) -> UInt64 {
        let last = (try? String(contentsOf: incarnationFile, encoding: .utf8))
            .flatMap { UInt64($0.trimmed) } ?? 0
        let next = last + 1
        try saveIncarnation(next)
        return next
    }

    public func saveIncarnation(_ value: UInt64) throws(MeshError) {
        try AtomicFile.replace(incarnationFile, with: "\(value)\n")
    }

    public func loadPeers() -> [String: String] {
        guard let data = try? Data(contentsOf: peersFile) else { return [:] }
        return ControlJSON.decode([String: String].self, from: data) ?? [:]
    }

    public func savePeers(_ peers: [String: WireAddress]) throws(MeshError) {
        try AtomicFile.replace(peersFile, with: [UInt8](ControlJSON.line(peers.mapValues(\.description))))
    }
}
