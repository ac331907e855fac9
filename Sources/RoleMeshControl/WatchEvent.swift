/// One line of `watch`: `{"event", "node", "time"}`, and for `role-moved` also `role`, `from`
/// and `to` (`null` for nobody). The first line of a stream is `watching`, which the CLI skips.
public struct WatchEvent: Codable, Equatable, Sendable {
    public var event: String
    public var node: String
    public var time: String
    public var role: String?
    public var from: String?
    public var to: String?
    /// Run events (`run-started`, `run-paused`, `run-resumed`, `run-finished`): the task, its
    /// slot (null for `submit --when idle`), the task id, why it paused, how it ended.
    public var task: String?
    public var slot: String?
    public var id: String?
    public var reason: String?
    public var exitCode: Int?
    /// `member-revoked`: who signed the revocation of `node`.
    public var by: String?
    /// `service-healthy`, `service-unhealthy`, `service-moved`: the service (`ROLE/NAME`).
    public var service: String?

    public static let roleMoved = "role-moved"
    public static let memberRevoked = "member-revoked"
    public static let runEvents: Set<String> = ["run-started", "run-paused", "run-resumed", "run-finished"]
    public static let watching = "watching"
    public static let serviceEvents: Set<String> = ["service-healthy", "service-unhealthy", "service-moved"]

    public init(event: String, node: String, time: String, role: String? = nil, from: String? = nil,
                to: String? = nil) {
        self.event = event; self.node = node; self.time = time
        self.role = role; self.from = from; self.to = to
    }

    enum CodingKeys: String, CodingKey { case event, node, time, role, from, to, task, slot, id, reason, exitCode = "exit_code", by, service }

    public static func run(_ event: String, node: String, time: String, role: String, task: String, slot: String?,
                           id: String, reason: String? = nil, exitCode: Int? = nil) -> WatchEvent {
        var e = WatchEvent(event: event, node: node, time: time, role: role)
        e.task = task; e.slot = slot; e.id = id; e.reason = reason; e.exitCode = exitCode
        return e
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(event, forKey: .event); try c.encode(node, forKey: .node); try c.encode(time, forKey: .time)
        if event == Self.roleMoved {
            try c.encode(role, forKey: .role); try c.encode(from, forKey: .from); try c.encode(to, forKey: .to)
        }
        if event == Self.memberRevoked { try c.encode(by, forKey: .by) }
        if Self.serviceEvents.contains(event) {
            try c.encode(service, forKey: .service)
            if event == "service-moved" { try c.encode(from, forKey: .from); try c.encode(to, forKey: .to) }
        }
        if Self.runEvents.contains(event) {
            try c.encode(role, forKey: .role); try c.encode(task, forKey: .task); try c.encode(slot, forKey: .slot)
            try c.encode(id, forKey: .id)
            if event == "run-paused" { try c.encode(reason, forKey: .reason) }
            if event == "run-finished" { try c.encode(exitCode, forKey: .exitCode) }
        }
    }
}
