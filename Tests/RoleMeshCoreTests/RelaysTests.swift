import XCTest
import RoleMeshCore

/// Which members may carry a channel to a member this node cannot reach directly.
final class RelaysTests: XCTestCase {
    func member(_ name: String, _ state: MemberState = .alive, isSelf: Bool = false) -> MemberSnapshot {
        MemberSnapshot(name: name, address: WireAddress(host: "127.0.0.1", port: 1)!, state: state, incarnation: 1, roles: [],
                       backup: [:], draining: false, signals: Signals(), lastHeardMs: 0, isSelf: isSelf)
    }

    func testTheTargetsWatchersComeFirstThenOtherUpMembers() {
        let names = (1...12).map { "n\($0)" }
        let members = [member("me", isSelf: true)] + names.map { member($0) }
        let k = 2
        let got = Relays.candidates(for: "n5", members: members, watchers: k, unreachable: [])
        let alive = ["me"] + names
        let rings = WatchRings(names: alive, k: k, keys: { WatchRings.keys($0, k: k) })
        let watchers = rings.watchers(of: "n5", keys: { WatchRings.keys($0, k: k) }).filter { $0 != "me" }
        XCTAssertEqual(Array(got.prefix(watchers.count)), watchers, "the gossip's watchers of the target first")
        XCTAssertEqual(Set(got), Set(names).subtracting(["n5"]), "then every other up member, once")
        XCTAssertFalse(got.contains("me"))
        XCTAssertEqual(got, Relays.candidates(for: "n5", members: members.reversed(), watchers: k, unreachable: []), "order-independent")
    }

    func testDownOrUnreachableMembersNeverRelay() {
        let members = [member("me", isSelf: true), member("pi"), member("server"), member("old", .dead),
                       member("gone", .left), member("shaky", .suspect), member("away")]
        let got = Relays.candidates(for: "pi", members: members, watchers: 2, unreachable: ["away"])
        XCTAssertEqual(Set(got), ["server", "shaky"])
        XCTAssertEqual(Relays.candidates(for: "pi", members: [member("me", isSelf: true), member("pi")], watchers: 2, unreachable: []), [])
    }
}
