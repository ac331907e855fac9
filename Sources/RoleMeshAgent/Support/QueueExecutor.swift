import Dispatch

/// Runs an actor's jobs on a serial Dispatch queue, so the actor and the Dispatch sources
/// created on that queue (sockets, timers, signals) share one thread of control: a source's
/// handler runs inside the actor, checked at run time with `preconditionIsolated`.
final class QueueExecutor: SerialExecutor {
    let queue: DispatchQueue

    init(_ queue: DispatchQueue) { self.queue = queue }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// Lets `preconditionIsolated` accept code running on `queue` outside any job (a source's handler).
    func checkIsolated() { dispatchPrecondition(condition: .onQueue(queue)) }
}
