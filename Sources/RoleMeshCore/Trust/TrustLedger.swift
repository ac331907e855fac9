/// The rules for trust statements, pure: which statements a node accepts, and what each one it
/// accepts makes it do to its `keys/` folder and its `introducers`. The agent feeds it every
/// statement it hears (its own, and peers' in each exchange) and applies the effects.
///
/// - Only introducers change trust: a statement counts when signed by this node itself, by a node
///   in its `introducers` (node.toml, which `introducer-add`/`-remove` statements edit), or — for
///   revocations and introducer changes only — by the mesh's recovery key. Any other signer's
///   statement changes nothing; it is counted (`dropped.not_introducer`) and not passed on.
/// - A revoked key's statements never count again, whenever they were signed: the revocation
///   drops every statement that key signed, and a revocation it had signed, no longer counting,
///   gives its key back (`restore`) unless another revocation of that key counts.
/// - A revocation beats an introduction, whatever the order of arrival, and is never dropped for
///   room; an introduction of a key with a held revocation (or one in `keys/revoked/`) is refused.
/// - Grants and introducer changes of one key: the latest (by the signer's time) wins, so every
///   node keeps the same one whatever order they came in; each signer's latest is held, so that
///   when one signer is revoked the latest of the others counts again.
/// - Junk never evicts a genuine statement: each signer may have `perSigner` statements held and
///   `keysPerSigner` keys introduced; beyond that its new statements are refused.
/// - An introduction never replaces a key: a name trusted with another key keeps it.
/// - A node never applies a revocation of itself; it learns it was revoked (`revokedSelf`).
public struct TrustLedger: Sendable {
    /// Every statement this node holds and passes on, oldest first.
    public private(set) var statements: [TrustStatement]
    /// Signatures of statements held, or superseded by one held (a grant replaced by a later one).
    private var seen: Set<[UInt8]>
    /// Signatures of statements refused as not from an introducer, so that one re-sent in every
    /// exchange is counted once (bounded: forgotten wholesale when full).
    private var refusedSeen: Set<[UInt8]> = []
    /// Statements refused because their signer may not change trust here (`dropped.not_introducer`).
    public private(set) var notIntroducer = 0
    /// The latest revocations this node refused, and why (`rolemesh trust`).
    public private(set) var refusals: [Refusal] = []

    /// Statements held per signer (the recovery key is one signer). Every held statement rides on
    /// every slot-record exchange, which must fit one frame (1 MiB) with the records.
    public static let perSigner = 128
    /// Keys one signer may have introduced (held introductions).
    public static let keysPerSigner = 64
    /// The most statements looked at from one exchange.
    public static let perExchange = 2_048
    static let refusalsKept = 64
    static let refusedSeenLimit = 8_192
    /// The signer name under which recovery-key statements are counted against the cap.
    static let recoverySigner = "\u{0}recovery"

    public struct Refusal: Codable, Equatable, Sendable {
        public var kind: String
        public var by: String
        public var name: String
        public var reason: String
        public init(kind: String, by: String, name: String, reason: String) {
            self.kind = kind; self.by = by; self.name = name; self.reason = reason
        }
    }

    public init(_ statements: [TrustStatement] = []) {
        self.statements = []
        seen = []
        for s in statements where !seen.contains(s.signature) { seen.insert(s.signature); self.statements.append(s) }
    }

    /// What the node knows when it considers a statement.
    public struct View: Sendable {
        public var me: String
        public var trusted: [String: [UInt8]]
        /// node.toml's `introducers` (absent: none but this node itself).
        public var introducers: [String]
        /// The mesh's recovery public key (node.toml's `recovery`), if this node has one.
        public var recoveryKey: [UInt8]?
        /// Keys in `keys/revoked/`.
        public var revokedOnDisk: Set<[UInt8]>
        public init(me: String, trusted: [String: [UInt8]], introducers: [String], recoveryKey: [UInt8]? = nil,
                    revokedOnDisk: Set<[UInt8]> = []) {
            self.me = me; self.trusted = trusted; self.introducers = introducers; self.recoveryKey = recoveryKey
            self.revokedOnDisk = revokedOnDisk
        }
    }

