/// `schedules`: every schedule the mesh knows, where it runs now and why it waits
/// (docs/contract.md, "Background work"), and the schedule files this node could not read.
public struct SchedulesReply: Codable, Equatable, Sendable {
    public var schedules: [ScheduleStatus]
    /// *Added*: `{"file", "error"}` for each bad `schedule.toml` here (its role's schedules are not run).
    public var errors: [ScheduleFileError]

    public init(schedules: [ScheduleStatus], errors: [ScheduleFileError]) { self.schedules = schedules; self.errors = errors }
}

public struct ScheduleStatus: Codable, Equatable, Sendable {
    public var role: String
    public var task: String
    public var every: String
    /// `waiting`, `running`, `paused` or `done`.
    public var state: String
    /// Why it waits or is paused; null when running or done.
    public var reason: String?
    /// Where it runs now (the role's route); null when no node can take it.
    public var node: String?
    public var slot: String
    public var nextSlot: String
    public var last: LastRun?

    public struct LastRun: Codable, Equatable, Sendable {
        public var id: String
        public var node: String
        public var exitCode: Int?
        public var finished: String?
        enum CodingKeys: String, CodingKey { case id, node, exitCode = "exit_code", finished }
        public init(id: String, node: String, exitCode: Int?, finished: String?) {
            self.id = id; self.node = node; self.exitCode = exitCode; self.finished = finished
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id); try c.encode(node, forKey: .node)
            try c.encode(exitCode, forKey: .exitCode); try c.encode(finished, forKey: .finished)
        }
    }

    enum CodingKeys: String, CodingKey { case role, task, every, state, reason, node, slot, nextSlot = "next_slot", last }

    public init(role: String, task: String, every: String, state: String, reason: String?, node: String?,
                slot: String, nextSlot: String, last: LastRun?) {
        self.role = role; self.task = task; self.every = every; self.state = state; self.reason = reason
        self.node = node; self.slot = slot; self.nextSlot = nextSlot; self.last = last
    }

    /// Every key, `null` where unknown.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(role, forKey: .role); try c.encode(task, forKey: .task); try c.encode(every, forKey: .every)
        try c.encode(state, forKey: .state); try c.encode(reason, forKey: .reason); try c.encode(node, forKey: .node)
        try c.encode(slot, forKey: .slot); try c.encode(nextSlot, forKey: .nextSlot); try c.encode(last, forKey: .last)
    }
}

public struct ScheduleFileError: Codable, Equatable, Sendable {
    public var file: String
    public var error: String
    public init(file: String, error: String) { self.file = file; self.error = error }
}
