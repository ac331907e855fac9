import ArgumentParser
import RoleMeshPlatform
import Synchronization
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// `rolemesh submit ROLE/TASK [-- ARGS...]`: like `ssh host cmd`.
struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Run ROLE/TASK on the node routing picks: stdin forwarded, output streamed, exit status passed through.")
    @Argument(help: "ROLE/TASK") var target: String
    @Flag(help: "Heavy work: skip nodes on battery or throttled.") var heavy = false
    @Option(help: "Run on this node, overriding routing.") var to: String?
    @Flag(help: "Print the task id and return at once; the task goes on.") var detach = false
    @Flag(help: "If no node can take it now, wait (persisted across agent restarts) until one can.") var queue = false
    @Option(help: "Run again on the next route, up to N times, if the node is lost mid-run.") var retry: Int = 0
    @Option(help: "idle: a background run (lowest priority, paused while its node is busy), queued until an idle holder can take it.")
    var when: When?
    // Before `args`: the usage line lists options in this order, and `[--dir <dir>]` after
    // `-- [<args> ...]` would be a task argument.
    @OptionGroup var dir: DirOption
    @Argument(parsing: .postTerminator, help: "Arguments for the task, after --.") var args: [String] = []

    enum When: String, ExpressibleByArgument, CaseIterable { case idle }

    func validate() throws {
        guard Submission.split(target) != nil else {
            throw ValidationError("expected ROLE/TASK (a role name and a file name in its folder), got \"\(target)\"")
        }
        guard retry >= 0 else { throw ValidationError("--retry must be 0 or more") }
        let size = Submission.argumentBytes(args)
        guard size <= Frame.maxArgumentBytes else {
            throw ValidationError("the task's arguments take \(size) bytes; the limit is \(Frame.maxArgumentBytes / 1024) KiB (pass large input on stdin)")
        }
    }

    func run() async throws {
        let (role, task) = Submission.split(target)!       // checked in validate()
        try Self.perform(SubmitRequest(role: role, task: task, args: args, heavy: heavy, to: to, detach: detach, queue: queue,
                                       retry: retry, whenIdle: when == .idle), node: dir.node)
    }

    /// The whole command, however its words were parsed (here or `QuickCommand`).
    static func perform(_ submit: SubmitRequest, node: NodeDirectory) throws {
        let req = ControlRequest.submit(submit)
        if submit.detach {
            printOut(try ControlClient.call(node, req, as: SubmittedReply.self).id)
            return
        }
        let client = try ControlClient(dir: node)
        try client.send(req)
        try client.awaitAnswer()        // the first frame only: the task itself may take any time
        guard let first = try client.receiveFrame() else { throw MeshError(MeshError.other, "the agent closed the connection") }
        if first.type == .error { try Self.finish(first) }
        let writer = client.frameWriter
        Self.forwardInput(writer)
        // The task's output is printed on a thread of its own, and the command waits for whichever
        // comes first: the task's end, or a second Ctrl-C, which must end it even while a write to
        // a full pipe blocks that thread.
        let end = FirstOf<StreamEnd>()
        let interrupts = Self.forwardInterrupts(writer, giveUp: { end.settle(.gaveUp) })
        defer { withExtendedLifetime(interrupts) {} }
        nonisolated(unsafe) let stream = client     // handed over: only that thread reads it from here on
        OwnThread.start(name: "rolemesh.output") { end.settle(Self.printOutput(stream)) }
        switch end.wait() {
        case .ended(let f): try Self.finish(f)
        case .failed(let e): throw e
        case .closed: throw MeshError(MeshError.other, "the local agent went away before the task ended")
        case .gaveUp: throw ExitCode(130)
        }
    }

    /// How the wait for a task ended: its exit or error frame, a broken stream, or a second Ctrl-C.
    enum StreamEnd: Sendable { case ended(Frame), failed(MeshError), closed, gaveUp }

    /// The task's output and notes, to stdout and stderr as they come, until its exit or error frame.
    static func printOutput(_ client: ControlClient) -> StreamEnd {
        do throws(MeshError) {
            while let f = try client.receiveFrame() {
                switch f.type {
                case .stdout: _ = FD.writeAll(1, f.payload)
                case .stderr: _ = FD.writeAll(2, f.payload)
                case .info:
                    let message = (f.decode(InfoMessage.self)?.message ?? "").escapingControlCharacters
                    _ = FD.writeAll(2, Array("rolemesh: \(message)\n".utf8))
                case .exit, .error: return .ended(f)
                default: break
                }
            }
            return .closed
        } catch {
            return .failed(error)
        }
    }

    /// Ends the command as the task ended: its exit status, or the mesh's error and code (the
    /// entry point exits with either).
    static func finish(_ f: Frame) throws -> Never {
        if f.type == .exit {
            throw ExitCode(Int32(truncatingIfNeeded: ExitInfo.plainCode(f.payload) ?? f.decode(ExitInfo.self)?.code ?? 1))
        }
        throw f.meshError
    }

    /// Our stdin to the task, in chunks, then end-of-file. A queue of its own reads the
    /// terminal (or pipe, or file) while another thread prints the task's output.
    static func forwardInput(_ writer: ControlClient.FrameWriter) {
        DispatchQueue(label: "rolemesh.stdin").async {
            var buf = [UInt8](repeating: 0, count: Frame.maxPayload)
            while true {
                let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                guard writer.send(Frame(.stdin, Array(buf[0..<n]))) else { return }
            }
            writer.send(Frame(.stdinEOF))
        }
    }

    /// Ctrl-C cancels the remote task; a second one gives up waiting (`giveUp`). The sources
    /// returned must be kept: a released source stops delivering.
    static func forwardInterrupts(_ writer: ControlClient.FrameWriter, giveUp: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
        var sources: [any DispatchSourceSignal] = []
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let count = Atomic(0)
        for sig in [SIGINT, SIGTERM] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler {
                if count.add(1, ordering: .relaxed).newValue > 1 { return giveUp() }
                writer.send(Frame(.signal, [UInt8(sig)]))
            }
            s.resume()
            sources.append(s)
        }
        return sources
    }
}

