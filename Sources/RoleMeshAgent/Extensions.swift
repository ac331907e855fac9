import Foundation
import RoleMeshCore

/// Hooks where routing (issue 3) and tasks (issue 4) plug into the agent.
extension Agent {
    func startExtensions() {}
    func stopExtensions(_ done: @escaping () -> Void) { done() }
    func handleExtension(_ req: JSON, _ conn: ControlConnection) -> Bool { false }
    func rolesJSON() -> JSON { .object([]) }
}
