/// Turns successive membership views into `role-moved` events: whoever shows the mesh to a person
/// (the agent's `watch` and log, the simulation's trace) feeds it each view the core reports as
/// changed (`MembershipAction.viewChanged`) and passes the events on.
///
/// Pure: no clock, no core. It compares the light route (`Routing.route(_:heavy: false, …)`) of every
/// role some member holds or backs up with the routes of the last view it saw, and emits one event
/// per role whose route changed, roles in name order. The event's `node` is the new route, or the
/// old one when the role has no route now.
public struct RouteWatcher: Sendable {
    /// The light route of every role that had one in the last view seen.
    public private(set) var routes: [String: String] = [:]
    /// The grants routes are computed with (`Routing.route`'s `grants`), set by the agent whenever `keys/` changes.
    public var grants: GrantTable = [:]

    public init() {}

    /// The `role-moved` events from the last view seen to `view`; remembers `view`'s routes.
    public mutating func observe(_ view: [MemberSnapshot]) -> [MeshEvent] {
        var next: [String: String] = [:]
        for role in Routing.roles(in: view) {
            if let node = Routing.route(role, heavy: false, members: view, grants: grants).node { next[role] = node }
        }
        var events: [MeshEvent] = []
        for role in Set(next.keys).union(routes.keys).sorted() where next[role] != routes[role] {
            let to = next[role], from = routes[role]
            guard let node = to ?? from else { continue }
            events.append(MeshEvent(.roleMoved, node: node, role: role, from: from, to: to))
        }
        routes = next
        return events
    }
}
