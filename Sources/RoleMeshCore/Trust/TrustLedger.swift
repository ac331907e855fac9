/// The rules for trust statements, pure: which statements a node accepts, and what each one it
/// accepts makes it do to its `keys/` folder. The agent feeds it every statement it hears (its
/// own, and peers' in each exchange) and applies the outcome.
///
/// - A statement counts only when signed by a key this node trusts now, from a node it accepts
///   introductions from (`introducers` in node.toml; nil = every trusted node; itself always).
/// - A revocation beats an introduction, whatever the order of arrival: a revocation is held for
///   good, and an introduction of a key with a held revocation (or one in `keys/revoked/`) is refused.
/// - A revoked key signs nothing more that counts: statements by a key with a held revocation are
///   refused, whatever time they claim (a stolen device could backdate them).
/// - An introduction never replaces a key: a name trusted with another key keeps it.
/// - Keys a revoked node introduced earlier stay trusted (they were vetted by a person with a code).
/// - A node never applies a revocation of itself (the others shut it out).
public struct TrustLedger: Sendable {
    /// Every statement this node holds and passes on, oldest first.
    public private(set) var statements: [TrustStatement]
    private var seen: Set<[UInt8]>

    /// The most statements held; revocations are kept before introductions when trimming. All of
    /// them ride on every slot-record exchange, which must fit one frame (1 MiB) with the records.
    public static let capacity = 512

    public init(_ statements: [TrustStatement] = []) {
        self.statements = []
        seen = []
        for s in statements where !seen.contains(s.signature) { seen.insert(s.signature); self.statements.append(s) }
    }

    /// What the node knows when it considers a statement.
    public struct View: Sendable {
        public var me: String
        public var trusted: [String: [UInt8]]
        public var introducers: [String]?
        /// Keys in `keys/revoked/`.
        public var revokedOnDisk: Set<[UInt8]>
        public init(me: String, trusted: [String: [UInt8]], introducers: [String]?, revokedOnDisk: Set<[UInt8]> = []) {
            self.me = me; self.trusted = trusted; self.introducers = introducers; self.revokedOnDisk = revokedOnDisk
        }
    }

    public enum Outcome: Equatable, Sendable {
        /// Held already.
        case known
        /// Not accepted, with why (for the log).
        case refused(String)
        /// Accepted and held; nothing to change here.
        case held
        /// Accepted: write `keys/NAME.pub`.
        case introduce(TrustStatement)
        /// Accepted: move `keys/NAME.pub` to `keys/revoked/` and end NAME's channels and tasks.
        case revoke(TrustStatement)
    }

    public func isRevoked(_ key: [UInt8]) -> Bool {
        statements.contains { $0.kind == .revoke && $0.key == key }
    }

    public mutating func consider(_ s: TrustStatement, _ view: View) -> Outcome {
        if seen.contains(s.signature) { return .known }
        guard NodeName.isValid(s.by), NodeName.isValid(s.name), s.key.count == Ed25519.publicKeySize else {
            return .refused("a malformed statement")
        }
        guard let signer = view.trusted[s.by], s.isSigned(by: signer) else {
            return .refused("\(s.kind.rawValue) of \(s.name) is not signed by a trusted node (\(s.by))")
        }
        if isRevoked(signer) { return .refused("\(s.by)'s key was revoked; its \(s.kind.rawValue) of \(s.name) does not count") }
        guard s.by == view.me || view.introducers.map({ $0.contains(s.by) }) ?? true else {
            return .refused("\(s.by) is not among this node's introducers; ignoring its \(s.kind.rawValue) of \(s.name)")
        }
        switch s.kind {
        case .introduce:
            if isRevoked(s.key) || view.revokedOnDisk.contains(s.key) {
                return .refused("\(s.by) introduced \(s.name) with a revoked key; not admitting it")
            }
            if s.name == view.me { return .refused("\(s.by) introduced another key under this node's own name") }
            if let current = view.trusted[s.name] {
                guard current == s.key else { return .refused("\(s.name) is already trusted here with another key; keeping it") }
                hold(s)
                return .held
            }
            hold(s)
            return .introduce(s)
        case .revoke:
            // Introductions of that key stop spreading; the revocation spreads instead.
            statements.removeAll { $0.kind == .introduce && $0.key == s.key }
            hold(s)
            return s.name != view.me && view.trusted[s.name] == s.key ? .revoke(s) : .held
        }
    }

    private mutating func hold(_ s: TrustStatement) {
        seen.insert(s.signature)
        statements.append(s)
        guard statements.count > Self.capacity else { return }
        if let i = statements.firstIndex(where: { $0.kind == .introduce }) { statements.remove(at: i) } else { statements.removeFirst() }
        seen = Set(statements.map(\.signature))
    }
}
