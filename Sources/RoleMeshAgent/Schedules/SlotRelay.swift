#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshControl
import RoleMeshCore

/// Slot records travel outside the membership core: over the task channel (authenticated and
/// encrypted), as a `slots` request that carries this node's records and is answered with the
/// peer's (protocol.md, "Slot records"). Exchanged with every up member when a run starts or
/// ends, with a member when it comes alive (a restart, a healed partition), and with one member
/// at random every 10 s. Trust statements (introductions, revocations) ride on the same exchange
/// and spread the same way (Trust/TrustRelay.swift).
extension Agent {
    /// Takes a peer's records and its schedules (the latest list from each peer replaces the last);
    /// returns ours.
    func mergeSlots(_ theirs: SlotsPayload, from peer: String) -> SlotsPayload {
        var changed = false
        for r in theirs.records.prefix(SlotLedger.capacity) where background.ledger.merge(r) { changed = true }
        if changed { saveLedger() }
        if let defs = theirs.schedules { background.remote[peer] = defs.prefix(256).compactMap(\.schedule) }
        if let statements = theirs.trust { considerTrust(statements, from: peer) }
        return ourSlots()
    }

    func ourSlots() -> SlotsPayload {
        SlotsPayload(records: Array(background.ledger.runs.values), schedules: background.schedules.map(ScheduleDefinition.init),
                     trust: trust.statements)
    }

    func upPeers() -> [String] {
        core.snapshot(now: Clock.now()).filter { !$0.isSelf && ($0.state == .alive || $0.state == .suspect) }.map(\.name)
    }

    func shareSlots() { for peer in upPeers() { exchangeSlots(with: peer) } }

    func exchangeSlotsWithSomeone() {
        if let peer = upPeers().randomElement() { exchangeSlots(with: peer) }
    }

    func exchangeSlots(with peer: String) {
        guard !leaving, let address = address(of: peer), !address.isUnspecified else { return }
        // One exchange per peer at a time; news that comes meanwhile goes in another right after.
        guard background.exchanging.insert(peer).inserted else { background.again.insert(peer); return }
        let ours = ourSlots()
        Task {
            var theirs = SlotsPayload(records: [])
            do {
                let ch = try await channel(to: peer, address: address)
                // A peer that stops answering does not hold the exchange open.
                let limit = Task { try? await Task.sleep(for: .seconds(5)); ch.abort() }
                try await ch.send(Frame(.request, encoding: TaskRequest.slots(ours.records, schedules: ours.schedules ?? [], trust: ours.trust ?? [])))
                if let f = try await ch.receive(), f.type == .slots, let p = f.decode(SlotsPayload.self) { theirs = p }
                limit.cancel()
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
        let records = Array(background.ledger.runs.values), dir = self.dir
        disk.write { () throws(MeshError) in try SlotStore.save(records, dir) }
    }
}

/// `state/slots.json`: `{"records": [...]}`.
enum SlotStore {
    static let file = StateJSON<SlotsPayload>(name: "slots.json")

    static func load(_ dir: NodeDirectory) -> [SlotRun] { file.load(dir)?.records ?? [] }

    static func save(_ records: [SlotRun], _ dir: NodeDirectory) throws(MeshError) {
        let sorted = records.sorted { ($0.slot, $0.id) < ($1.slot, $1.id) }
        try file.save(SlotsPayload(records: sorted), dir)
    }
}
