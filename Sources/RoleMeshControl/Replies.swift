/// A failure: one sentence and the contract's exit code. Any answer may be this.
public struct ErrorReply: Codable, Equatable, Sendable {
    public var error: String
    public var code: Int
    public init(error: String, code: Int) { self.error = error; self.code = code }
}

/// What every answer may carry: the error fields, if it is a failure.
public struct ErrorProbe: Decodable, Sendable {
    public var error: String?
    public var code: Int?
}

/// `leave`, `roles`, `backup`, `signal`, `drain`, `undrain`: done, with what changed.
public struct OkReply: Codable, Equatable, Sendable {
    public var ok: Bool
    public var node: String?
    public var draining: Bool?
    public var signals: SignalsStatus?

    public init(node: String? = nil, draining: Bool? = nil, signals: SignalsStatus? = nil) {
        ok = true; self.node = node; self.draining = draining; self.signals = signals
    }
}

/// The first line of an answer that waits for a file to be written (`roles`, `backup`, `signal`,
/// `drain`, `undrain`): the agent has the request. The command line gives the agent 5 s to say so
/// (a stopped agent says nothing), then the disk 30 s for the answer that follows.
public struct AcceptedReply: Codable, Equatable, Sendable {
    public var accepted: Bool
    public init() { accepted = true }
}

/// `submit --detach`: the new task's id.
public struct SubmittedReply: Codable, Equatable, Sendable {
    public var id: String
    public init(id: String) { self.id = id }
}

/// `tasks`: the journal, oldest first.
public struct TasksReply: Codable, Equatable, Sendable {
    public var tasks: [TaskRecord]
    public init(tasks: [TaskRecord]) { self.tasks = tasks }
}

/// `cancel`: the task's full id and its state once the cancel was delivered (`cancelled`, or
/// still `running` when it has not ended within the agent's wait).
public struct CancelReply: Codable, Equatable, Sendable {
    public var id: String
    public var state: String
    public init(id: String, state: String) { self.id = id; self.state = state }
}

/// `invite`: the code to give the new device, and when it stops working.
public struct InviteReply: Codable, Equatable, Sendable {
    public var name: String
    public var code: String
    /// RFC 3339.
    public var expires: String
    public init(name: String, code: String, expires: String) { self.name = name; self.code = code; self.expires = expires }
}
