import RoleMeshPlatform

/// The first outcome any thread settles, for a command waiting on threads (not tasks): `submit`'s
/// output thread and its second Ctrl-C. `wait()` blocks on purpose: awaiting instead would suspend
/// the main task, and resuming it starts the dispatch main queue's worker threads, 0.6 ms of the
/// 6 ms `submit` may take (issue 27).
final class FirstOf<Outcome: Sendable>: Sendable {
    private let outcome = Locked<Outcome?>(nil)
    private let settled = DispatchSemaphore(value: 0)

    /// Settles it, unless another thread did first.
    func settle(_ value: Outcome) {
        let first = outcome.withLock { o in
            guard o == nil else { return false }
            o = value
            return true
        }
        if first { settled.signal() }
    }

    func wait() -> Outcome {
        settled.wait()
        return outcome.withLock { $0! }
    }
}
