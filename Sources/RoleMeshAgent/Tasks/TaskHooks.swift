import Foundation

/// The task channel plugs in here (issue 4).
extension Agent {
    func startTasks() {}
    func stopTasks(_ done: @escaping () -> Void) { done() }
    func handleTasks(_ req: JSON, _ conn: ControlConnection) -> Bool { false }
}
