import RoleMeshPlatform
import RoleMeshControl

/// One JSON file in `state/` that the agent keeps between runs (slot records, trust statements,
/// invites): read whole, replaced atomically. A missing or unreadable file reads as nil, since each
/// of these is also learned again from the mesh or simply starts empty.
public struct StateJSON<Payload: Codable>: Sendable {
    public let name: String
    public init(name: String) { self.name = name }

    public func url(_ dir: NodeDirectory) -> URL { dir.stateDir.appendingPathComponent(name) }

    public func load(_ dir: NodeDirectory) -> Payload? {
        guard let data = try? Data(contentsOf: url(dir)) else { return nil }
        return ControlJSON.decode(Payload.self, from: data)
    }

    public func save(_ payload: Payload, _ dir: NodeDirectory) throws(MeshError) {
        try AtomicFile.replace(url(dir), with: [UInt8](ControlJSON.line(payload)))
    }
}
