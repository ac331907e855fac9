import RoleMeshCore
import RoleMeshTransport
import XCTest

/// What `AddressFollower` decides, with the route and the device's addresses given: the agent only
/// acts on it (FollowAddresses.swift), so a wrong decision shows here without a network.
final class AddressFollowerTests: XCTestCase {
    let wildcard = WireAddress(host: "0.0.0.0", port: 7946)!
    let home = WireAddress(host: "192.168.1.20", port: 7946)!
    let cafe = WireAddress(host: "10.0.0.7", port: 7946)!
    let peer = WireAddress(host: "192.168.1.30", port: 7946)!

    func testAMoveIsAnnouncedAndProofsGoAndNothingElse() {
        var f = AddressFollower(listen: wildcard, seeds: [])
        XCTAssertEqual(f.look(announced: home, remembered: [peer], route: { _ in self.home }), AddressFollower.Look())
        let moved = f.look(announced: home, remembered: [peer], route: { _ in self.cafe })
        XCTAssertEqual(moved.movedTo, cafe)
        XCTAssertTrue(moved.forgetProofs)
        XCTAssertNil(moved.cutOffChanged)
        XCTAssertEqual(moved.notes.map(\.warning), [false])
    }

    func testNoRouteHoldsDetectionOnceAndItsReturnIsSaidOnce() {
        var f = AddressFollower(listen: wildcard, seeds: [])
        let cut = f.look(announced: home, remembered: [peer], route: { _ in nil })
        XCTAssertEqual(cut.cutOffChanged, true)
        XCTAssertTrue(f.cutOff)
        XCTAssertEqual(cut.notes.map(\.warning), [true])
        XCTAssertEqual(f.look(announced: home, remembered: [peer], route: { _ in nil }), AddressFollower.Look(), "said once")
        let back = f.look(announced: home, remembered: [peer], route: { _ in self.home })
        XCTAssertEqual(back.cutOffChanged, false)
        XCTAssertFalse(f.cutOff)
        XCTAssertNil(back.movedTo)
    }

    func testAloneIsNeverCutOff() {
        var f = AddressFollower(listen: wildcard, seeds: [])
        XCTAssertEqual(f.look(announced: home, remembered: [], route: { _ in nil }), AddressFollower.Look())
        XCTAssertFalse(f.cutOff)
    }

    func testAFixedAddressThatGoesAndComesBackForgetsProofsOnItsReturn() {
        var f = AddressFollower(listen: home, seeds: [peer])
        XCTAssertEqual(f.look(announced: home, remembered: [], isLocal: { _ in false }).cutOffChanged, true)
        let back = f.look(announced: home, remembered: [], isLocal: { _ in true })
        XCTAssertEqual(back.cutOffChanged, false)
        XCTAssertTrue(back.forgetProofs)
        XCTAssertNil(back.movedTo, "a fixed address is never announced anew")
    }

    func testMovesAreMembersReachedElsewhereThanAtTheLastView() {
        var f = AddressFollower(listen: wildcard, seeds: [])
        XCTAssertTrue(f.moves(["a": home, "b": peer]).isEmpty, "the first view moves nobody")
        let m = f.moves(["a": cafe, "b": peer, "c": home])
        XCTAssertEqual(m.map(\.name), ["a"])
        XCTAssertEqual(m.first?.from, home)
        XCTAssertEqual(m.first?.to, cafe)
    }
}
