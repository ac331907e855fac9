import Glibc

/// A value that only ever changes under its lock: the one shared-state primitive of the shell.
///
/// Why not `Synchronization.Mutex`: on Linux its lock is a futex inside the Swift runtime, which
/// ThreadSanitizer cannot see, so `scripts/test.sh --tsan` reported every access it guards as a
/// race. A pthread mutex is what TSan understands.
public final class Locked<Value: Sendable>: @unchecked Sendable {  // safe: `value` is only touched inside `withLock`, under `mutex`
    private var value: Value
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, under the lock. Never await or block inside it.
    public func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
