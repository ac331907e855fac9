import FoundationEssentials

/// One task as `tasks --json` shows it, and as the journal keeps it (`state/tasks/ID/task.json`,
/// which also keeps `args`: the journal's encoder asks for them with `withArgs`).
public struct TaskRecord: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable { case queued, running, paused, done, failed, lost, cancelled }
    public var id: String
    public var role: String
    public var task: String
    public var node: String?
    public var from: String
    public var state: State
    public var exitCode: Int?
    public var submitted: String
    public var started: String?
    public var finished: String?
    public var args: [String] = []
    /// A background run (a schedule's, or `submit --when idle`): why it is paused, while it is;
    /// a queued submission: why no node can take it yet (`no node holds or backs up role gpu`).
    public var reason: String?
    /// A scheduled run: its schedule (`ROLE/TASK`), slot (RFC 3339) and run id (the same for every attempt).
    public var schedule: String?
    public var slot: String?
    public var runID: String?
    /// The member that carried the task's channel from the submitter, when it was not direct.
    public var via: String?

    public var isFinal: Bool { [.done, .failed, .lost, .cancelled].contains(state) }

    /// Set to `true` in an encoder's userInfo to keep `args` (the journal); the control reply leaves them out.
    public static let withArgs = CodingUserInfoKey(rawValue: "rolemesh.task.args")!

    public init(id: String, role: String, task: String, node: String?, from: String, state: State, submitted: String) {
        self.id = id; self.role = role; self.task = task; self.node = node; self.from = from
        self.state = state; self.submitted = submitted
    }

    enum CodingKeys: String, CodingKey {
        case id, role, task, node, from, state, exitCode = "exit_code", submitted, started, finished, args
        case reason, schedule, slot, runID = "run_id", via
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(id: try c.decode(String.self, forKey: .id), role: try c.decode(String.self, forKey: .role),
                  task: try c.decode(String.self, forKey: .task), node: try c.decodeIfPresent(String.self, forKey: .node),
                  from: try c.decode(String.self, forKey: .from), state: try c.decode(State.self, forKey: .state),
                  submitted: try c.decode(String.self, forKey: .submitted))
        exitCode = try c.decodeIfPresent(Int.self, forKey: .exitCode)
        started = try c.decodeIfPresent(String.self, forKey: .started)
        finished = try c.decodeIfPresent(String.self, forKey: .finished)
        args = try c.decodeIfPresent([String].self, forKey: .args) ?? []
        reason = try c.decodeIfPresent(String.self, forKey: .reason)
        schedule = try c.decodeIfPresent(String.self, forKey: .schedule)
        slot = try c.decodeIfPresent(String.self, forKey: .slot)
        runID = try c.decodeIfPresent(String.self, forKey: .runID)
        via = try c.decodeIfPresent(String.self, forKey: .via)
    }

    /// Every contract key, `null` where unknown (`node` while queued, times not reached yet).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(role, forKey: .role); try c.encode(task, forKey: .task)
        try c.encode(node, forKey: .node); try c.encode(from, forKey: .from); try c.encode(state, forKey: .state)
        try c.encode(exitCode, forKey: .exitCode); try c.encode(submitted, forKey: .submitted)
        try c.encode(started, forKey: .started); try c.encode(finished, forKey: .finished)
        if encoder.userInfo[Self.withArgs] as? Bool == true { try c.encode(args, forKey: .args) }
        // Only on the rows they concern: a plain task's row stays as it always was.
        if state == .paused || (state == .queued && reason != nil) { try c.encode(reason, forKey: .reason) }
        if let schedule {
            try c.encode(schedule, forKey: .schedule); try c.encode(slot, forKey: .slot); try c.encode(runID, forKey: .runID)
        }
        try c.encodeIfPresent(via, forKey: .via)
    }
}