    /// What to change here for an accepted statement.
    public enum Effect: Equatable, Sendable {
        /// Write `keys/NAME.pub` (with this grant line; nil: none, every role).
        case introduce(TrustStatement, grants: [String]?)
        /// Rewrite the `# granted:` line of `keys/NAME.pub`, if it holds `key` (nil: remove it).
        case grant(name: String, key: [UInt8], grants: [String]?)
        /// Move `keys/NAME.pub` to `keys/revoked/` and end NAME's channels and tasks.
        case revoke(TrustStatement)
        /// This node's own key was revoked: it says so (`status`, `member-revoked`).
        case revokedSelf(TrustStatement)
        /// Add NAME to, or remove it from, node.toml's `introducers`.
        case introducer(name: String, add: Bool)
        /// A revocation whose signer was revoked no longer counts: its key goes back from
        /// `keys/revoked/` to `keys/` (if it is there and no file took its place).
        case restore(TrustStatement)
    }

    public enum Outcome: Equatable, Sendable {
        /// Held already (or superseded by one held).
        case known
        /// Not accepted, with why (for the log).
        case refused(String)
        /// Accepted and held, with what to change here (maybe nothing).
        case accepted([Effect])
    }

    // MARK: - Questions

    /// A revocation of `key` counts here.
    public func isRevoked(_ key: [UInt8]) -> Bool {
        statements.contains { $0.kind == .revoke && $0.key == key }
    }

    /// The revocation of `key` held here (the earliest by time, as shown to a person).
    public func revocation(of key: [UInt8]) -> TrustStatement? {
        statements.filter { $0.kind == .revoke && $0.key == key }.min { $0.time < $1.time }
    }

    /// The latest introduction or grant of `key`: its grants are the key's.
    public func latestGrant(of key: [UInt8]) -> TrustStatement? {
        latest(of: key, among: [.introduce, .grant])
    }

    /// The first introduction of `key` held here.
    public func introduction(of key: [UInt8]) -> TrustStatement? {
        statements.filter { $0.kind == .introduce && $0.key == key }.min { $0.time < $1.time }
    }

    /// true / false when an introducer statement about `key` is held (the latest wins), nil when none is.
    public func introducerStatus(of key: [UInt8]) -> Bool? {
        latest(of: key, among: [.introducerAdd, .introducerRemove]).map { $0.kind == .introducerAdd }
    }

    /// Names the held statements make introducers now.
    public var introducersByStatement: [String] {
        var latest: [[UInt8]: TrustStatement] = [:]
        for s in statements where s.kind == .introducerAdd || s.kind == .introducerRemove {
            if let old = latest[s.key], !s.isNewer(than: old) { continue }
            latest[s.key] = s
        }
        return latest.values.filter { $0.kind == .introducerAdd && !isRevoked($0.key) }.map(\.name).sorted()
    }

    /// Whether any statement about introducers is held (a mesh from before introducers holds none).
    public var holdsIntroducerStatements: Bool {
        statements.contains { $0.kind == .introducerAdd || $0.kind == .introducerRemove }
    }

    /// Whether the node with `key` may sign statements that others apply.
    public enum Standing: Equatable, Sendable {
        /// Its statements say it is an introducer — or it holds no statement about introducers at
        /// all and has no recovery key: a mesh from before introducers, where each node's
        /// `introducers` alone judges.
        case introducer
        case notIntroducer
        case revoked(TrustStatement)
    }

    public func standing(of key: [UInt8], hasRecoveryKey: Bool) -> Standing {
        if let r = revocation(of: key) { return .revoked(r) }
        switch introducerStatus(of: key) {
        case true?: return .introducer
        case false?: return .notIntroducer
        case nil: return !holdsIntroducerStatements && !hasRecoveryKey ? .introducer : .notIntroducer
        }
    }

    /// Introductions `name` (with `key`) signed that are held here, oldest first.
    public func introduced(by name: String, key: [UInt8]) -> [TrustStatement] {
        statements.filter { $0.kind == .introduce && !$0.recovery && $0.by == name && $0.isSigned(by: key) }.sorted { $0.time < $1.time }
    }

    /// Revocations `name` (with `key`) signed that count here now.
    public func revoked(by name: String, key: [UInt8]) -> [TrustStatement] {
        statements.filter { $0.kind == .revoke && !$0.recovery && $0.by == name && $0.isSigned(by: key) }.sorted { $0.time < $1.time }
    }

    func latest(of key: [UInt8], among kinds: Set<TrustStatement.Kind>) -> TrustStatement? {
        var best: TrustStatement?
        for s in statements where s.key == key && kinds.contains(s.kind) {
            if let b = best, !s.isNewer(than: b) { continue }
            best = s
        }
        return best
    }

    // MARK: - Considering a statement

