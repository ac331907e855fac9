/// One request on the control socket `DIR/agent.sock`, as the command line sends it.
///
/// On the wire a request is one flat JSON object on one line, named by `cmd`
/// (`{"cmd": "route", "role": "transcode", "heavy": true}`); `protocol.md` lists them.
public enum ControlRequest: Equatable, Sendable {
    case status
    case watch
    case leave
    case route(role: String, heavy: Bool)
    case roles(RoleAction, role: String)
    case backup(RoleAction, role: String, priority: Int)
    case signal(SignalChange)
    case drain
    case undrain
    case submit(SubmitRequest)
    case tasks
    case logs(id: String, follow: Bool)
    /// `cancel ID`: a queued, running or paused task, here as its submitter or its executor.
    case cancel(id: String)
    case schedules
    /// `schedules run ROLE/TASK`: the current slot, now, on its route.
    case scheduleRun(role: String, task: String)
    /// `invite NAME --expires --role R --backup R`: a single-use code admitting NAME for `seconds`,
    /// granting it `grants` (`ROLE`, `backup:ROLE`) besides what it asks for at join.
    case invite(name: String, seconds: Int, grants: [String] = [])
    /// `revoke NAME [--cascade]`: NAME's key moves to keys/revoked/ and a signed revocation spreads;
    /// with `cascade`, the keys NAME introduced (and theirs) too.
    case revoke(name: String, cascade: Bool = false)
    /// `introducers add|remove NAME`: a signed statement that NAME may (no longer) change trust.
    case introducers(RoleAction, name: String)
    /// `grant NAME ROLE...` (add), `ungrant NAME ROLE...` (remove): the roles NAME's key may hold.
    case grant(RoleAction, name: String, roles: [String])
    /// `trust`: the audit of every key.
    case trust
    /// `revoke|introducers ... --recovery`: a statement the command line signed with the mesh's
    /// recovery key (its JSON, as in `state/trust.json`), for the agent to apply and spread.
    case recovered(statement: String)
    /// `services`: every service the mesh knows, its route and each node offering it.
    case services
    /// `connect ROLE/NAME [--local [HOST:]PORT] [--stdio]`: the agent listens at `listen` (default
    /// the service's own port on 127.0.0.1) while this control connection stays open, or with
    /// `stdio` forwards this very connection (raw bytes after the reply line).
    case connect(service: String, listen: String?, stdio: Bool)

    public enum RoleAction: String, Codable, Sendable, CaseIterable { case add, remove }

    public enum SignalChange: Equatable, Sendable {
        case set([String])      // KEY=VALUE pins
        case clear
    }

    /// Answered only once the agent has written a file (node.toml, its overrides).
    public var writesToDisk: Bool {
        switch self {
        case .roles, .backup, .signal, .drain, .undrain, .invite, .revoke, .introducers, .grant, .recovered: true
        default: false
        }
    }

    /// The wire line of a request that is its command word alone (`{"cmd":"status"}`), written
    /// without the JSON encoder, whose first use costs a new process about 0.3 ms; nil for the
    /// others. `ControlRequestTests` checks each against the encoder's line.
    public var plainLine: [UInt8]? {
        switch self {
        case .status, .watch, .leave, .drain, .undrain, .tasks, .schedules, .services: Array("{\"cmd\":\"\(command)\"}\n".utf8)
        case .submit(let r):
            // The encoder's keys, sorted; `to` only when set, as the synthesized encoding does.
            Array(("{\"args\":[" + r.args.map(Self.jsonString).joined(separator: ",") + "],\"cmd\":\"submit\",\"detach\":\(r.detach)"
                   + ",\"heavy\":\(r.heavy),\"queue\":\(r.queue),\"retry\":\(r.retry),\"role\":\(Self.jsonString(r.role))"
                   + ",\"task\":\(Self.jsonString(r.task))" + (r.to.map { ",\"to\":" + Self.jsonString($0) } ?? "")
                   + ",\"when_idle\":\(r.whenIdle)}\n").utf8)
        default: nil
        }
    }

