/// The roles a device may hold, as an introducer granted them (docs/contract.md, "Who may change
/// trust"): `build` lets it hold `build` actively or as a backup, `backup:build` only as a backup.
/// Written into `keys/NAME.pub` as `# granted: build backup:transcode`; a key file without that
/// line is granted every role (`nil` wherever grants are optional).
public struct RoleGrants: Hashable, Sendable {
    /// `ROLE` or `backup:ROLE` words, each once.
    public private(set) var words: Set<String>

    public static let backupPrefix = "backup:"
    /// The most words one grant may hold: it travels in every exchange of trust statements.
    public static let maxWords = 64

    public init() { words = [] }

    /// nil if a word is neither a role name nor `backup:` and a role name, or there are too many.
    public init?<S: Sequence>(_ words: S) where S.Element == String {
        var set = Set<String>()
        for w in words {
            guard Self.isValidWord(w) else { return nil }
            set.insert(w)
        }
        guard set.count <= Self.maxWords else { return nil }
        self.words = set
    }

    public static func isValidWord(_ w: String) -> Bool {
        NodeName.isValid(w.hasPrefix(backupPrefix) ? String(w.dropFirst(backupPrefix.count)) : w)
    }

    /// Whether a member may hold `role` actively (`backup: false`) or stand by for it.
    public func allows(_ role: String, backup: Bool) -> Bool {
        words.contains(role) || (backup && words.contains(Self.backupPrefix + role))
    }

    public mutating func insert(_ word: String) { words.insert(word) }
    public mutating func remove(_ word: String) { words.remove(word) }

    /// Sorted, one space apart: what the key file's line says after `# granted:`.
    public var sorted: [String] { words.sorted() }
    public var text: String { sorted.joined(separator: " ") }

    /// The words a person gives `grant` and `ungrant`, and `invite --role R --backup R[=P]`.
    public static func word(role: String, backup: Bool) -> String { backup ? backupPrefix + role : role }

    /// What a node holding `roles` and standing by for `backup` needs granted.
    public static func needed(roles: [String], backup: [String]) -> RoleGrants {
        var g = RoleGrants()
        for r in roles { g.insert(r) }
        for r in backup where !roles.contains(r) { g.insert(backupPrefix + r) }
        return g
    }
}

/// Grants by node name, as `Routing.route` and the schedule planner take them: a name that is not
/// here is granted every role (a key copied by hand, this node's own key, a mesh from before grants).
public typealias GrantTable = [String: RoleGrants]

extension Dictionary where Key == String, Value == RoleGrants {
    /// Whether `node` may hold `role` actively (`backup: false`) or as a backup.
    public func allows(_ node: String, _ role: String, backup: Bool) -> Bool {
        self[node]?.allows(role, backup: backup) ?? true
    }
}
