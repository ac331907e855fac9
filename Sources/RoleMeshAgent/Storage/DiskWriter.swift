#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import RoleMeshCore

/// The agent's file writes, one at a time and in the order they were asked for, on a queue of
/// their own: a slow or stuck disk delays the write, never the failure detector. The order is
/// what keeps an older incarnation (or overrides, or peers) from landing after a newer one.
public final class DiskWriter: @unchecked Sendable {
    private let queue = DispatchQueue(label: "rolemesh.disk", qos: .utility)
    private let replies: DispatchQueue
    /// Test-only: `ROLEMESH_TEST_WRITE_DELAY_MS` makes every write wait that long first, to play
    /// a slow disk (SlowDiskTests). Read once, at start.
    private let delayMicros: UInt32

    public init(replyingOn replies: DispatchQueue, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.replies = replies
        let ms = environment["ROLEMESH_TEST_WRITE_DELAY_MS"].flatMap { UInt32($0) } ?? 0
        delayMicros = min(ms, 60_000) * 1_000
    }

    /// Runs `body` after every write asked for before it; `done`, if given, gets its failure
    /// (nil: written) on the reply queue (the agent's); without it a failure is logged.
    public func write(_ body: @escaping @Sendable () throws(MeshError) -> Void,
                      then done: (@Sendable (MeshError?) -> Void)? = nil) {
        queue.async { [self] in
            if delayMicros > 0 { usleep(delayMicros) }
            let failure: MeshError?
            do throws(MeshError) { try body(); failure = nil } catch { failure = error }
            if let done { replies.async { done(failure) } } else if let failure { Log.warn(failure.message) }
        }
    }

    /// Runs `body` on the reply queue once every write asked for so far is on disk (leaving).
    public func whenDone(_ body: @escaping @Sendable () -> Void) {
        queue.async { [replies] in replies.async(execute: body) }
    }
}