    /// A JSON string as the encoder writes one: `"` and `\` escaped, control characters as
    /// `\n`-style or `\u00XX` escapes, everything else (`/` and non-ASCII included) as it is.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{8}": out += "\\b"
            case "\t": out += "\\t"
            case "\n": out += "\\n"
            case "\u{c}": out += "\\f"
            case "\r": out += "\\r"
            case _ where u.value < 0x20:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// The command word on the wire.
    public var command: String {
        switch self {
        case .status: "status"
        case .watch: "watch"
        case .leave: "leave"
        case .route: "route"
        case .roles: "roles"
        case .backup: "backup"
        case .signal: "signal"
        case .drain: "drain"
        case .undrain: "undrain"
        case .submit: "submit"
        case .tasks: "tasks"
        case .logs: "logs"
        case .cancel: "cancel"
        case .schedules: "schedules"
        case .scheduleRun: "schedule-run"
        case .invite: "invite"
        case .revoke: "revoke"
        case .introducers: "introducers"
        case .grant: "grant"
        case .trust: "trust"
        case .recovered: "recovered"
        case .services: "services"
        case .connect: "connect"
        }
    }
}

/// What `submit` asks for: the task, where it may go, and how to wait.
public struct SubmitRequest: Codable, Equatable, Sendable {
    public var role: String
    public var task: String
    public var args: [String]
    public var heavy: Bool
    public var to: String?
    public var detach: Bool
    public var queue: Bool
    public var retry: Int
    /// `--when idle`: a background run, queued until an idle holder can take it.
    public var whenIdle: Bool

    public init(role: String, task: String, args: [String] = [], heavy: Bool = false, to: String? = nil,
                detach: Bool = false, queue: Bool = false, retry: Int = 0, whenIdle: Bool = false) {
        self.role = role; self.task = task; self.args = args; self.heavy = heavy; self.to = to
        self.detach = detach; self.queue = queue; self.retry = retry; self.whenIdle = whenIdle
    }

    enum CodingKeys: String, CodingKey { case role, task, args, heavy, to, detach, queue, retry, whenIdle = "when_idle" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        task = try c.decode(String.self, forKey: .task)
        args = try c.decodeIfPresent([String].self, forKey: .args) ?? []
        heavy = try c.decodeIfPresent(Bool.self, forKey: .heavy) ?? false
        to = try c.decodeIfPresent(String.self, forKey: .to)
        detach = try c.decodeIfPresent(Bool.self, forKey: .detach) ?? false
        queue = try c.decodeIfPresent(Bool.self, forKey: .queue) ?? false
        retry = try c.decodeIfPresent(Int.self, forKey: .retry) ?? 0
        whenIdle = try c.decodeIfPresent(Bool.self, forKey: .whenIdle) ?? false
    }
}

