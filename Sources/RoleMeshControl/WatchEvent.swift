/// One line of `watch`: `{"event", "node", "time"}`, and for `role-moved` also `role`, `from`
/// and `to` (`null` for nobody). The first line of a stream is `watching`, which the CLI skips.
public struct WatchEvent: Codable, Equatable, Sendable {
    public var event: String
    public var node: String
    public var time: String
    public var role: String?
    public var from: String?
    public var to: String?

    public static let roleMoved = "role-moved"
    public static let watching = "watching"

    public init(event: String, node: String, time: String, role: String? = nil, from: String? = nil,
                to: String? = nil) {
        self.event = event; self.node = node; self.time = time
        self.role = role; self.from = from; self.to = to
    }

    enum CodingKeys: String, CodingKey { case event, node, time, role, from, to }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(event, forKey: .event); try c.encode(node, forKey: .node); try c.encode(time, forKey: .time)
        if event == Self.roleMoved {
            try c.encode(role, forKey: .role); try c.encode(from, forKey: .from); try c.encode(to, forKey: .to)
        }
    }
}
