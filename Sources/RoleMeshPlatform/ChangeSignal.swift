
/// A change count that async code can wait on: `logs --follow`, a leaving executor and a queued
/// submission wait for "something changed" this way, never by polling on a timer.
public final class ChangeSignal: Sendable {
    private struct State {
        var count: UInt64 = 0
        var nextID: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Locked(State())

    public init() {}

    public var count: UInt64 { state.withLock { $0.count } }

    /// Something changed: every waiter wakes.
    public func bump() {
        let woken = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.count &+= 1
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for c in woken { c.resume() }
    }

    /// Returns the count once it differs from `seen`, or when `timeout` passes or the task is
    /// cancelled (whichever comes first).
    @discardableResult
    public func wait(after seen: UInt64, timeout: Duration) async -> UInt64 {
        await Self.first(of: [(self, seen)], timeout: timeout)
        return count
    }

    /// Returns once any of `signals` differs from its seen count, `timeout` passes, or the task
    /// is cancelled.
    public static func first(of signals: [(ChangeSignal, UInt64)], timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            for (signal, seen) in signals { group.addTask { await signal.wait(after: seen) } }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns once the count differs from `seen`, or when the task is cancelled.
    public func wait(after seen: UInt64) async {
        let id = state.withLock { s -> UInt64 in s.nextID &+= 1; return s.nextID }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    // Checked under the lock the cancellation handler also takes: no lost wakeup.
                    if s.count != seen || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