    public mutating func consider(_ s: TrustStatement, _ view: View) -> Outcome {
        if seen.contains(s.signature) { return .known }
        guard s.isWellFormed else { return .refused("a malformed \(s.kind.rawValue) statement") }
        let signer: String
        if s.recovery {
            guard let rk = view.recoveryKey, s.isSigned(by: rk) else {
                return refuse(s, "\(s.kind.rawValue) of \(s.name) is not signed by this mesh's recovery key", count: false)
            }
            signer = Self.recoverySigner
        } else {
            guard let key = view.trusted[s.by], s.isSigned(by: key) else {
                return refuse(s, "\(s.kind.rawValue) of \(s.name) is not signed by a trusted node (\(s.by))", count: false)
            }
            if isRevoked(key) {
                return refuse(s, "\(s.by)'s key was revoked; its \(s.kind.rawValue) of \(s.name) does not count", count: true)
            }
            guard s.by == view.me || view.introducers.contains(s.by) else {
                return refuse(s, "\(s.by) is not an introducer here; its \(s.kind.rawValue) of \(s.name) changes nothing", count: true)
            }
            signer = s.by
        }
        switch s.kind {
        case .introduce: return introduce(s, signer: signer, view)
        case .grant: return grant(s, signer: signer, view)
        case .introducerAdd, .introducerRemove: return introducer(s, signer: signer, view)
        case .revoke: return revoke(s, signer: signer, view)
        }
    }

    /// `byName` statements held that `s` would not replace, against the per-signer cap.
    private func atCap(_ signer: String, replacing: Set<[UInt8]> = []) -> Bool {
        statements.lazy.filter { self.signerName($0) == signer && !replacing.contains($0.signature) }.count >= Self.perSigner
    }

    private func signerName(_ s: TrustStatement) -> String { s.recovery ? Self.recoverySigner : s.by }

    private mutating func introduce(_ s: TrustStatement, signer: String, _ view: View) -> Outcome {
        if isRevoked(s.key) || view.revokedOnDisk.contains(s.key) {
            return refuse(s, "\(s.by) introduced \(s.name) with a revoked key; not admitting it", count: false)
        }
        let current = view.trusted[s.name]
        if let current, current != s.key {
            return refuse(s, s.name == view.me ? "\(s.by) introduced another key under this node's own name"
                                                : "\(s.name) is already trusted here with another key; keeping it", count: false)
        }
        if atCap(signer) { return refuse(s, "\(s.by) already has \(Self.perSigner) statements held here, the most one signer may have", count: false) }
        if current == nil, statements.filter({ $0.kind == .introduce && signerName($0) == signer }).count >= Self.keysPerSigner {
            return refuse(s, "\(s.by) already introduced \(Self.keysPerSigner) keys, the most one signer may; not admitting \(s.name)", count: false)
        }
        let before = latestGrant(of: s.key)
        hold(s)
        let grants = latestGrant(of: s.key)!
        guard current == nil else {
            // Known here already (this node itself, or a key a person copied): only its grants may change.
            return .accepted(before == grants ? [] : [.grant(name: s.name, key: s.key, grants: grants.grants)])
        }
        var effects: [Effect] = [.introduce(s, grants: grants.grants)]
        if introducerStatus(of: s.key) == true, !view.introducers.contains(s.name) { effects.append(.introducer(name: s.name, add: true)) }
        return .accepted(effects)
    }

    /// A grant or introducer change replaces only its signer's older one of the same key: the
    /// others' stay held, so that if its signer is revoked the latest left counts again.
    private mutating func replacing(_ s: TrustStatement, signer: String, kinds: Set<TrustStatement.Kind>) -> Set<[UInt8]>? {
        let mine = statements.filter { kinds.contains($0.kind) && $0.key == s.key && signerName($0) == signer }
        if mine.contains(where: { !s.isNewer(than: $0) }) { seen.insert(s.signature); return nil }
        return Set(mine.map(\.signature))
    }

    private mutating func grant(_ s: TrustStatement, signer: String, _ view: View) -> Outcome {
        if isRevoked(s.key) { return refuse(s, "\(s.by) granted roles to \(s.name), whose key was revoked", count: false) }
        guard let older = replacing(s, signer: signer, kinds: [.grant]) else { return .known }
        if atCap(signer, replacing: older) { return refuse(s, "\(s.by) already has \(Self.perSigner) statements held here, the most one signer may have", count: false) }
        let before = latestGrant(of: s.key)
        statements.removeAll { older.contains($0.signature) }
        hold(s)
        let now = latestGrant(of: s.key)!
        guard now != before, view.trusted[s.name] == s.key else { return .accepted([]) }
        return .accepted([.grant(name: s.name, key: s.key, grants: now.grants)])
    }

