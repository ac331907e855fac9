import XCTest
import RoleMeshCore

/// The rings decide who sends heartbeats to whom: every node must be watched, by K distinct others,
/// and the cheap subject lookup must agree with the definition.
final class WatchRingsTests: XCTestCase {
    func rings(_ names: [String], k: Int = 2) -> WatchRings {
        WatchRings(names: names, k: k, keys: { WatchRings.keys($0, k: k) })
    }

    func testEveryNodeHasKDistinctWatchersAndTheLookupMatchesTheDefinition() {
        for n in [2, 3, 4, 10, 61] {
            let names = (0..<n).map { "node-\($0)" }
            let r = rings(names)
            var watchedBy: [String: [String]] = [:]
            for x in names {
                let w = r.watchers(of: x, keys: { WatchRings.keys($0, k: 2) })
                XCTAssertEqual(w.count, min(2, n - 1), "\(x) in a mesh of \(n)")
                XCTAssertFalse(w.contains(x))
                XCTAssertEqual(Set(w).count, w.count)
                for watcher in w { watchedBy[watcher, default: []].append(x) }
            }
            for me in names {
                let fast = r.subjects(of: me, offRing: [], keys: { WatchRings.keys($0, k: 2) })
                XCTAssertEqual(fast, (watchedBy[me] ?? []).sorted(), "subjects of \(me) in a mesh of \(n)")
            }
        }
    }

    func testAMemberOffTheRingsKeepsWatchersAndIsFoundAsASubject() {
        let names = (0..<10).map { "n\($0)" }
        let r = rings(names)
        let w = r.watchers(of: "suspect-node", keys: { WatchRings.keys($0, k: 2) })
        XCTAssertEqual(w.count, 2)
        for me in w {
            XCTAssertTrue(r.subjects(of: me, offRing: ["suspect-node"], keys: { WatchRings.keys($0, k: 2) }).contains("suspect-node"))
        }
    }

    func testOrderOfNamesDoesNotMatterAndTheHashIsFixed() {
        let names = (0..<20).map { "n\($0)" }
        let a = rings(names), b = rings(names.shuffled())
        for x in names {
            XCTAssertEqual(a.watchers(of: x, keys: { WatchRings.keys($0, k: 2) }), b.watchers(of: x, keys: { WatchRings.keys($0, k: 2) }))
        }
        // Pinned: a change of the hash would split a mesh of mixed versions (protocol.md 7.1).
        // (Computed independently: FNV-1a-64 over [ring] + name, then SplitMix64's finaliser.)
        XCTAssertEqual(WatchRings.hash(ring: 0, "desk"), 0x9994_13c4_9465_e26d)
        XCTAssertEqual(WatchRings.hash(ring: 1, "desk"), 0x6b16_40ee_2780_314d)
    }

    /// Following each node's watchers from any node reaches every node: news forwarded once along
    /// the rings is a complete flood.
    func testTheWatchGraphReachesEveryone() {
        let names = (0..<50).map { "m\($0)" }
        let r = rings(names)
        var seen: Set<String> = ["m0"], frontier = ["m0"]
        while let x = frontier.popLast() {
            for w in r.watchers(of: x, keys: { WatchRings.keys($0, k: 2) }) where seen.insert(w).inserted { frontier.append(w) }
        }
        XCTAssertEqual(seen.count, names.count)
    }
}
