import RoleMeshPlatform
import RoleMeshAgent

/// Waits for async work from a synchronous command (the CLI's commands are synchronous; the
/// task channel is async). The work bounds its own time.
func blockingWait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = Locked<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.signal()
    }
    done.wait()
    return result.withLock { $0! }
}
