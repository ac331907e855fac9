public enum MemberState: String, Sendable, Codable {
    case alive, suspect, dead, left
}

/// What `rolemesh watch` prints, one per line.
public struct MeshEvent: Equatable, Sendable {
    public enum Kind: String, Sendable {
        case memberAlive = "member-alive"
        case memberSuspect = "member-suspect"
        case memberDead = "member-dead"
        case memberLeft = "member-left"
        case memberUpdated = "member-updated"
        case roleMoved = "role-moved"
    }
    public var kind: Kind
    public var node: String
    public var role: String?
    public var from: String?
    public var to: String?

    public init(_ kind: Kind, node: String, role: String? = nil, from: String? = nil, to: String? = nil) {
        self.kind = kind; self.node = node; self.role = role; self.from = from; self.to = to
    }

    public static func state(_ s: MemberState, _ node: String) -> MeshEvent {
        switch s {
        case .alive: return MeshEvent(.memberAlive, node: node)
        case .suspect: return MeshEvent(.memberSuspect, node: node)
        case .dead: return MeshEvent(.memberDead, node: node)
        case .left: return MeshEvent(.memberLeft, node: node)
        }
    }
}

/// Datagrams and entries the core refused, by reason (`status` shows them).
public struct DropCounters: Equatable, Sendable, Codable {
    public var badSignature = 0
    public var unknownKey = 0
    public var replay = 0
    public var malformed = 0
    /// Entries that needed a signature check while their source IP's verify budget was empty.
    public var rateLimited = 0
    public init() {}
    enum CodingKeys: String, CodingKey {
        case badSignature = "bad_signature", unknownKey = "unknown_key", replay, malformed
        case rateLimited = "rate_limited"
    }
}
