import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// Trust statements: judged by `TrustLedger` (RoleMeshCore/Trust), applied to `keys/` and
/// node.toml's `introducers` here, and spread on the slot-record exchange (Schedules/SlotRelay.swift):
/// pushed to every up member when this node accepts a new one, and caught up by the exchange with
/// one member every 10 s. The agent's `keys/` reload then trusts or distrusts the node, and a
/// revocation ends its channels and tasks as a removed `.pub` does.
extension Agent {
    static func wallMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    static func rfc3339(ms: Int64) -> String { Clock.rfc3339(Date(timeIntervalSince1970: Double(ms) / 1000)) }

    /// The mesh's recovery public key from node.toml, if any.
    var recoveryKey: [UInt8]? {
        config.recovery.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }.flatMap { $0.count == Ed25519.publicKeySize ? $0 : nil }
    }

    var trustView: TrustLedger.View {
        TrustLedger.View(me: name, trusted: keyRing.trusted, introducers: config.acceptedIntroducers, recoveryKey: recoveryKey,
                         revokedOnDisk: revokedOnDisk)
    }

    /// The grants of every trusted key (from the key files' `# granted:` lines), as routing takes them.
    var grants: GrantTable { node.grants }

    /// The revocation of this node's own key, when an introducer revoked it.
    var revokedSelf: TrustStatement? { trust.revocation(of: keyRing.keyPair.publicKey) }

    /// What `keys/` says beyond the keys: grants and who introduced each (read with the keys).
    func applyKeyFiles(_ files: [String: KeyFile]) {
        keyFiles = files
        let grants = files.compactMapValues(\.grants)
        guard grants != node.grants else { return }
        // A grant given or taken away moves routes as a view change does.
        for e in node.replaceGrants(grants, now: Clock.now()) { publish(e) }
        viewChanges.bump()
    }

    /// `by` as a person reads it: a recovery statement names the node the code was used on.
    static func signerText(_ s: TrustStatement) -> String { s.recovery ? "\(s.by) (recovery code)" : s.by }

    /// Nodes that may change trust in this mesh as far as this node knows: its own `introducers`
    /// and those its statements make introducers.
    var knownIntroducers: [String] {
        Array(Set(config.acceptedIntroducers + trust.introducersByStatement)).filter { keyRing.trusted[$0] != nil }.sorted()
    }

    /// nil when this node may sign introductions, revocations, grants and introducer changes that
    /// others apply (`TrustLedger.standing`); else the refusal (77), naming the introducers.
    func mayChangeTrust() -> MeshError? {
        Self.refusal(trust.standing(of: keyRing.keyPair.publicKey, hasRecoveryKey: recoveryKey != nil), me: name,
                     introducers: knownIntroducers)
    }

    static func refusal(_ standing: TrustLedger.Standing, me: String, introducers: [String]) -> MeshError? {
        switch standing {
        case .introducer: return nil
        case .revoked(let r):
            return MeshError(MeshError.noPermission,
                             "\(me) was revoked by \(signerText(r)) at \(rfc3339(ms: r.time)): its statements count nowhere in the mesh")
        case .notIntroducer:
            let others = introducers.filter { $0 != me }
            let who = others.isEmpty ? "no introducer is known here" : "only \(list(others)) may"
            return MeshError(MeshError.noPermission,
                             "\(me) is not an introducer, so no other node would accept this change; \(who) invite, revoke, grant or change introducers: run it there (or with the recovery code: --recovery)")
        }
    }

    static func list(_ names: [String]) -> String {
        switch names.count {
        case 0: "nobody"
        case 1: names[0]
        default: names.dropLast().joined(separator: ", ") + " and " + names.last!
        }
    }

    /// Considers statements (a peer's); applies what is accepted and passes news on.
    @discardableResult
    func considerTrust(_ statements: [TrustStatement], from peer: String) -> [Later<MeshError?>] {
        var news = false, applying: [Later<MeshError?>] = [], introducersChanged = false
        for s in statements.prefix(TrustLedger.perExchange) {
            switch trust.consider(s, trustView) {
            case .known: continue
            case .refused(let why): Log.debug("trust statement from \(peer): \(why)"); continue
            case .accepted(let effects):
                news = true
                for e in effects {
                    if case .introducer = e { introducersChanged = true }
                    applying.append(apply(e))
                }
            }
        }
        if news { trustChanged(introducers: introducersChanged) }
        return applying
    }

    /// This node's own statement: the outcome (a refusal says why, for the command's answer) and
    /// the file changes it started, each ending with its failure if it failed.
    func judge(_ s: TrustStatement) -> (TrustLedger.Outcome, [Later<MeshError?>]) {
        let outcome = trust.consider(s, trustView)
        guard case .accepted(let effects) = outcome else { return (outcome, []) }
        var applying: [Later<MeshError?>] = [], introducersChanged = false
        for e in effects {
            if case .introducer = e { introducersChanged = true }
            applying.append(apply(e))
        }
        trustChanged(introducers: introducersChanged)
        return (outcome, applying)
    }

    /// After accepted statements: the ledger on disk, only current introducers' statements kept,
    /// and the news to every up member.
    func trustChanged(introducers: Bool) {
        if introducers { trust.prune(trustView) }
        background.digestDirty = true
        let statements = trust.statements, dir = self.dir
        disk.write { () throws(MeshError) in try TrustStore.save(statements, dir) }
        shareSlots()
    }

    func signed(_ kind: TrustStatement.Kind, name subject: String, key: [UInt8], grants: [String]? = nil) -> TrustStatement {
        TrustStatement.make(kind, by: name, name: subject, key: key, time: Self.wallMillis(), grants: grants, sign: keyRing.keyPair.sign)
    }

    func apply(_ e: TrustLedger.Effect) -> Later<MeshError?> {
        switch e {
        case .introduce(let s, let grants): return applyIntroduction(s, grants: grants)
        case .grant(let subject, let key, let grants): return applyGrant(subject, key: key, grants: grants)
        case .revoke(let s): return applyRevocation(s)
        case .revokedSelf(let s):
            Log.warn("this node was revoked by \(Self.signerText(s)) at \(Self.rfc3339(ms: s.time)): the other devices no longer trust it")
            publish(Self.revokedEvent(s))
            return Later(nil)
        case .introducer(let subject, let add): return applyIntroducer(subject, add: add)
        case .restore(let r): return applyRestore(r)
        }
    }

    static func revokedEvent(_ s: TrustStatement) -> WatchEvent {
        var e = WatchEvent(event: WatchEvent.memberRevoked, node: s.name, time: Clock.rfc3339())
        e.by = signerText(s)
        return e
    }

    func applyIntroduction(_ s: TrustStatement, grants: [String]?) -> Later<MeshError?> {
        let dir = self.dir
        let later = Later<MeshError?>()
        spawn {
            let written = await disk.written { () throws(MeshError) in
                if try KeyStore.writeIntroduced(s, grants: grants, in: dir) { Log.info("\(s.by) introduced \(s.name): wrote keys/\(s.name).pub") }
            }
            if let written { Log.warn(written.message) }
            reloadKeys()
            later.resolve(written)
        }
        return later
    }

    func applyGrant(_ subject: String, key: [UInt8], grants: [String]?) -> Later<MeshError?> {
        let dir = self.dir
        let later = Later<MeshError?>()
        spawn {
            let written = await disk.written { () throws(MeshError) in
                if try KeyStore.rewriteGrants(name: subject, key: key, grants: grants, in: dir) {
                    Log.info("\(subject) is granted \(grants.map { $0.isEmpty ? "no role" : $0.joined(separator: " ") } ?? "every role") now (keys/\(subject).pub)")
                }
            }
            if let written { Log.warn(written.message) }
            reloadKeys()
            later.resolve(written)
        }
        return later
    }

    /// The revoked device is told first (it learns it was revoked: its `status`, `watch`), then
    /// its key moves and the keys reload ends its channels and tasks.
    func applyRevocation(_ s: TrustStatement) -> Later<MeshError?> {
        let dir = self.dir
        publish(Self.revokedEvent(s))
        let later = Later<MeshError?>()
        spawn {
            // Bounded as a whole (connecting, relays included): the revocation never waits on it for long.
            await atMost(seconds: 2) { await self.tellRevoked(s.name) }
            let failure = await disk.written { () throws(MeshError) in
                guard try KeyStore.moveToRevoked(name: s.name, key: s.key, in: dir) else {
                    throw MeshError(MeshError.other, "keys/\(s.name).pub no longer holds the revoked key; nothing was moved")
                }
                Log.info("\(Self.signerText(s)) revoked \(s.name): moved keys/\(s.name).pub to keys/revoked/")
            }
            if let failure { Log.warn(failure.message) }
            reloadKeys()
            later.resolve(failure)
        }
        return later
    }

    /// Waits for `body`, but `seconds` at most: after that `body` goes on alone (a child of the agent's).
    nonisolated func atMost(seconds: Double, _ body: @escaping @Sendable () async -> Void) async {
        let done = ChangeSignal()
        spawn { await body(); done.bump() }
        await done.wait(after: 0, timeout: .seconds(seconds))
    }

    /// One exchange with a device being revoked, while it is still trusted: it gets the
    /// revocation (bounded in time; a device that is away learns nothing, which is fine).
    func tellRevoked(_ peer: String) async {
        guard !leaving, let address = address(of: peer), !address.isUnspecified else { return }
        let ours = ourSlots()
        do throws(MeshError) {
            let ch = try await channel(to: peer, address: address)
            ch.io.setDeadline(2)
            defer { ch.io.setDeadline(nil); ch.close() }
            try await ch.send(Frame(.request, encoding: TaskRequest.slots(ours.records, schedules: ours.schedules ?? [], trust: ours.trust ?? [])))
            _ = try await ch.receive()
        } catch {
            Log.debug("could not tell \(peer) it was revoked: \(error.message)")
        }
    }

    /// node.toml's `introducers`, edited in place (comments kept) and in the running node at once.
    func applyIntroducer(_ subject: String, add: Bool) -> Later<MeshError?> {
        var next = config.acceptedIntroducers
        if add { if !next.contains(subject) { next.append(subject) } } else { next.removeAll { $0 == subject } }
        config.introducers = next
        let list = next
        Log.info(add ? "\(subject) is an introducer here now (node.toml)" : "\(subject) is no longer an introducer here (node.toml)")
        let file = dir.configFile
        let later = Later<MeshError?>()
        spawn {
            let failure = await disk.written { () throws(MeshError) in try Self.persistIntroducers(list, to: file) }
            if let failure { Log.warn(failure.message) }
            later.resolve(failure)
        }
        return later
    }

    static func persistIntroducers(_ list: [String], to path: URL) throws(MeshError) {
        do {
            let text = try String(contentsOf: path, encoding: .utf8)
            try AtomicFile.replace(path, with: try TOMLSubset.setting("introducers", to: .array(list.map(TOMLValue.string)), in: text))
        } catch let e as MeshError {
            throw e
        } catch {
            throw MeshError(MeshError.config, "cannot update \(path.path): \(error)")
        }
    }

    /// A revocation whose signer was revoked no longer counts: the key comes back where it was moved.
    func applyRestore(_ r: TrustStatement) -> Later<MeshError?> {
        let dir = self.dir
        let later = Later<MeshError?>()
        spawn {
            let failure = await disk.written { () throws(MeshError) in
                if try KeyStore.restoreRevoked(name: r.name, key: r.key, in: dir) {
                    Log.notice("\(r.by) was revoked, so its revocation of \(r.name) no longer counts: moved keys/revoked/\(r.name).pub back to keys/")
                }
            }
            if let failure { Log.warn(failure.message) }
            reloadKeys()
            later.resolve(failure)
        }
        return later
    }
}
