/// Work started from synchronous code that must still belong to someone. Each job runs as a child
/// of the one task group `run()` drives (the agent's, inside `Agent.run()`), so that when the
/// owner stops, what still runs is cancelled and awaited, instead of unstructured `Task {}`s that
/// outlive it (swift-service-lifecycle's model: a service is `run() async`, and stops by
/// cancellation).
///
/// A job formed inside an actor method runs on that actor, as `Task {}` would
/// (`@_inheritActorContext`, `@isolated(any)`: the child task starts on the job's actor), and uses
/// `self` implicitly, as `Task {}` does. Jobs spawned before `run()` wait for it; after `finish()`
/// they are dropped.
public final class ChildTasks: Sendable {
    public typealias Job = @Sendable @isolated(any) () async -> Void
    private let stream: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation
    private let afterCancelling = Locked<(@Sendable () -> Void)?>(nil)

    public init() { (stream, continuation) = AsyncStream.makeStream() }

    /// Starts `job` as a child of `run()`'s group.
    public func spawn(@_inheritActorContext @_implicitSelfCapture _ job: @escaping Job) {
        continuation.yield(job)
    }

    /// Runs every job spawned until `finish()`, then cancels those still running and waits for them.
    /// Call it once.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await job in stream { group.addTask(operation: job) }
            group.cancelAll()
            afterCancelling.withLock { $0 }?()
        }
    }

    /// Ends `run()`: the jobs still running are cancelled, then `afterCancelling` runs (to end what
    /// they may wait on that does not watch for cancellation, such as connections), and `run()`
    /// returns once they have ended.
    public func finish(afterCancelling: (@Sendable () -> Void)? = nil) {
        self.afterCancelling.withLock { $0 = afterCancelling }
        continuation.finish()
    }
}
