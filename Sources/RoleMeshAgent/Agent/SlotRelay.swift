import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// Slot records travel outside the membership core: over the task channel (authenticated and
/// encrypted), as a `slots` request that carries this node's records and is answered with the
/// peer's (protocol.md, "Slot records"). Exchanged with every up member when a run starts or
/// ends, with a member when it comes alive (a restart, a healed partition), and with a member this
/// node watches whose digest differs from its own: every node's heartbeat carries a digest of what
/// it holds (`Heartbeat.digest`), so an idle mesh, where nothing differs, opens no channel at all.
/// Trust statements (introductions, revocations) ride on the same exchange and spread the same way
/// (Trust/TrustRelay.swift).
extension Agent {
    /// Takes a peer's records and its schedules (the latest list from each peer replaces the last);
    /// returns ours.
    func mergeSlots(_ theirs: SlotsPayload, from peer: String) -> SlotsPayload {
        var changed = false, forged = 0
        let keys = keyRing.trusted
        for r in theirs.records.prefix(SlotLedger.capacity) {
            // About the sender's own run, or signed by the node that ran it; a record of a node not
            // trusted here (revoked since) is simply not taken.
            guard keys[r.node] != nil else { continue }
            guard r.counts(from: peer, keys: keys) else { forged += 1; continue }
            if background.ledger.merge(r) { changed = true }
        }
        if forged > 0 {
            background.forgedRecords += forged
            Log.notice("dropped \(forged) slot records from \(peer) that are neither about its own runs nor signed by the node that ran them")
        }
        if changed { saveLedger() }
        if let defs = theirs.schedules { background.remote[peer] = defs.prefix(256).compactMap(\.schedule) }
        if let statements = theirs.trust { considerTrust(statements, from: peer) }
        return ourSlots()
    }

    /// What we pass on: our own records and those signed by the node that ran them (a record kept
    /// here about a run we sent elsewhere, unsigned, stays here), and the trust statements we hold.
    func ourSlots() -> SlotsPayload {
        let keys = keyRing.trusted
        let records = background.ledger.runs.values.filter { keys[$0.node] != nil && ($0.node == name || $0.signature != nil) }
        return SlotsPayload(records: Array(records), schedules: background.schedules.map(ScheduleDefinition.init), trust: trust.statements)
    }

    /// A record of a run on this node, signed by this node.
    func signedOwn(_ r: SlotRun) -> SlotRun { r.node == name ? r.signed(keyRing.keyPair.sign) : r }

    /// A scheduled run this node's executor started or ended (for `schedules run` from another
    /// node too): its record, signed here, so every node may believe it.
    func noteSlotRunHere(role: String, task: String, slot: Int64?, runID: String?, id: String, exitCode: Int?) {
        guard let slot, let runID else { return }
        var r = background.ledger.runs[id]
            ?? SlotRun(role: role, task: task, slot: slot, id: id, runID: runID, node: name, state: .running, started: wallNow)
        guard r.node == name else { return }
        if let exitCode {
            background.active.remove(id)
            guard !r.state.completed else { return }
            r.state = exitCode == 0 ? .done : .failed
            r.exitCode = exitCode
            r.finished = wallNow
        } else {
            background.active.insert(id)
            guard background.ledger.runs[id] == nil else { return }     // this node fired it: recorded already
        }
        background.ledger.merge(signedOwn(r))
        saveLedger()
        shareSlots()
    }

    func upPeers() -> [String] {
        core.snapshot(now: Clock.now()).filter { !$0.isSelf && ($0.state == .alive || $0.state == .suspect) }.map(\.name)
    }

    func shareSlots() { for peer in upPeers() { exchangeSlots(with: peer) } }

    /// The digest of what this node would send in an exchange: its records, schedules and trust
    /// statements, each in a canonical form, sorted (BLAKE2b-64). Recomputed only after a change.
    func slotsDigest() -> [UInt8] {
        let p = ourSlots()
        var items = p.records.map { "r" + ControlJSON.string($0) }
        items += (p.schedules ?? []).map { "s" + ControlJSON.string($0) }
        items += (p.trust ?? []).map { "t" + ControlJSON.string($0) }
        return BLAKE2b.hash(Array(items.sorted().joined(separator: "\n").utf8), size: 16).prefix(Heartbeat.digestSize).map { $0 }
    }

    /// Every 2 s: our digest into our heartbeat if what we hold changed, then an exchange with a
    /// member we watch whose digest differs from ours (once per pair of digests: two nodes whose
    /// holdings differ for good, their schedules say, exchange once per change, not forever).
    func exchangeWhereDigestsDiffer() {
        if background.digestDirty {
            background.digestDirty = false
            let d = slotsDigest()
            if d != core.me.digest { perform(node.updateSelf(now: Clock.now()) { $0.digest = d }) }
        }
        guard let mine = core.me.digest else { return }
        for (peer, theirs) in core.watchedDigests() where theirs != mine {
            if let last = background.exchangedAt[peer], last.ours == mine, last.theirs == theirs { continue }
            background.exchangedAt[peer] = (mine, theirs)
            exchangeSlots(with: peer)
        }
    }

    func exchangeSlots(with peer: String) {
        guard !leaving, let address = address(of: peer), !address.isUnspecified else { return }
        // One exchange per peer at a time; news that comes meanwhile goes in another right after.
        guard background.exchanging.insert(peer).inserted else { background.again.insert(peer); return }
        let ours = ourSlots()
        spawn {
            var theirs = SlotsPayload(records: [])
            do {
                let ch = try await channel(to: peer, address: address)
                // A peer that stops answering does not hold the exchange open.
                ch.io.setDeadline(5)
                try await ch.send(Frame(.request, encoding: TaskRequest.slots(ours.records, schedules: ours.schedules ?? [], trust: ours.trust ?? [])))
                if let f = try await ch.receive(), f.type == .slots, let p = f.decode(SlotsPayload.self) { theirs = p }
                ch.io.setDeadline(nil)
                ch.close()
            } catch {
                Log.debug("slot records: no exchange with \(peer): \((error as? MeshError)?.message ?? "\(error)")")
            }
            background.exchanging.remove(peer)
            _ = mergeSlots(theirs, from: peer)
            if background.again.remove(peer) != nil { exchangeSlots(with: peer) }
        }
    }

    func saveLedger() {
        background.digestDirty = true
        let records = Array(background.ledger.runs.values), dir = self.dir
        disk.write { () throws(MeshError) in try SlotStore.save(records, dir) }
    }
}

/// `state/slots.json`: `{"records": [...]}`.
enum SlotStore {
    static let file = StateJSON<SlotsPayload>(name: "slots.json")

    static func load(_ dir: NodeDirectory) -> [SlotRun] { file.load(dir)?.records ?? [] }

    /// The records worth keeping from `state/slots.json`: another node's only with its signature
    /// (a file written before records were signed may hold forgeries that arrived then), and
    /// ours only for a task this node's journal has (ours are signed again by the caller).
    static func cleaned(_ records: [SlotRun], me: String, keys: [String: [UInt8]], ranHere: (String) -> Bool) -> [SlotRun] {
        records.filter { r in
            if r.node == me { return ranHere(r.id) }
            guard let key = keys[r.node] else { return false }
            return r.isSigned(by: key)
        }
    }

    static func save(_ records: [SlotRun], _ dir: NodeDirectory) throws(MeshError) {
        let sorted = records.sorted { ($0.slot, $0.id) < ($1.slot, $1.id) }
        try file.save(SlotsPayload(records: sorted), dir)
    }
}
