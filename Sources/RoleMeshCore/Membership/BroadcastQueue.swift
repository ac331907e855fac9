/// Statements waiting to be relayed inside outgoing datagrams (piggybacking).
///
/// Each piece of news goes to `limit` distinct recipients from this node, never twice to one:
/// plain news (signals) to our K watchers, which floods it along the watch rings (every node
/// forwards it once to each of its watchers; the rings are cycles through every member, so it
/// reaches all); urgent news also to random members, SWIM's λ·log N (protocol.md 7.3). Each key
/// holds only its newest statement.
/// Two FIFO rings keep `take` proportional to what it returns, even with a thousand members.
struct BroadcastQueue {
    struct Item {
        var entry: SignedEntry
        var origin: String
        var transmits: Int
        var limit: Int
        /// Who already got it from us (at most `limit` names).
        var sentTo: [String] = []
        /// Times it was passed over because the recipient already had it: once our watchers all
        /// have it and nobody else asks, it is done.
        var passes = 0
        var urgent: Bool
        var generation: UInt64
    }

    private var items: [String: Item] = [:]
    private var urgentRing = Ring()
    private var plainRing = Ring()
    private var nextGeneration: UInt64 = 0
    /// Urgent items still queued: a reason to push before the next heartbeat.
    private(set) var pendingUrgent = 0
    static let maxPasses = 4

    var count: Int { items.count }

    mutating func add(key: String, entry: SignedEntry, origin: String, limit: Int, urgent: Bool) {
        nextGeneration += 1
        if let old = items[key], old.urgent { pendingUrgent -= 1 }
        items[key] = Item(entry: entry, origin: origin, transmits: 0, limit: max(1, limit),
                          urgent: urgent, generation: nextGeneration)
        if urgent { pendingUrgent += 1; urgentRing.push(key, nextGeneration) }
        else { plainRing.push(key, nextGeneration) }
    }

    /// After a push that sent nothing (no target could take any urgent item: about the only member
    /// we reach, say): stop counting them as a reason to push on every tick; they stay queued for
    /// beats. A push that was only short of room keeps them urgent for the next tick.
    mutating func settlePendingUrgent(sentAny: Bool) {
        guard pendingUrgent > 0, !sentAny else { return }
        for (key, item) in items where item.urgent { items[key]?.urgent = false }
        pendingUrgent = 0
    }

    /// The accusations about `target` still queued (any accuser, any kind), oldest key first.
    func accusations(about target: String) -> [SignedEntry] {
        items.filter { $0.key.hasPrefix("a:") && $0.key.hasSuffix(":" + target) }
            .sorted { $0.key < $1.key }.map(\.value.entry)
    }

    mutating func remove(origin: String) {
        for (key, item) in items where item.origin == origin || key.hasSuffix(":" + origin) {
            if item.urgent { pendingUrgent -= 1 }
            items[key] = nil
        }
    }

    /// Up to `budget` bytes of statements for a datagram to `recipient`, urgent ones first.
    /// Statements by the recipient itself are not sent back to it.
    mutating func take(budget: Int, recipient: String?) -> [SignedEntry] {
        var out: [SignedEntry] = []
        var left = budget
        // The rings are moved out while `take(from:)` mutates `items` (exclusive access).
        var urgent = urgentRing, plain = plainRing
        urgentRing = Ring(); plainRing = Ring()
        take(from: &urgent, into: &out, budget: &left, recipient: recipient)
        take(from: &plain, into: &out, budget: &left, recipient: recipient)
        urgentRing = urgent; plainRing = plain
        return out
    }

    private mutating func take(from ring: inout Ring, into out: inout [SignedEntry], budget: inout Int, recipient: String?) {
        var skipped: [(String, UInt64)] = []
        var scanned = 0
        let scanLimit = ring.count
        while scanned < scanLimit, budget > 0, let (key, gen) = ring.pop() {
            scanned += 1
            guard var item = items[key], item.generation == gen else { continue }   // superseded
            let size = item.entry.encodedSize
            if let recipient, item.sentTo.contains(recipient) {
                item.passes += 1
                if item.passes >= Self.maxPasses {
                    if item.urgent { pendingUrgent -= 1 }
                    items[key] = nil
                } else {
                    items[key] = item
                    skipped.append((key, gen))
                }
                continue
            }
            if item.origin == recipient || size > budget {
                skipped.append((key, gen))
                if size > budget { break }
                continue
            }
            out.append(item.entry)
            budget -= size
            item.transmits += 1
            if let recipient { item.sentTo.append(recipient) }
            if item.transmits >= item.limit {
                if item.urgent { pendingUrgent -= 1 }
                items[key] = nil
            } else {
                items[key] = item
                ring.push(key, gen)
            }
        }
        // Skipped items go to the back: order among them matters little, and it keeps push O(1).
        for s in skipped { ring.push(s.0, s.1) }
    }
}

/// A FIFO of (key, generation) with amortised O(1) push and pop.
private struct Ring {
    private var storage: [(String, UInt64)] = []
    private var head = 0
    var count: Int { storage.count - head }

    mutating func push(_ key: String, _ gen: UInt64) { storage.append((key, gen)) }
    mutating func pop() -> (String, UInt64)? {
        guard head < storage.count else { return nil }
        defer {
            head += 1
            // Popped slots are given back once they are half the storage (and all of it when the
            // ring empties): every node keeps two of these, and at 10,000 nodes idle capacity adds up.
            if head == storage.count { storage = []; head = 0 }
            else if head > 32, head * 2 > storage.count { storage = Array(storage[head...]); head = 0 }
        }
        return storage[head]
    }
}
