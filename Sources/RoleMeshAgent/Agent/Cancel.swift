import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// `rolemesh cancel ID`: on the submitter's node or on the node running the task.
extension Agent {
    /// How long the answer waits for the task to end (SIGKILL follows SIGINT after 3 s), under
    /// the command line's 5 s limit on a first answer.
    static let cancelWait: Duration = .seconds(4)

    func cancel(id given: String, _ conn: ControlConnection) {
        let journal = self.journal, submitter = self.submitter, executor = self.executor, me = config.name
        spawn {
            let id = journal.resolve(given) ?? given
            guard let record = await offQueue({ journal.record(id) }) else {
                return conn.fail(MeshError(MeshError.other, "no task \(given) is known to \(me) (cancel it on the node that submitted or runs it)"))
            }
            guard !record.isFinal else {
                return conn.fail(MeshError(MeshError.other, "task \(id) already ended (\(record.state.rawValue)); nothing to cancel"))
            }
            // The submitter cancels through its connection, so the running node ends the task and
            // both journals say so; the running node alone signals the process group itself.
            let delivered = await submitter.cancel(id) ? true : await executor.cancel(id)
            guard delivered else {
                return conn.fail(MeshError(MeshError.other, "task \(id) is \(record.state.rawValue) but not in progress on \(me); cancel it on \(record.node ?? record.from)"))
            }
            let deadline = ContinuousClock.now + Self.cancelWait
            var state = record.state
            while ContinuousClock.now < deadline {
                let seen = journal.changes.count
                guard let r = await offQueue({ journal.record(id) }) else { break }
                state = r.state
                if r.isFinal { break }
                _ = await journal.changes.wait(after: seen, timeout: deadline - ContinuousClock.now)
            }
            conn.reply(CancelReply(id: id, state: state.rawValue))
        }
    }
}