extension ControlRequest: Codable {
    enum Key: String, CodingKey { case cmd, role, heavy, action, priority, set, clear, id, follow, task, name, seconds, grants, cascade, roles, statement, service, listen, stdio }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        func flag(_ k: Key) throws -> Bool { try c.decodeIfPresent(Bool.self, forKey: k) ?? false }
        let cmd = try c.decode(String.self, forKey: .cmd)
        switch cmd {
        case "status": self = .status
        case "watch": self = .watch
        case "leave": self = .leave
        case "drain": self = .drain
        case "undrain": self = .undrain
        case "tasks": self = .tasks
        case "schedules": self = .schedules
        case "schedule-run":
            self = .scheduleRun(role: try c.decode(String.self, forKey: .role), task: try c.decode(String.self, forKey: .task))
        case "route": self = .route(role: try c.decode(String.self, forKey: .role), heavy: try flag(.heavy))
        case "roles":
            self = .roles(try c.decode(RoleAction.self, forKey: .action), role: try c.decode(String.self, forKey: .role))
        case "backup":
            self = .backup(try c.decode(RoleAction.self, forKey: .action), role: try c.decode(String.self, forKey: .role),
                           priority: try c.decodeIfPresent(Int.self, forKey: .priority) ?? 1)
        case "signal":
            self = .signal(try flag(.clear) ? .clear : .set(try c.decodeIfPresent([String].self, forKey: .set) ?? []))
        case "submit": self = .submit(try SubmitRequest(from: decoder))
        case "logs": self = .logs(id: try c.decode(String.self, forKey: .id), follow: try flag(.follow))
        case "cancel": self = .cancel(id: try c.decode(String.self, forKey: .id))
        case "invite":
            self = .invite(name: try c.decode(String.self, forKey: .name), seconds: try c.decode(Int.self, forKey: .seconds),
                           grants: try c.decodeIfPresent([String].self, forKey: .grants) ?? [])
        case "revoke": self = .revoke(name: try c.decode(String.self, forKey: .name), cascade: try flag(.cascade))
        case "introducers":
            self = .introducers(try c.decode(RoleAction.self, forKey: .action), name: try c.decode(String.self, forKey: .name))
        case "grant":
            self = .grant(try c.decode(RoleAction.self, forKey: .action), name: try c.decode(String.self, forKey: .name),
                          roles: try c.decode([String].self, forKey: .roles))
        case "trust": self = .trust
        case "recovered": self = .recovered(statement: try c.decode(String.self, forKey: .statement))
        case "services": self = .services
        case "connect":
            self = .connect(service: try c.decode(String.self, forKey: .service),
                            listen: try c.decodeIfPresent(String.self, forKey: .listen), stdio: try flag(.stdio))
        default:
            throw DecodingError.dataCorruptedError(forKey: .cmd, in: c, debugDescription: "unknown command \(cmd)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(command, forKey: .cmd)
        switch self {
        case .status, .watch, .leave, .drain, .undrain, .tasks, .schedules, .trust, .services: break
        case .connect(let service, let listen, let stdio):
            try c.encode(service, forKey: .service); try c.encodeIfPresent(listen, forKey: .listen); try c.encode(stdio, forKey: .stdio)
        case .scheduleRun(let role, let task):
            try c.encode(role, forKey: .role); try c.encode(task, forKey: .task)
        case .route(let role, let heavy):
            try c.encode(role, forKey: .role); try c.encode(heavy, forKey: .heavy)
        case .roles(let action, let role):
            try c.encode(action, forKey: .action); try c.encode(role, forKey: .role)
        case .backup(let action, let role, let priority):
            try c.encode(action, forKey: .action); try c.encode(role, forKey: .role); try c.encode(priority, forKey: .priority)
        case .signal(.clear): try c.encode(true, forKey: .clear)
        case .signal(.set(let pins)): try c.encode(pins, forKey: .set)
        case .submit(let s): try s.encode(to: encoder)
        case .logs(let id, let follow):
            try c.encode(id, forKey: .id); try c.encode(follow, forKey: .follow)
        case .cancel(let id): try c.encode(id, forKey: .id)
        case .invite(let name, let seconds, let grants):
            try c.encode(name, forKey: .name); try c.encode(seconds, forKey: .seconds)
            if !grants.isEmpty { try c.encode(grants, forKey: .grants) }
        case .revoke(let name, let cascade):
            try c.encode(name, forKey: .name); try c.encode(cascade, forKey: .cascade)
        case .introducers(let action, let name):
            try c.encode(action, forKey: .action); try c.encode(name, forKey: .name)
        case .grant(let action, let name, let roles):
            try c.encode(action, forKey: .action); try c.encode(name, forKey: .name); try c.encode(roles, forKey: .roles)
        case .recovered(let statement): try c.encode(statement, forKey: .statement)
        }
    }
}
