/// A value that a spawned job (`ChildTasks`) hands back to whoever waits for it: what a
/// `Task<Value, Never>` handle was used for, without the unstructured task.
public final class Later<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
    }
    private let state = Locked(State())

    public init() {}

    /// Already known.
    public init(_ value: Value) { state.withLock { $0.value = value } }

    /// Sets the value (the first one counts) and wakes every waiter.
    public func resolve(_ value: Value) {
        let woken = state.withLock { s -> [CheckedContinuation<Value, Never>] in
            guard s.value == nil else { return [] }
            s.value = value
            defer { s.waiters = [] }
            return s.waiters
        }
        for c in woken { c.resume(returning: value) }
    }

    /// The value, once it is set.
    public var value: Value {
        get async {
            await withCheckedContinuation { c in
                let known = state.withLock { s -> Value? in
                    if let v = s.value { return v }
                    s.waiters.append(c)
                    return nil
                }
                if let known { c.resume(returning: known) }
            }
        }
    }
}
