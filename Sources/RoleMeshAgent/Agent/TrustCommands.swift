import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage

/// The commands that change trust (`revoke`, `introducers`, `grant`, `ungrant`, and their
/// `--recovery` form) and the audit (`trust`). Each signs a statement, has the ledger judge it
/// here first (a refusal is said plainly, exit 77, and nothing changes), and answers once what it
/// changed is on disk.
extension Agent {
    /// Waits for file changes; the last failure, if any.
    func finished(_ applying: [Later<MeshError?>]) async -> MeshError? {
        var failure: MeshError?
        for t in applying { if let e = await t.value { failure = e } }
        return failure
    }

    static func refusedHere(_ why: String) -> MeshError {
        MeshError(MeshError.noPermission, "refused here, nothing changed: \(why)")
    }

    /// `rolemesh revoke NAME [--cascade]`.
    func revoke(name revoked: String, cascade: Bool, _ conn: ControlConnection) {
        guard revoked != name else { return conn.fail(MeshError(MeshError.usage, "\(revoked) is this node; revoke it from another device")) }
        if let refusal = mayChangeTrust() { return conn.fail(refusal) }
        let trustedKey = keyRing.trusted[revoked]
        // `--cascade` after a plain revoke: the key revoked here under that name.
        let heldKey = trust.statements.last { $0.kind == .revoke && $0.name == revoked }?.key
        guard let key = trustedKey ?? (cascade ? heldKey : nil) else {
            return conn.fail(MeshError(MeshError.other, "\(revoked) is not trusted here (no keys/\(revoked).pub)"))
        }
        // Read before the revocation drops what the key signed.
        let introduced = trust.introduced(by: revoked, key: key)
        let restored = trust.revoked(by: revoked, key: key).map(\.name)
        var applying: [Later<MeshError?>] = [], moved = false
        if trustedKey != nil {
            let (outcome, tasks) = judge(signed(.revoke, name: revoked, key: key))
            guard case .accepted(let effects) = outcome else {
                if case .refused(let why) = outcome { return conn.fail(Self.refusedHere(why)) }
                return conn.fail(MeshError(MeshError.other, "\(revoked) was revoked here already"))
            }
            applying = tasks
            moved = effects.contains { if case .revoke = $0 { true } else { false } }
        }
        var cascaded: [String] = []
        if cascade {
            // Everything it introduced, and what those introduced in turn (read before each revocation).
            var queue = introduced.map { ($0.name, $0.key) }, done: Set<[UInt8]> = [key]
            while !queue.isEmpty {
                let (n, k) = queue.removeFirst()
                guard done.insert(k).inserted, n != name, keyRing.trusted[n] == k else { continue }
                queue += trust.introduced(by: n, key: k).map { ($0.name, $0.key) }
                let (outcome, tasks) = judge(signed(.revoke, name: n, key: k))
                if case .accepted = outcome { cascaded.append(n); applying += tasks }
            }
        }
        let reply = RevokeReply(name: revoked, moved: moved,
                                introduced: introduced.map { .init(name: $0.name, at: Self.rfc3339(ms: $0.time)) },
                                cascaded: cascaded, restored: restored)
        spawn {      // on the agent (it uses `self`), where `conn` lives
            // The key has moved (not just been queued to move); the revocation is signed and kept
            // whatever happened to the file: say both halves.
            if let failure = await finished(applying) {
                return conn.fail(MeshError(failure.code, failure.message
                    + "; \(revoked) stays trusted here until its key is moved, but the signed revocation is kept and spreads to the mesh"))
            }
            conn.reply(reply)
        }
    }

    /// `rolemesh introducers add|remove NAME`.
    func changeIntroducers(_ add: Bool, name subject: String, _ conn: ControlConnection) {
        if let refusal = mayChangeTrust() { return conn.fail(refusal) }
        guard let key = keyRing.trusted[subject] else {
            return conn.fail(MeshError(MeshError.other, "\(subject) is not trusted here (no keys/\(subject).pub)"))
        }
        if trust.introducerStatus(of: key) == add || (trust.introducerStatus(of: key) == nil && !add && !config.acceptedIntroducers.contains(subject)) {
            return conn.reply(TrustChangeReply(message: "\(subject) is \(add ? "an introducer" : "not an introducer") already; nothing changed"))
        }
        let (outcome, applying) = judge(signed(add ? .introducerAdd : .introducerRemove, name: subject, key: key))
        if case .refused(let why) = outcome { return conn.fail(Self.refusedHere(why)) }
        let message = add
            ? "\(subject) is an introducer now: every node that accepts \(name) lets \(subject) invite, revoke and grant"
            : "\(subject) is no longer an introducer on the nodes that accept \(name); its statements stop counting there"
        spawn {
            if let failure = await finished(applying) { return conn.fail(failure) }
            conn.reply(TrustChangeReply(message: message))
        }
    }

