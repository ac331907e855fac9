/// A failure: one sentence and the contract's exit code. Any answer may be this.
public struct ErrorReply: Codable, Equatable, Sendable {
    public var error: String
    public var code: Int
    public init(error: String, code: Int) { self.error = error; self.code = code }
}

/// What every answer may carry: the error fields, if it is a failure.
public struct ErrorProbe: Decodable, Sendable {
    public var error: String?
    public var code: Int?
}

/// `leave`, `roles`, `backup`, `signal`, `drain`, `undrain`: done, with what changed.
public struct OkReply: Codable, Equatable, Sendable {
    public var ok: Bool
    public var node: String?
    public var draining: Bool?
    public var signals: SignalsStatus?
    /// Something the person should know although the command did what it was asked (printed on stderr).
    public var note: String?

    public init(node: String? = nil, draining: Bool? = nil, signals: SignalsStatus? = nil, note: String? = nil) {
        ok = true; self.node = node; self.draining = draining; self.signals = signals; self.note = note
    }
}

/// The first line of an answer that waits for a file to be written (`roles`, `backup`, `signal`,
/// `drain`, `undrain`): the agent has the request. The command line gives the agent 5 s to say so
/// (a stopped agent says nothing), then the disk 30 s for the answer that follows.
public struct AcceptedReply: Codable, Equatable, Sendable {
    public var accepted: Bool
    public init() { accepted = true }
}

/// `submit --detach`: the new task's id.
public struct SubmittedReply: Codable, Equatable, Sendable {
    public var id: String
    public init(id: String) { self.id = id }
}

/// `tasks`: the journal, oldest first.
public struct TasksReply: Codable, Equatable, Sendable {
    public var tasks: [TaskRecord]
    public init(tasks: [TaskRecord]) { self.tasks = tasks }
}

/// `cancel`: the task's full id and its state once the cancel was delivered (`cancelled`, or
/// still `running` when it has not ended within the agent's wait).
public struct CancelReply: Codable, Equatable, Sendable {
    public var id: String
    public var state: String
    public init(id: String, state: String) { self.id = id; self.state = state }
}

/// `invite`: the code to give the new device, and when it stops working.
public struct InviteReply: Codable, Equatable, Sendable {
    public var name: String
    public var code: String
    /// RFC 3339.
    public var expires: String
    /// When the other codes still pending for this name expire (RFC 3339): each works until one
    /// of them is used. Absent when there is none.
    public var alsoPending: [String]?
    public init(name: String, code: String, expires: String, alsoPending: [String]? = nil) {
        self.name = name; self.code = code; self.expires = expires; self.alsoPending = alsoPending
    }
    enum CodingKeys: String, CodingKey { case name, code, expires, alsoPending = "also_pending" }
}

/// `revoke`: what changed, said plainly (the command prints it).
public struct RevokeReply: Codable, Equatable, Sendable {
    public struct Introduced: Codable, Equatable, Sendable {
        public var name: String
        /// RFC 3339, from the introduction's signed time.
        public var at: String
        public init(name: String, at: String) { self.name = name; self.at = at }
    }
    public var name: String
    /// `keys/NAME.pub` moved to `keys/revoked/` here (false when it was not here: `--cascade` of
    /// a name revoked before, or a recovery revocation of a key this node did not hold).
    public var moved: Bool
    /// The keys NAME introduced (held introductions), each with its time.
    public var introduced: [Introduced]
    /// Revoked with `--cascade`, in the order revoked.
    public var cascaded: [String]
    /// Keys NAME had revoked: those revocations no longer count.
    public var restored: [String]

    public init(name: String, moved: Bool, introduced: [Introduced] = [], cascaded: [String] = [], restored: [String] = []) {
        self.name = name; self.moved = moved; self.introduced = introduced; self.cascaded = cascaded; self.restored = restored
    }
}

/// `introducers`, `grant`, `ungrant`, a recovery statement: done, and one sentence saying what changed.
public struct TrustChangeReply: Codable, Equatable, Sendable {
    public var ok: Bool
    public var message: String
    public init(message: String) { ok = true; self.message = message }
}

/// `trust --json`: every key this node knows, and the revocations it refused.
public struct TrustReply: Codable, Equatable, Sendable {
    public struct Key: Codable, Equatable, Sendable {
        public var name: String
        public var introducedBy: String?
        public var introducedAt: String?
        public var introducer: Bool
        /// nil: every role (a key file without a `# granted:` line).
        public var granted: [String]?
        public var revoked: Bool

        enum CodingKeys: String, CodingKey {
            case name, introducedBy = "introduced_by", introducedAt = "introduced_at", introducer, granted, revoked
        }

        public init(name: String, introducedBy: String?, introducedAt: String?, introducer: Bool, granted: [String]?, revoked: Bool) {
            self.name = name; self.introducedBy = introducedBy; self.introducedAt = introducedAt
            self.introducer = introducer; self.granted = granted; self.revoked = revoked
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name); try c.encode(introducedBy, forKey: .introducedBy)
            try c.encode(introducedAt, forKey: .introducedAt); try c.encode(introducer, forKey: .introducer)
            try c.encode(granted, forKey: .granted); try c.encode(revoked, forKey: .revoked)
        }
    }
    public struct Refused: Codable, Equatable, Sendable {
        public var kind: String
        public var by: String
        public var name: String
        public var reason: String
        public init(kind: String, by: String, name: String, reason: String) {
            self.kind = kind; self.by = by; self.name = name; self.reason = reason
        }
    }
    public var keys: [Key]
    public var refused: [Refused]
    public init(keys: [Key], refused: [Refused]) { self.keys = keys; self.refused = refused }
}