    private mutating func introducer(_ s: TrustStatement, signer: String, _ view: View) -> Outcome {
        let add = s.kind == .introducerAdd
        if add, isRevoked(s.key) { return refuse(s, "\(s.by) made \(s.name) an introducer, whose key was revoked", count: false) }
        guard let older = replacing(s, signer: signer, kinds: [.introducerAdd, .introducerRemove]) else { return .known }
        if atCap(signer, replacing: older) { return refuse(s, "\(s.by) already has \(Self.perSigner) statements held here, the most one signer may have", count: false) }
        statements.removeAll { older.contains($0.signature) }
        hold(s)
        let now = introducerStatus(of: s.key) == true
        // This node's own standing is the statements' (`standing`), never a line in its own node.toml.
        guard s.name != view.me, view.trusted[s.name] == s.key, view.introducers.contains(s.name) != now else { return .accepted([]) }
        return .accepted([.introducer(name: s.name, add: now)])
    }

    private mutating func revoke(_ s: TrustStatement, signer: String, _ view: View) -> Outcome {
        if atCap(signer) { return refuse(s, "\(s.by) already has \(Self.perSigner) statements held here, the most one signer may have", count: false) }
        var effects: [Effect] = []
        // Introductions, grants and introducer changes of that key stop spreading.
        statements.removeAll { $0.key == s.key && $0.kind != .revoke }
        // And everything the key signed stops counting, whenever it was signed.
        let revokedName = view.trusted.first { $0.value == s.key }?.key ?? s.name
        let signedByIt = statements.filter { !$0.recovery && $0.by == revokedName && $0.isSigned(by: s.key) }
        let dropped = Set(signedByIt.map(\.signature))
        // Grants and introducer changes it made are undone where they are the latest: read before.
        let touched = Set(signedByIt.filter { $0.kind != .revoke && $0.key != s.key }.map(\.key))
        let grantBefore = Dictionary(uniqueKeysWithValues: touched.map { ($0, latestGrant(of: $0)) })
        statements.removeAll { dropped.contains($0.signature) }
        hold(s)
        for r in signedByIt where r.kind == .revoke && !isRevoked(r.key) { effects.append(.restore(r)) }
        for k in touched.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let name = view.trusted.first(where: { $0.value == k })?.key, name != view.me else { continue }
            if let was = grantBefore[k] ?? nil, dropped.contains(was.signature), let now = latestGrant(of: k) {
                effects.append(.grant(name: name, key: k, grants: now.grants))
            }
            let listed = view.introducers.contains(name), status = introducerStatus(of: k)
            if listed && status != true && signedByIt.contains(where: { $0.kind == .introducerAdd && $0.key == k }) {
                effects.append(.introducer(name: name, add: false))
            } else if !listed && status == true {
                effects.append(.introducer(name: name, add: true))
            }
        }
        if s.name == view.me, view.trusted[view.me] == s.key {
            effects.append(.revokedSelf(s))
        } else if view.trusted[s.name] == s.key {
            effects.append(.revoke(s))
            if view.introducers.contains(s.name) { effects.append(.introducer(name: s.name, add: false)) }
        }
        return .accepted(effects)
    }

    private mutating func refuse(_ s: TrustStatement, _ why: String, count: Bool) -> Outcome {
        if refusedSeen.count >= Self.refusedSeenLimit { refusedSeen = [] }
        if refusedSeen.insert(s.signature).inserted {
            if count { notIntroducer += 1 }
            if s.kind == .revoke {
                refusals.append(Refusal(kind: s.kind.rawValue, by: s.recovery ? "\(s.by) (recovery code)" : s.by, name: s.name, reason: why))
                if refusals.count > Self.refusalsKept { refusals.removeFirst(refusals.count - Self.refusalsKept) }
            }
        }
        return .refused(why)
    }

    private mutating func hold(_ s: TrustStatement) {
        if seen.count >= Self.refusedSeenLimit { seen = Set(statements.map(\.signature)) }
        seen.insert(s.signature)
        statements.append(s)
    }

    /// Only the statements of current introducers are kept and passed on: after node.toml's
    /// `introducers` changed, drop those of signers no longer accepted. Revocations stay (a
    /// revocation is never dropped for room, and a former introducer's past revocations stood).
    public mutating func prune(_ view: View) {
        statements.removeAll { s in
            !s.recovery && s.kind != .revoke && s.by != view.me && !view.introducers.contains(s.by)
        }
    }
}