struct Tasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tasks", abstract: "Tasks this node submitted or ran.")
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let answer = try ControlClient.call(dir.node, .tasks, as: TasksReply.self)
        if json {
            printOut(ControlJSON.string(answer))    // without `args`: the contract's keys
            return
        }
        var rows = [["ID", "TASK", "NODE", "FROM", "STATE", "EXIT", "SUBMITTED"]]
        var notes: [String] = []
        for t in answer.tasks {
            // Ids shortened (any unique prefix works with `logs`); times as MM-DD HH:MM:SS UTC.
            let submitted = String(t.submitted.dropFirst(5).prefix(14)).replacingScalar("T", with: " ")
            rows.append([String(t.id.prefix(8)), "\(t.role)/\(t.task)", (t.node ?? "-") + (t.via.map { " via \($0)" } ?? ""), t.from, t.state.rawValue,
                         t.exitCode.map(String.init) ?? "-", submitted])
            if t.state == .paused, let why = t.reason { notes.append("\(t.id.prefix(8)) paused: \(why)") }
            if t.state == .queued, let why = t.reason { notes.append("\(t.id.prefix(8)) waiting: \(why)") }
        }
        printOut(StatusText.table(rows.map { $0.map(\.escapingControlCharacters) }))
        for n in notes { printOut(n.escapingControlCharacters) }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a queued, running or paused task, on the node that submitted it or the node running it.")
    @Argument(help: "The task id (any unique prefix of it, as `tasks` shows).") var id: String
    @OptionGroup var dir: DirOption

    func run() async throws {
        let r = try ControlClient.call(dir.node, .cancel(id: id), as: CancelReply.self)
        printOut(r.state == TaskRecord.State.cancelled.rawValue ? "cancelled \(r.id)"
                 : "cancel sent to \(r.id); it is still \(r.state.escapingControlCharacters)")
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "A task's output, fetched from wherever it ran.")
    @Argument(help: "The task id (as `submit --detach` printed it).") var id: String
    @Flag(help: "Keep printing output until the task ends.") var follow = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let client = try ControlClient(dir: dir.node)
        try client.send(.logs(id: id, follow: follow))
        try client.awaitAnswer()        // the agent's first frame; output comes when it comes
        // Printed as `submit` prints a task's output; the task's own exit code is not the command's.
        switch Submit.printOutput(client) {
        case .ended(let f): if f.type == .error { throw f.meshError }
        case .failed(let e): throw e
        case .closed, .gaveUp: throw MeshError(MeshError.other, "the connection ended before the logs did")
        }
    }
}
