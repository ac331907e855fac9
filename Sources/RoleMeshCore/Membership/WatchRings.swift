/// Who watches whom (protocol.md 7.1): the members that are `alive` (and this node) are laid out on
/// K rings, each ordered by a different hash of their names; a node's watchers are its successors,
/// one per ring (the next one not chosen yet when rings agree). A node sends its heartbeat only to
/// its watchers, so steady-state traffic is K datagrams per beat whatever N is, and every node is
/// watched by about K others chosen at random — Rapid's K-ring monitoring (Suresh et al., ATC 2018).
///
/// Every node computes the same rings from the same view, with no coordination; where views differ
/// for a moment (a member just joined or is suspected by some), a watcher that hears nothing says so
/// and the watched node starts beating to it too (`Membership.extraWatchers`).
public struct WatchRings: Sendable {
    public let k: Int
    /// Per ring: (hash, name) sorted, over the nodes that watch (alive members and this node).
    private let rings: [[(UInt64, String)]]

    /// `keys(name)` gives a name's K ring hashes (cached by the caller: names do not change).
    public init(names: [String], k: Int, keys: (String) -> [UInt64]) {
        self.k = max(1, k)
        var rings = Array(repeating: [(UInt64, String)](), count: self.k)
        for name in names {
            let h = keys(name)
            for i in 0..<self.k { rings[i].append((h[i], name)) }
        }
        self.rings = rings.map { $0.sorted { $0 < $1 } }
    }

    public var count: Int { rings.first?.count ?? 0 }

    /// The members `me` watches. Walking past an already chosen node skips at most K − 1 nodes, so
    /// only the K + 1 ring predecessors of `me` on each ring (and members off the rings, `offRing`)
    /// can have it as a watcher; each candidate is checked exactly. O(K² log N), not O(N).
    public func subjects(of me: String, offRing: [String], keys: (String) -> [UInt64]) -> [String] {
        var candidates = Set(offRing)
        let mine = keys(me)
        for (i, ring) in rings.enumerated() where ring.count > 1 {
            let p = position(after: (mine[i], me), in: ring) - 1   // me itself, when on the ring
            for back in 1...min(ring.count - 1, k + 1) {
                candidates.insert(ring[((p - back) % ring.count + ring.count) % ring.count].1)
            }
        }
        candidates.remove(me)
        return candidates.filter { watchers(of: $0, keys: keys).contains(me) }.sorted()
    }

    /// Up to K distinct watchers of `name` (which need not be on the rings itself: a suspect member
    /// keeps its watchers), never `name`.
    public func watchers(of name: String, keys: (String) -> [UInt64]) -> [String] {
        var out: [String] = []
        out.reserveCapacity(k)
        let h = keys(name)
        for (i, ring) in rings.enumerated() where !ring.isEmpty {
            let start = position(after: (h[i], name), in: ring)
            for step in 0..<ring.count {
                let candidate = ring[(start + step) % ring.count].1
                if candidate != name, !out.contains(candidate) { out.append(candidate); break }
            }
        }
        return out
    }

    /// Index of the first entry after `key` (binary search).
    private func position(after key: (UInt64, String), in ring: [(UInt64, String)]) -> Int {
        var lo = 0, hi = ring.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ring[mid] <= key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// A stable 64-bit hash of (ring index, name): FNV-1a over the bytes, then SplitMix64's finaliser
    /// so that names differing in one letter land far apart. The same on every node and platform.
    public static func keys(_ name: String, k: Int) -> [UInt64] { (0..<max(1, k)).map { hash(ring: $0, name) } }

    public static func hash(ring: Int, _ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        h = (h ^ UInt64(UInt8(truncatingIfNeeded: ring))) &* 0x0000_0100_0000_01b3
        for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        h = (h ^ (h >> 30)) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ (h >> 27)) &* 0x94d0_49bb_1331_11eb
        return h ^ (h >> 31)
    }
}

/// Ring hashes and built rings, kept for reuse. Each `Membership` has its own by default; the
/// simulator gives all its nodes one, since N nodes that agree on who is alive build the same rings
/// and would otherwise hold N copies of them and of every name's hashes (N² entries at N = 10,000).
/// Not thread-safe: one owner, or one thread for all its owners (the simulator).
public final class RingCache {
    private var keyTable: [String: [UInt64]] = [:]
    /// The last few rings built, newest first: views that differ for a moment (a member suspected by
    /// some) alternate between a few sets.
    private var recent: [(k: Int, names: [String], rings: WatchRings)] = []
    static let recentLimit = 4

    public init() {}

    /// `name`'s K ring hashes, computed once per name.
    public func keys(_ name: String, k: Int) -> [UInt64] {
        if let h = keyTable[name], h.count == max(1, k) { return h }
        if keyTable.count > 100_000 { keyTable.removeAll() }
        let h = WatchRings.keys(name, k: k)
        keyTable[name] = h
        return h
    }

    /// The rings over `names`, and the names as kept here (so the caller holds the same storage).
    public func rings(over names: [String], k: Int) -> (names: [String], rings: WatchRings) {
        if let i = recent.firstIndex(where: { $0.k == k && $0.names == names }) {
            let hit = recent.remove(at: i)
            recent.insert(hit, at: 0)
            return (hit.names, hit.rings)
        }
        let built = WatchRings(names: names, k: k, keys: { self.keys($0, k: k) })
        recent.insert((k, names, built), at: 0)
        if recent.count > Self.recentLimit { recent.removeLast() }
        return (names, built)
    }
}
