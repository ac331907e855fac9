/// `services --json`: every service the mesh knows, where a new connection goes now and why, and
/// each node offering it (docs/contract.md, "Services: the thin client").
public struct ServicesReply: Codable, Equatable, Sendable {
    public var services: [Service]
    /// Bad `service.toml` files of this node: file → one sentence naming its line and key.
    public var errors: [String: String]?

    public struct Service: Codable, Equatable, Sendable {
        public var service: String
        public var port: Int
        public var `where`: String
        public var node: String?
        public var reason: String
        public var nodes: [Offer]
        /// The member a channel to `node` goes through from here, when not direct.
        public var via: String?

        public init(service: String, port: Int, where w: String, node: String?, reason: String, nodes: [Offer]) {
            self.service = service; self.port = port; self.where = w; self.node = node; self.reason = reason; self.nodes = nodes
        }

        enum CodingKeys: String, CodingKey { case service, port, `where`, node, reason, nodes, via }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(service, forKey: .service); try c.encode(port, forKey: .port); try c.encode(self.where, forKey: .where)
            try c.encode(node, forKey: .node)        // null, not missing, when no node serves it
            try c.encode(reason, forKey: .reason); try c.encode(nodes, forKey: .nodes)
            try c.encodeIfPresent(via, forKey: .via)
        }
    }

    public struct Offer: Codable, Equatable, Sendable {
        public var node: String
        public var health: String
        public var detail: String?
        public init(node: String, health: String, detail: String?) { self.node = node; self.health = health; self.detail = detail }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(node, forKey: .node); try c.encode(health, forKey: .health); try c.encode(detail, forKey: .detail)
        }
        enum CodingKeys: String, CodingKey { case node, health, detail }
    }

    public init(services: [Service], errors: [String: String]? = nil) { self.services = services; self.errors = errors }

    enum CodingKeys: String, CodingKey { case services, errors }

    /// What `services --json` prints: the contract's one key (bad files go to stderr).
    public var printed: ServicesReply { ServicesReply(services: services) }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(services, forKey: .services)
        try c.encodeIfPresent(errors, forKey: .errors)
    }
}

/// `status --json` `forwards`: a listener this node keeps open for a service (`forward` in
/// node.toml, or a running `rolemesh connect`), where its connections go now, and how many are open.
public struct ForwardStatus: Codable, Equatable, Sendable {
    public var service: String
    public var listen: String
    public var node: String?
    public var connections: Int
    /// Why it does not listen now (its port is taken): retried every 10 s.
    public var error: String?

    public init(service: String, listen: String, node: String?, connections: Int, error: String? = nil) {
        self.service = service; self.listen = listen; self.node = node; self.connections = connections; self.error = error
    }

    enum CodingKeys: String, CodingKey { case service, listen, node, connections, error }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(service, forKey: .service); try c.encode(listen, forKey: .listen)
        try c.encode(node, forKey: .node); try c.encode(connections, forKey: .connections)
        try c.encodeIfPresent(error, forKey: .error)
    }
}

/// The first line `connect` gets: the listener is open (or the `--stdio` connection reached the
/// service): `{"listen": "127.0.0.1:11434", "node": "homeserver"}`; then, for `--stdio`, raw bytes.
public struct ConnectReply: Codable, Equatable, Sendable {
    public var listen: String?
    public var node: String?
    public var via: String?
    public init(listen: String?, node: String?, via: String? = nil) { self.listen = listen; self.node = node; self.via = via }
}
