import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// The JSON payloads of task-channel frames (`protocol.md`): same keys on the wire as always.

/// A `request` frame: `{"op": "run", "id", "role", "task", "args", "submitted", "detached"}`
/// or `{"op": "logs", "id", "follow"}`; a background run adds `"background": true` and, for a
/// schedule's, `"schedule", "slot", "run_id", "force"`; `{"op": "slots", "records", "schedules"}` exchanges slot
/// records (protocol.md, "Slot records"). Read leniently, field by field: a peer's mistyped
/// field is a missing one, which the executor refuses with a sentence, not silence.
public struct TaskRequest: Codable, Equatable, Sendable {
    public var op: String?
    public var id: String?
    public var role: String?
    public var task: String?
    public var args: [String]?
    public var submitted: String?
    public var detached: Bool?
    public var follow: Bool?
    public var background: Bool?
    public var schedule: String?
    /// The slot's start, seconds since the epoch.
    public var slot: Int64?
    public var runID: String?
    /// `schedules run`: ignore the schedule's conditions (no pausing either).
    public var force: Bool?
    public var records: [SlotRun]?
    public var schedules: [ScheduleDefinition]?
    /// Trust statements (introductions, revocations) riding on the `slots` exchange.
    public var trust: [TrustStatement]?
    /// `relay`: the node to carry a channel to.
    public var to: String?
    /// `carry`: the node whose channel the sender (a relay) carries on this connection.
    public var from: String?
    /// `connect`: the service (`ROLE/NAME`) whose port on the serving node to connect to.
    public var service: String?

    public init(op: String, id: String, role: String? = nil, task: String? = nil, args: [String]? = nil,
                submitted: String? = nil, detached: Bool? = nil, follow: Bool? = nil) {
        self.op = op; self.id = id; self.role = role; self.task = task; self.args = args
        self.submitted = submitted; self.detached = detached; self.follow = follow
    }

    public static func run(id: String, role: String, task: String, args: [String], submitted: String, detached: Bool) -> TaskRequest {
        TaskRequest(op: "run", id: id, role: role, task: task, args: args, submitted: submitted, detached: detached)
    }

    public static func logs(id: String, follow: Bool) -> TaskRequest { TaskRequest(op: "logs", id: id, follow: follow) }

    enum CodingKeys: String, CodingKey {
        case op, id, role, task, args, submitted, detached, follow, background, schedule, slot, runID = "run_id", force, records
        case schedules, trust, to, from, service
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        op = try? c.decodeIfPresent(String.self, forKey: .op)
        id = try? c.decodeIfPresent(String.self, forKey: .id)
        role = try? c.decodeIfPresent(String.self, forKey: .role)
        task = try? c.decodeIfPresent(String.self, forKey: .task)
        args = try? c.decodeIfPresent([String].self, forKey: .args)
        submitted = try? c.decodeIfPresent(String.self, forKey: .submitted)
        detached = try? c.decodeIfPresent(Bool.self, forKey: .detached)
        follow = try? c.decodeIfPresent(Bool.self, forKey: .follow)
        background = try? c.decodeIfPresent(Bool.self, forKey: .background)
        schedule = try? c.decodeIfPresent(String.self, forKey: .schedule)
        slot = try? c.decodeIfPresent(Int64.self, forKey: .slot)
        runID = try? c.decodeIfPresent(String.self, forKey: .runID)
        force = try? c.decodeIfPresent(Bool.self, forKey: .force)
        records = try? c.decodeIfPresent([SlotRun].self, forKey: .records)
        schedules = try? c.decodeIfPresent([ScheduleDefinition].self, forKey: .schedules)
        trust = (try? c.decodeIfPresent([Lenient<TrustStatement>].self, forKey: .trust))?.compactMap(\.value)
        to = try? c.decodeIfPresent(String.self, forKey: .to)
        from = try? c.decodeIfPresent(String.self, forKey: .from)
        service = try? c.decodeIfPresent(String.self, forKey: .service)
    }

    /// `{"op": "relay", "to": NODE}`: carry a task channel to NODE (RelayedChannel.swift).
    public static func relay(to node: String) -> TaskRequest {
        var r = TaskRequest(op: "relay", id: "")
        r.id = nil
        r.to = node
        return r
    }

