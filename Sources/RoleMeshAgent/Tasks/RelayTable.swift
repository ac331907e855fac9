import RoleMeshPlatform

/// Who this node reaches through another member, and the channels it carries for others now.
/// Owned by the agent; the agent's `channel(to:)` and `carry` consult and update it.
///
/// A member is marked reached `via` a relay only once its direct path failed (or the gossip hears
/// it only through another member); it is tried directly again `retryDirect` after the failure,
/// and `status` shows `"reach": "via NODE"` meanwhile.
struct RelayTable {
    static let retryDirect: TimeInterval = 30
    /// Relayed channels this node carries at once for others, at most.
    static let carryLimit = 32

    /// By member: the relay, and when the direct path last failed. Absent: direct.
    private var reach: [String: (via: String, failed: Date)] = [:]
    /// Channels carried now, by id: their two ends and connections, so that revoking either end cuts them.
    private var carried: [Int: (from: String, to: String, ends: [AsyncFD])] = [:]
    private var nextCarryID = 0

    /// The relay the task plane uses for `node`, if any.
    func relay(for node: String) -> String? { reach[node]?.via }

    /// Members whose direct path failed lately: no relay through them.
    var unreachable: Set<String> { Set(reach.keys) }

    /// Whether the direct path to `node` failed within `retryDirect`.
    func failedLately(_ node: String, now: Date = Date()) -> Bool {
        reach[node].map { now.timeIntervalSince($0.failed) < Self.retryDirect } ?? false
    }

    /// Members whose direct path is due for another try; each is tried once per period, however
    /// long the try takes.
    mutating func dueForDirectTry(now: Date = Date()) -> [String] {
        let due = reach.filter { now.timeIntervalSince($0.value.failed) >= Self.retryDirect }.keys.sorted()
        for node in due { reach[node]?.failed = now }
        return due
    }

    /// `node` answered directly: the relay it was reached through, if it had one.
    @discardableResult
    mutating func reachedDirectly(_ node: String) -> String? { reach.removeValue(forKey: node)?.via }

    /// `node` is reached through `relay`; `directFailedNow`: its direct path failed just now.
    mutating func reached(_ node: String, through relay: String, directFailedNow: Bool, now: Date = Date()) {
        reach[node] = (relay, directFailedNow ? now : reach[node]?.failed ?? now)
    }

    /// Starts carrying a channel from `from` to `to`; nil at `carryLimit`.
    mutating func startCarrying(from: String, to: String, _ io: AsyncFD) -> Int? {
        guard carried.count < Self.carryLimit else { return nil }
        let id = nextCarryID
        nextCarryID += 1
        carried[id] = (from, to, [io])
        return id
    }

    mutating func addEnd(_ io: AsyncFD, to id: Int) { carried[id]?.ends.append(io) }

    mutating func stopCarrying(_ id: Int) { carried[id] = nil }

    /// The connections of every carried channel with an end among `names` (revoked).
    func ends(touching names: Set<String>) -> [AsyncFD] {
        carried.values.filter { names.contains($0.from) || names.contains($0.to) }.flatMap(\.ends)
    }
}
