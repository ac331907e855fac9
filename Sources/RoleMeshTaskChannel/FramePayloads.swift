import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// The JSON payloads of task-channel frames (`protocol.md`): same keys on the wire as always.

/// The `request` frame's payload is a `TaskRequest` (TaskRequest.swift).

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
public struct Lenient<T: Decodable>: Decodable {
    public let value: T?
    public init(from decoder: Decoder) throws { value = try? T(from: decoder) }
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
