import Foundation
import RoleMeshCore

/// What the agent keeps across restarts under `DIR/state/`: its incarnation (which only
/// rises) and the members it knew, so it rejoins even when no seed is alive.
public struct StateStore: Sendable {
    public let dir: URL
    public init(dir: NodeDirectory) { self.dir = dir.stateDir }

    var incarnationFile: URL { dir.appendingPathComponent("incarnation") }
    var peersFile: URL { dir.appendingPathComponent("peers.json") }

    public func prepare() throws(MeshError) {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw MeshError(MeshError.other, "cannot create \(dir.path): \(error.localizedDescription)")
        }
    }

    /// The incarnation for this run: one above the last one used, persisted before use.
    public func nextIncarnation() throws(MeshError) -> UInt64 {
        let last = (try? String(contentsOf: incarnationFile, encoding: .utf8))
            .flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        let next = last + 1
        try saveIncarnation(next)
        return next
    }

    public func saveIncarnation(_ value: UInt64) throws(MeshError) {
        try AtomicFile.replace(incarnationFile, with: "\(value)\n")
    }

    public func loadPeers() -> [String: String] {
        guard let data = try? Data(contentsOf: peersFile),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: String] else { return [:] }
        return obj
    }

    public func savePeers(_ peers: [String: WireAddress]) throws(MeshError) {
        let obj = peers.mapValues(\.description)
        guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) else { return }
        try AtomicFile.replace(peersFile, with: [UInt8](data))
    }
}
