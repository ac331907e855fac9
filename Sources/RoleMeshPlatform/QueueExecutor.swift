import Dispatch

/// Runs an actor's jobs on a serial Dispatch queue, so the actor and the Dispatch sources
/// created on that queue (sockets, timers, signals) share one thread of control: a source's
/// handler runs inside the actor, checked at run time with `preconditionIsolated`.
public final class QueueExecutor: SerialExecutor {
    public let queue: DispatchQueue

    public init(_ queue: DispatchQueue) { self.queue = queue }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// Lets `preconditionIsolated` accept code running on `queue` outside any job (a source's handler).
    public func checkIsolated() { dispatchPrecondition(condition: .onQueue(queue)) }
}
