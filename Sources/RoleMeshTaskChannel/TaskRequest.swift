import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// One `request` frame on the task channel, as a peer sends it: one case per operation, each with
/// the fields that operation uses (as `ControlRequest` on the control socket).
///
/// On the wire a request is one flat JSON object named by `op`, with the same keys as always, so
/// earlier releases read and write it unchanged (`protocol.md`, "Task channel"):
/// `{"op": "run", "id", "role", "task", "args", "submitted", "detached"}` (a background run adds
/// `"background": true` and, for a schedule's, `"schedule", "slot", "run_id", "force"`),
/// `{"op": "logs", "id", "follow"}`, `{"op": "slots", "records", "schedules", "trust"}` (protocol.md,
/// "Slot records"), `{"op": "relay", "to"}`, `{"op": "carry", "from"}`, `{"op": "connect", "service"}`.
/// Read leniently, field by field: a peer's mistyped field is a missing one; a missing field an
/// operation needs makes the request malformed (`TaskRequestError`), which the executor refuses
/// with a sentence, not silence: the one it gave before requests were typed.
public enum TaskRequest: Equatable, Sendable {
    case run(RunRequest)
    /// A task's stored output, and with `follow` whatever comes until it ends.
    case logs(id: String, follow: Bool)
    /// Slot records, the sender's own schedules and its trust statements, answered with ours.
    case slots([SlotRun], schedules: [ScheduleDefinition]?, trust: [TrustStatement]?)
    /// Carry a task channel to `to` (RelayedChannel.swift).
    case relay(to: String)
    /// A relay, on its own channel to this node, carries `from`'s channel on the same connection
    /// from the next byte on (RelayedChannel.swift).
    case carry(from: String)
    /// The service (`ROLE/NAME`) whose port on the serving node to connect to.
    case connect(service: String)

    /// The operations, named as on the wire.
    public enum Op: String, Sendable, CaseIterable { case run, logs, slots, relay, carry, connect }

    public var op: Op {
        switch self {
        case .run: .run
        case .logs: .logs
        case .slots: .slots
        case .relay: .relay
        case .carry: .carry
        case .connect: .connect
        }
    }

    /// A request frame's payload read: the request, or why it is not one.
    public static func parse(_ payload: [UInt8]) -> Result<TaskRequest, TaskRequestError> {
        do { return .success(try JSONDecoder().decode(TaskRequest.self, from: Data(payload))) } catch let e as TaskRequestError {
            return .failure(e)
        } catch {
            return .failure(.notAnObject)
        }
    }
}

/// Why a `request` frame is not a `TaskRequest`, and so how the executor answers it.
public enum TaskRequestError: Error, Equatable, Sendable {
    /// Not a JSON object at all: the channel closes without an answer.
    case notAnObject
    /// No `op`, or one this node does not know: `error` 64 "unknown request".
    case unknownOp(String?)
    /// A known `op` without a field it needs (or with it of the wrong type): answered as when
    /// that field was passed on as missing (`Executor.malformed(_:)`).
    case malformed(op: TaskRequest.Op, field: String)
}

/// What `run` asks for: the task, its arguments and how the submitter waits.
public struct RunRequest: Equatable, Sendable {
    /// Chosen by the submitter (the executor checks its form and that it is new here).
    public var id: String
    public var role: String
    public var task: String
    public var args: [String]
    /// When it was submitted, as the submitter says (RFC 3339); absent: when it arrived.
    public var submitted: String?
    /// Nobody waits for its output (`submit --detach`, a hook, a schedule).
    public var detached: Bool
    /// A background run (a schedule's slot, or `submit --when idle`); nil for an ordinary one.
    public var background: Background?

    public struct Background: Equatable, Sendable {
        /// `ROLE/TASK` of the schedule; nil for `--when idle`.
        public var schedule: String?
        /// The slot's start, seconds since the epoch.
        public var slot: Int64?
        public var runID: String?
        /// `schedules run`: ignore the schedule's conditions (no pausing either).
        public var force: Bool

        public init(schedule: String? = nil, slot: Int64? = nil, runID: String? = nil, force: Bool = false) {
            self.schedule = schedule; self.slot = slot; self.runID = runID; self.force = force
        }
    }

    public init(id: String, role: String, task: String, args: [String] = [], submitted: String? = nil,
                detached: Bool = false, background: Background? = nil) {
        self.id = id; self.role = role; self.task = task; self.args = args; self.submitted = submitted
        self.detached = detached; self.background = background
    }
}

extension TaskRequest: Codable {
    public enum Key: String, CodingKey {
        case op, id, role, task, args, submitted, detached, follow, background, schedule, slot, runID = "run_id", force, records
        case schedules, trust, to, from, service
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        // Field by field, leniently: a field of the wrong type is a missing one.
        func optional<T: Decodable>(_ k: Key, _ t: T.Type = T.self) -> T? { (try? c.decodeIfPresent(T.self, forKey: k)) ?? nil }
        let name = optional(.op, String.self)
        guard let op = name.flatMap(Op.init(rawValue:)) else { throw TaskRequestError.unknownOp(name) }
        func required<T: Decodable>(_ k: Key, _ t: T.Type = T.self) throws(TaskRequestError) -> T {
            guard let v = optional(k, T.self) else { throw .malformed(op: op, field: k.stringValue) }
            return v
        }
        switch op {
        case .run:
            var run = RunRequest(id: try required(.id), role: try required(.role), task: try required(.task),
                                 args: optional(.args) ?? [], submitted: optional(.submitted), detached: optional(.detached) ?? false)
            if optional(.background, Bool.self) == true {
                run.background = RunRequest.Background(schedule: optional(.schedule), slot: optional(.slot), runID: optional(.runID),
                                                       force: optional(.force) ?? false)
            }
            self = .run(run)
        case .logs: self = .logs(id: try required(.id), follow: optional(.follow) ?? false)
        case .slots:
            // A peer's malformed statement is dropped alone; the rest of the exchange stands.
            self = .slots(optional(.records) ?? [], schedules: optional(.schedules),
                          trust: optional(.trust, [Lenient<TrustStatement>].self)?.compactMap(\.value))
        case .relay: self = .relay(to: try required(.to))
        case .carry: self = .carry(from: try required(.from))
        case .connect: self = .connect(service: try required(.service))
        }
    }

    /// The keys earlier releases wrote for each operation, and only those.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(op.rawValue, forKey: .op)
        switch self {
        case .run(let r):
            try c.encode(r.id, forKey: .id); try c.encode(r.role, forKey: .role); try c.encode(r.task, forKey: .task)
            try c.encode(r.args, forKey: .args); try c.encodeIfPresent(r.submitted, forKey: .submitted)
            try c.encode(r.detached, forKey: .detached)
            if let b = r.background {
                try c.encode(true, forKey: .background)
                try c.encodeIfPresent(b.schedule, forKey: .schedule); try c.encodeIfPresent(b.slot, forKey: .slot)
                try c.encodeIfPresent(b.runID, forKey: .runID)
                if b.force { try c.encode(true, forKey: .force) }
            }
        case .logs(let id, let follow):
            try c.encode(id, forKey: .id); try c.encode(follow, forKey: .follow)
        case .slots(let records, let schedules, let trust):
            try c.encode(records, forKey: .records); try c.encodeIfPresent(schedules, forKey: .schedules)
            try c.encodeIfPresent(trust, forKey: .trust)
        case .relay(let to): try c.encode(to, forKey: .to)
        case .carry(let from): try c.encode(from, forKey: .from)
        case .connect(let service): try c.encode(service, forKey: .service)
        }
    }
}
