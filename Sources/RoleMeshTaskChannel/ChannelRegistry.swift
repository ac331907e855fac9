import RoleMeshPlatform

/// Every authenticated task connection open now, by the peer it belongs to: the one place that
/// caps how many one peer holds, and that closes them all when the peer's key is revoked (idle
/// ones included: issue 24 found 5 of 5 still open a minute after a revocation). Holds the
/// connections weakly: one that ended and was let go leaves by itself. Thread-safe.
public final class ChannelRegistry: Sendable {
    private final class Entry: Sendable {
        weak let io: AsyncFD?
        init(_ io: AsyncFD) { self.io = io }
        var live: Bool { io.map { !$0.isClosed } ?? false }
    }
    private let open = Locked<[String: [Entry]]>([:])
    /// Connections one peer may hold here at once (served ones; those this node opened are not capped).
    public let perPeer: Int

    public init(perPeer: Int) { self.perPeer = perPeer }

    /// Counts `io` as one of `peer`'s; false (not counted) when `capped` and the peer holds `perPeer` already.
    @discardableResult
    public func enter(_ peer: String, _ io: AsyncFD, capped: Bool) -> Bool {
        open.withLock { all in
            var mine = all[peer, default: []].filter(\.live)
            if capped, mine.count >= perPeer { all[peer] = mine; return false }
            mine.append(Entry(io))
            all[peer] = mine
            return true
        }
    }

    public func count(_ peer: String) -> Int { open.withLock { $0[peer]?.filter(\.live).count ?? 0 } }

    /// Ends every connection of `peer`: what is buffered still goes (an `error` frame sent just
    /// before), readers see the end at once.
    public func close(_ peer: String) {
        let ios = open.withLock { $0.removeValue(forKey: peer) ?? [] }.compactMap(\.io)
        for io in ios { io.close() }
    }

    /// Ends every connection (the agent has left).
    public func closeAll() {
        let ios = open.withLock { all in defer { all = [:] }; return all.values.flatMap { $0 } }.compactMap(\.io)
        for io in ios { io.close() }
    }
}
