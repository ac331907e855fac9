/// `route`: the chosen node and why every other one was skipped. When no node can take the
/// role the agent adds `error` and `code` (69); `route --json` prints it without them.
public struct RouteReply: Codable, Equatable, Sendable {
    public var role: String
    public var heavy: Bool
    public var node: String?
    public var skipped: [Skip]
    public var error: String?
    public var code: Int?
    /// The member a task channel to `node` goes through from here, when it is not direct.
    public var via: String?

    public struct Skip: Codable, Equatable, Sendable {
        public var node: String
        public var reason: String
        public init(node: String, reason: String) { self.node = node; self.reason = reason }
    }

    public init(role: String, heavy: Bool, node: String?, skipped: [Skip], error: String? = nil, code: Int? = nil) {
        self.role = role; self.heavy = heavy; self.node = node; self.skipped = skipped; self.error = error; self.code = code
    }

    /// What `route --json` prints: the contract's four keys, and `via` when the route is reached through a relay.
    public var printed: RouteReply {
        var r = RouteReply(role: role, heavy: heavy, node: node, skipped: skipped)
        r.via = via
        return r
    }

    enum CodingKeys: String, CodingKey { case role, heavy, node, skipped, error, code, via }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(role, forKey: .role); try c.encode(heavy, forKey: .heavy)
        try c.encode(node, forKey: .node)          // null, not missing, when no node can take it
        try c.encode(skipped, forKey: .skipped)
        try c.encodeIfPresent(error, forKey: .error); try c.encodeIfPresent(code, forKey: .code)
        try c.encodeIfPresent(via, forKey: .via)
    }
}