    /// `{"op": "carry", "from": NODE}`: a relay, on its own channel to this node, carries NODE's
    /// channel on the same connection from the next byte on (RelayedChannel.swift).
    public static func carry(from node: String) -> TaskRequest {
        var r = TaskRequest(op: "carry", id: "")
        r.id = nil
        r.from = node
        return r
    }

    public static func slots(_ records: [SlotRun], schedules: [ScheduleDefinition], trust: [TrustStatement]) -> TaskRequest {
        var r = TaskRequest(op: "slots", id: "")
        r.id = nil
        r.records = records
        r.schedules = schedules
        r.trust = trust
        return r
    }
}

/// `exit`: `{"code": N, "state": "done|failed|cancelled"}`.
public struct ExitInfo: Codable, Equatable, Sendable {
    public var code: Int?
    public var state: String?

    /// The exit code of an `exit` payload as the agent writes it (`{"code":N,"state":"..."}`),
    /// read without the JSON decoder, whose first use costs a new `submit` process about 0.2 ms;
    /// nil for any other shape (the caller then decodes it).
    public static func plainCode(_ payload: [UInt8]) -> Int? {
        let prefix = Array("{\"code\":".utf8)
        guard payload.count > prefix.count, Array(payload[0..<prefix.count]) == prefix else { return nil }
        var i = prefix.count, value = 0, digits = 0
        let negative = payload[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        while i < payload.count, (48...57).contains(payload[i]), digits < 9 {
            value = value * 10 + Int(payload[i] - 48); i += 1; digits += 1
        }
        guard digits > 0, i < payload.count, payload[i] == UInt8(ascii: ",") || payload[i] == UInt8(ascii: "}") else { return nil }
        return negative ? -value : value
    }
}

/// `error`: `{"code": N, "message": "..."}`.
public struct ErrorInfo: Codable, Equatable, Sendable {
    public var code: Int?
    public var message: String?
}

/// `started`: `{"id", "node", "state"}` (`node` absent while only accepted by the local agent).
public struct StartedInfo: Codable, Equatable, Sendable {
    public var id: String
    public var node: String?
    public var state: String
    public init(id: String, node: String? = nil, state: String) { self.id = id; self.node = node; self.state = state }
}

/// `info`: `{"message": "..."}`, a line for the person at the terminal.
public struct InfoMessage: Codable, Equatable, Sendable {
    public var message: String
}

/// The server's first encrypted frame (`info`): `{"message": "ready"}`, and since 0.2.0
/// `"keep": true`: this server takes further `run` requests on the channel after a `next`.
/// Earlier clients read only the frame's type.
public struct ReadyInfo: Codable, Equatable, Sendable {
    public var message: String
    public var keep: Bool?
}

/// One element of a list read leniently: a malformed one is nil instead of failing the whole list.
struct Lenient<T: Decodable>: Decodable {
    let value: T?
    init(from decoder: Decoder) throws { value = try? T(from: decoder) }
}

/// `welcome`: what the inviter gives a device it admitted. `keys`: every key it trusts (name →
/// base64), itself included; `peers`: addresses (`host:port`) to use as seeds, its own first.
public struct WelcomePayload: Codable, Equatable, Sendable {
    public var keys: [String: String]
    public var peers: [String]
    /// The `# granted:` line of each key that has one (others: every role).
    public var grants: [String: [String]]?
    /// What the new device itself was granted.
    public var granted: [String]?
    /// The inviter's own introducers: with the inviter, the new device's `introducers`.
    public var introducers: [String]?
    /// The mesh's recovery public key (base64), if the inviter has one.
    public var recovery: String?

    public init(keys: [String: String], peers: [String], grants: [String: [String]]? = nil, granted: [String]? = nil,
                introducers: [String]? = nil, recovery: String? = nil) {
        self.keys = keys; self.peers = peers; self.grants = grants; self.granted = granted
        self.introducers = introducers; self.recovery = recovery
    }
}

/// The new device's one frame after a proven join: the roles and backups it will hold, which the
/// inviter grants it (with what the invite named).
public struct JoinRequest: Codable, Equatable, Sendable {
    public var op = "join"
    public var roles: [String]
    public var backup: [String]
    public init(roles: [String], backup: [String]) { self.roles = roles; self.backup = backup }
}