    /// `rolemesh grant NAME ROLE...` (add) and `rolemesh ungrant NAME ROLE...`.
    func changeGrants(_ add: Bool, name subject: String, words: [String], _ conn: ControlConnection) {
        guard !words.isEmpty, words.allSatisfy(RoleGrants.isValidWord) else {
            return conn.fail(MeshError(MeshError.usage, "roles are role names, or backup:ROLE for a backup"))
        }
        if let refusal = mayChangeTrust() { return conn.fail(refusal) }
        guard let key = keyRing.trusted[subject] else {
            return conn.fail(MeshError(MeshError.other, "\(subject) is not trusted here (no keys/\(subject).pub)"))
        }
        var next: RoleGrants
        if let current = keyFiles[subject]?.grants {
            next = current
        } else if add {
            return conn.reply(TrustChangeReply(message: "\(subject) is granted every role already (keys/\(subject).pub has no # granted: line); nothing changed"))
        } else {
            // From "every role": what it holds now, less what is taken away.
            let m = core.snapshot(now: Clock.now()).first { $0.name == subject }
            next = RoleGrants.needed(roles: m?.roles ?? [], backup: Array(m?.backup.keys ?? [:].keys))
        }
        for w in words { if add { next.insert(w) } else { next.remove(w) } }
        guard next.words.count <= RoleGrants.maxWords else {
            return conn.fail(MeshError(MeshError.usage, "at most \(RoleGrants.maxWords) roles may be granted to one device"))
        }
        let (outcome, applying) = judge(signed(.grant, name: subject, key: key, grants: next.sorted))
        if case .refused(let why) = outcome { return conn.fail(Self.refusedHere(why)) }
        let what = next.words.isEmpty ? "no role" : next.text
        spawn {
            if let failure = await finished(applying) { return conn.fail(failure) }
            conn.reply(TrustChangeReply(message: "\(subject) is granted \(what) now; the grant spreads to every node that accepts \(name)"))
        }
    }

    /// A statement the command line signed with the recovery code (`--recovery`).
    func applyRecovered(_ text: String, _ conn: ControlConnection) {
        guard let s = ControlJSON.decode(TrustStatement.self, from: Data(text.utf8)), s.recovery, s.by == name else {
            return conn.fail(MeshError(MeshError.usage, "not a recovery statement of this node"))
        }
        guard let rk = recoveryKey else {
            return conn.fail(MeshError(MeshError.noPermission, "this node has no recovery key (`recovery` in node.toml): its mesh was made before recovery codes"))
        }
        guard s.isSigned(by: rk) else {
            return conn.fail(MeshError(MeshError.noPermission, "that is not this mesh's recovery code; nothing changed"))
        }
        let key = s.key
        let introduced = s.kind == .revoke ? trust.introduced(by: s.name, key: key) : []
        let restored = s.kind == .revoke ? trust.revoked(by: s.name, key: key).map(\.name) : []
        let (outcome, applying) = judge(s)
        let effects: [TrustLedger.Effect]
        switch outcome {
        case .refused(let why): return conn.fail(Self.refusedHere(why))
        case .known: effects = []
        case .accepted(let e): effects = e
        }
        spawn {
            if let failure = await finished(applying) { return conn.fail(failure) }
            switch s.kind {
            case .revoke:
                let moved = effects.contains { if case .revoke = $0 { true } else { false } }
                conn.reply(RevokeReply(name: s.name, moved: moved, introduced: introduced.map { .init(name: $0.name, at: Self.rfc3339(ms: $0.time)) },
                                       restored: restored))
            default:
                let add = s.kind == .introducerAdd
                conn.reply(TrustChangeReply(message: add
                    ? "\(s.name) is an introducer now, by the recovery code: every node of the mesh accepts it"
                    : "\(s.name) is no longer an introducer, by the recovery code, on every node of the mesh"))
            }
        }
    }

    /// `rolemesh trust`: every key in `keys/` and `keys/revoked/`, who introduced it and when,
    /// whether it is an introducer, its grants, and the revocations this node refused.
    func trustReply(_ conn: ControlConnection) {
        let dir = self.dir
        spawn {
            let revokedFiles = await offQueue { (try? KeyStore.loadRevokedFiles(in: dir)) ?? [:] }
            var keys: [TrustReply.Key] = []
            let selfIntroducer = mayChangeTrust() == nil
            func origin(_ key: [UInt8], _ file: KeyFile?) -> (String?, String?) {
                if let s = trust.introduction(of: key) { return (s.by, Self.rfc3339(ms: s.time)) }
                return (file?.introducedBy, file?.introducedAt)
            }
            for (n, key) in keyRing.trusted {
                let file = keyFiles[n]
                let (by, at) = origin(key, file)
                let introducer = n == name ? selfIntroducer : config.acceptedIntroducers.contains(n)
                keys.append(.init(name: n, introducedBy: by, introducedAt: at, introducer: introducer,
                                  granted: file?.grants?.sorted, revoked: false))
            }
            for (n, file) in revokedFiles where keyRing.trusted[n] != file.key {
                let (by, at) = origin(file.key, file)
                keys.append(.init(name: n, introducedBy: by, introducedAt: at, introducer: false, granted: file.grants?.sorted, revoked: true))
            }
            keys.sort { ($0.name, $0.revoked ? 1 : 0) < ($1.name, $1.revoked ? 1 : 0) }
            let refused = trust.refusals.map { TrustReply.Refused(kind: $0.kind, by: $0.by, name: $0.name, reason: $0.reason) }
            conn.reply(TrustReply(keys: keys, refused: refused))
        }
    }
}
