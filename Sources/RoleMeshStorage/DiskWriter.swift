import RoleMeshPlatform
import RoleMeshCore

/// The agent's file writes, one at a time and in the order they were asked for, on a queue of
/// their own: a slow or stuck disk delays the write, never the failure detector. The order is
/// what keeps an older incarnation (or overrides, or peers) from landing after a newer one.
public final class DiskWriter: Sendable {
    private let queue = DispatchQueue(label: "rolemesh.disk", qos: .utility)
    /// Test-only: `ROLEMESH_TEST_WRITE_DELAY_MS` makes every write wait that long first, to play
    /// a slow disk (SlowDiskTests). Read once, at start.
    private let delay: DispatchTimeInterval?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let ms = environment["ROLEMESH_TEST_WRITE_DELAY_MS"].flatMap { Int($0) } ?? 0
        delay = ms > 0 ? .milliseconds(min(ms, 60_000)) : nil
    }

    /// Runs `body` after every write asked for before it, without waiting for it; a failure is logged.
    public func write(_ body: @escaping @Sendable () throws(MeshError) -> Void) {
        queue.async { [self] in
            if let failure = run(body) { Log.warn(failure.message) }
        }
    }

    /// Like `write`, and waits until it is done: nil when written, else why not.
    public func written(_ body: @escaping @Sendable () throws(MeshError) -> Void) async -> MeshError? {
        await withCheckedContinuation { c in
            queue.async { [self] in c.resume(returning: run(body)) }
        }
    }

    private func run(_ body: () throws(MeshError) -> Void) -> MeshError? {
        // The slow disk played here holds the disk queue, exactly as a slow disk would.
        if let delay { _ = DispatchSemaphore(value: 0).wait(timeout: .now() + delay) }
        do throws(MeshError) { try body(); return nil } catch { return error }
    }

    /// Runs `body` (on the disk queue) once every write asked for so far is done (leaving).
    public func whenDone(_ body: @escaping @Sendable () -> Void) {
        queue.async(execute: body)
    }
}
