import XCTest
import RoleMeshCore

/// `role-moved` from successive views: the events `watch` prints and the simulation records.
final class RouteWatcherTests: XCTestCase {
    func m(_ name: String, _ state: MemberState = .alive, roles: [String] = [], backup: [String: Int] = [:],
           load: Double = 0.2) -> MemberSnapshot {
        MemberSnapshot(name: name, address: WireAddress(ip: [127, 0, 0, 1], port: 1), state: state, incarnation: 1,
                       roles: roles, backup: backup, draining: false,
                       signals: Signals(load: load, cpus: 4, memFree: 0.5, onBattery: false, throttled: false),
                       lastHeardMs: 0, isSelf: false)
    }

    func moved(_ role: String, by node: String, from: String?, to: String?) -> MeshEvent {
        MeshEvent(.roleMoved, node: node, role: role, from: from, to: to)
    }

    func testARoleAppearingMovingAndDisappearing() {
        var w = RouteWatcher()
        XCTAssertEqual(w.observe([m("a"), m("b")]), [], "no roles, nothing to say")
        XCTAssertEqual(w.observe([m("a", roles: ["x"]), m("b", backup: ["x": 1])]), [moved("x", by: "a", from: nil, to: "a")])
        XCTAssertEqual(w.observe([m("a", .dead, roles: ["x"]), m("b", backup: ["x": 1])]), [moved("x", by: "b", from: "a", to: "b")],
                       "fails over to the backup")
        XCTAssertEqual(w.observe([m("a", .dead, roles: ["x"]), m("b", .suspect, backup: ["x": 1])]), [],
                       "a suspicion of the new holder moves nothing")
        XCTAssertEqual(w.observe([m("a", .dead, roles: ["x"]), m("b", .dead, backup: ["x": 1])]), [moved("x", by: "b", from: "b", to: nil)],
                       "no route now: attributed to the node it left")
        XCTAssertEqual(w.routes, [:])
        XCTAssertEqual(w.observe([m("a", roles: ["x"]), m("b", backup: ["x": 1])]), [moved("x", by: "a", from: nil, to: "a")])
        XCTAssertEqual(w.observe([m("a"), m("b")]), [moved("x", by: "a", from: "a", to: nil)], "nobody holds it any more")
    }

    func testNothingChangedMeansNoEvent() {
        var w = RouteWatcher()
        let view = [m("a", roles: ["x", "y"]), m("b", roles: ["x"], load: 0.9)]
        XCTAssertEqual(w.observe(view).count, 2)
        XCTAssertEqual(w.observe(view), [])
        // A change routing does not act on (the loser's load) says nothing either.
        XCTAssertEqual(w.observe([view[0], m("b", roles: ["x"], load: 0.5)]), [])
        XCTAssertEqual(w.observe(Array(view.reversed())), [], "the order of the view does not matter")
    }

    func testEventsComeInRoleOrderAndOnlyForLightRoutes() {
        var w = RouteWatcher()
        let events = w.observe([m("n", roles: ["zeta", "alpha", "mid"])])
        XCTAssertEqual(events.map { $0.role ?? "" }, ["alpha", "mid", "zeta"])
        XCTAssertEqual(w.routes, ["alpha": "n", "mid": "n", "zeta": "n"])
        // On battery and throttled: heavy work would move, light work does not.
        var unfit = m("n", roles: ["zeta", "alpha", "mid"])
        unfit.signals.onBattery = true
        unfit.signals.throttled = true
        XCTAssertEqual(w.observe([unfit, m("b", backup: ["alpha": 1])]), [])
    }
}
