/// Statements waiting to be relayed inside outgoing datagrams (piggybacking).
///
/// News (a new member, changed roles, an accusation, a leave) is relayed a few times per
/// node, scaled by log N as in SWIM; a plain "still alive" beat is relayed only `beatLimit`
/// times — enough to route around one lossy link. Each key holds only its newest statement.
/// Two FIFO rings keep `take` proportional to what it returns, even with a thousand members.
struct BroadcastQueue {
    struct Item {
        var entry: SignedEntry
        var origin: String
        var transmits: Int
        var limit: Int
        var urgent: Bool
        var generation: UInt64
    }

    private var items: [String: Item] = [:]
    private var urgentRing = Ring()
    private var plainRing = Ring()
    private var nextGeneration: UInt64 = 0
    /// Urgent items never yet sent: a reason to send before the next heartbeat.
    private(set) var unsentUrgent = 0

    var count: Int { items.count }

    mutating func add(key: String, entry: SignedEntry, origin: String, limit: Int, urgent: Bool) {
        nextGeneration += 1
        if let old = items[key], old.urgent, old.transmits == 0 { unsentUrgent -= 1 }
        items[key] = Item(entry: entry, origin: origin, transmits: 0, limit: max(1, limit),
                          urgent: urgent, generation: nextGeneration)
        if urgent { unsentUrgent += 1; urgentRing.push(key, nextGeneration) }
        else { plainRing.push(key, nextGeneration) }
    }

    /// After a round of sends: urgent items still unsent had no taker; stop counting them as a
    /// reason to send early. They stay queued for later datagrams.
    mutating func settleUnsentUrgent() {
        guard unsentUrgent > 0 else { return }
        for (key, item) in items where item.urgent && item.transmits == 0 {
            items[key]?.urgent = false
        }
        unsentUrgent = 0
    }

    mutating func remove(origin: String) {
        for (key, item) in items where item.origin == origin || key.hasSuffix(":" + origin) {
            if item.urgent, item.transmits == 0 { unsentUrgent -= 1 }
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
            if item.origin == recipient || size > budget {
                skipped.append((key, gen))
                if size > budget { break }
                continue
            }
            out.append(item.entry)
            budget -= size
            if item.urgent, item.transmits == 0 { unsentUrgent -= 1 }
            item.transmits += 1
            if item.transmits >= item.limit {
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
            if head > 1024, head * 2 > storage.count { storage.removeFirst(head); head = 0 }
        }
        return storage[head]
    }
}
