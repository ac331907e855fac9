/// `status`: the membership view, exactly as `status --json` prints it (docs/contract.md).
public struct StatusReply: Codable, Equatable, Sendable {
    public var me: String
    public var members: [MemberStatus]
    public var roles: [String: RoleRoutes]
    public var dropped: DroppedCounts
    /// Set when an introducer revoked this node's own key: the others shut it out.
    public var revoked: Revoked?
    /// The service listeners this node keeps open (`forward`, `connect`).
    public var forwards: [ForwardStatus] = []

    public struct Revoked: Codable, Equatable, Sendable {
        public var by: String
        /// RFC 3339, the revocation's signed time.
        public var at: String
        public init(by: String, at: String) { self.by = by; self.at = at }
    }

    enum CodingKeys: String, CodingKey { case me = "self", members, roles, dropped, revoked, forwards }

    public init(me: String, members: [MemberStatus], roles: [String: RoleRoutes], dropped: DroppedCounts, revoked: Revoked? = nil,
                forwards: [ForwardStatus] = []) {
        self.me = me; self.members = members; self.roles = roles; self.dropped = dropped; self.revoked = revoked
        self.forwards = forwards
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        me = try c.decode(String.self, forKey: .me); members = try c.decode([MemberStatus].self, forKey: .members)
        roles = try c.decode([String: RoleRoutes].self, forKey: .roles); dropped = try c.decode(DroppedCounts.self, forKey: .dropped)
        revoked = try c.decodeIfPresent(Revoked.self, forKey: .revoked)
        forwards = try c.decodeIfPresent([ForwardStatus].self, forKey: .forwards) ?? []
    }
}

public struct MemberStatus: Codable, Equatable, Sendable {
    public var name: String
    public var address: String
    public var state: String
    public var incarnation: Int
    public var roles: [String]
    public var backup: [String: Int]
    public var draining: Bool
    public var score: Double
    public var lastHeardMs: Int
    public var signals: SignalsStatus
    /// `"direct"`, or `"via NODE"` when this node reaches the member only through NODE.
    public var reach: String?
    /// `ROLE/NAME` → `starting`, `healthy` or `unhealthy`: what the member reports it offers.
    public var services: [String: String] = [:]

    enum CodingKeys: String, CodingKey {
        case name, address, state, incarnation, roles, backup, draining, score, lastHeardMs = "last_heard_ms", signals, reach, services
    }

    public init(name: String, address: String, state: String, incarnation: Int, roles: [String], backup: [String: Int],
                draining: Bool, score: Double, lastHeardMs: Int, signals: SignalsStatus, reach: String? = nil) {
        self.reach = reach
        self.name = name; self.address = address; self.state = state; self.incarnation = incarnation
        self.roles = roles; self.backup = backup; self.draining = draining; self.score = score
        self.lastHeardMs = lastHeardMs; self.signals = signals
    }

    /// An agent of the release before services has no `services`: read as none.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name); address = try c.decode(String.self, forKey: .address)
        state = try c.decode(String.self, forKey: .state); incarnation = try c.decode(Int.self, forKey: .incarnation)
        roles = try c.decode([String].self, forKey: .roles); backup = try c.decode([String: Int].self, forKey: .backup)
        draining = try c.decode(Bool.self, forKey: .draining); score = try c.decode(Double.self, forKey: .score)
        lastHeardMs = try c.decode(Int.self, forKey: .lastHeardMs); signals = try c.decode(SignalsStatus.self, forKey: .signals)
        reach = try c.decodeIfPresent(String.self, forKey: .reach)
        services = try c.decodeIfPresent([String: String].self, forKey: .services) ?? [:]
    }
}

/// A member's resource signals; unknown ones are `null`, never missing.
public struct SignalsStatus: Codable, Equatable, Sendable {
    public var load: Double?
    public var cpus: Int?
    public var memFree: Double?
    public var battery: Double?
    public var onBattery: Bool?
    public var throttled: Bool?
    public var idle: Bool?
    public var idleS: Int?

    enum CodingKeys: String, CodingKey {
        case load, cpus, memFree = "mem_free", battery, onBattery = "on_battery", throttled, idle, idleS = "idle_s"
    }

    public init(load: Double? = nil, cpus: Int? = nil, memFree: Double? = nil, battery: Double? = nil,
                onBattery: Bool? = nil, throttled: Bool? = nil, idle: Bool? = nil, idleS: Int? = nil) {
        self.load = ControlJSON.rounded(load); self.cpus = cpus; self.memFree = ControlJSON.rounded(memFree)
        self.battery = ControlJSON.rounded(battery); self.onBattery = onBattery; self.throttled = throttled
        self.idle = idle; self.idleS = idleS
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(load, forKey: .load); try c.encode(cpus, forKey: .cpus); try c.encode(memFree, forKey: .memFree)
        try c.encode(battery, forKey: .battery); try c.encode(onBattery, forKey: .onBattery)
        try c.encode(throttled, forKey: .throttled)
        try c.encode(idle, forKey: .idle); try c.encode(idleS, forKey: .idleS)
    }
}

/// Where a role's light and heavy work goes now; `null` when no node can take it.
public struct RoleRoutes: Codable, Equatable, Sendable {
    public var route: String?
    public var heavyRoute: String?

    enum CodingKeys: String, CodingKey { case route, heavyRoute = "heavy_route" }

    public init(route: String?, heavyRoute: String?) { self.route = route; self.heavyRoute = heavyRoute }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(route, forKey: .route); try c.encode(heavyRoute, forKey: .heavyRoute)
    }
}

public struct DroppedCounts: Codable, Equatable, Sendable {
    public var badSignature: Int
    public var unknownKey: Int
    public var replay: Int
    public var malformed: Int
    public var rateLimited: Int
    /// Datagrams whose pair tag is ours but that fail authentication (protocol.md 2.1).
    public var badMac: Int
    /// Trust statements signed by a node that may not change trust here (not an introducer, or revoked).
    public var notIntroducer: Int
    /// Slot records neither about the sender's own run nor signed by the node that ran it.
    public var forgedSlotRecord: Int

    enum CodingKeys: String, CodingKey {
        case badSignature = "bad_signature", unknownKey = "unknown_key", replay, malformed, rateLimited = "rate_limited"
        case badMac = "bad_mac", notIntroducer = "not_introducer", forgedSlotRecord = "forged_slot_record"
    }

    public init(badSignature: Int, unknownKey: Int, replay: Int, malformed: Int, rateLimited: Int, badMac: Int = 0,
                notIntroducer: Int = 0, forgedSlotRecord: Int = 0) {
        self.badSignature = badSignature; self.unknownKey = unknownKey; self.replay = replay
        self.malformed = malformed; self.rateLimited = rateLimited; self.badMac = badMac
        self.notIntroducer = notIntroducer; self.forgedSlotRecord = forgedSlotRecord
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        badSignature = try c.decode(Int.self, forKey: .badSignature)
        unknownKey = try c.decode(Int.self, forKey: .unknownKey)
        replay = try c.decode(Int.self, forKey: .replay)
        malformed = try c.decode(Int.self, forKey: .malformed)
        rateLimited = try c.decode(Int.self, forKey: .rateLimited)
        badMac = try c.decodeIfPresent(Int.self, forKey: .badMac) ?? 0
        notIntroducer = try c.decodeIfPresent(Int.self, forKey: .notIntroducer) ?? 0
        forgedSlotRecord = try c.decodeIfPresent(Int.self, forKey: .forgedSlotRecord) ?? 0
    }
}
