/// Which of its declared services a node offers now (checks, gossips and, with `run`, runs):
/// a pure function of its `service.toml` files and the membership view, like routing.
///
/// - Only for a role the node holds or backs up, and was granted ("Who may change trust"): a
///   stolen laptop announcing a role attracts no connection.
/// - `where = "holders"`: every holder; a backup while it is the role's route, or while no holder
///   serves the service healthy (so connections fail over to it, and come back when one does), and
///   always when the agent does not run it (no `run`: it is there anyway, and checking it costs
///   nothing), so a client that cannot reach the holder goes to it at once (routing still puts
///   every healthy holder first).
/// - `where = "route"`: only the node that is the role's route (one instance in the mesh).
public enum ServiceOffering {
    public static func offered(_ defs: [ServiceDefinition], me: String, members: [MemberSnapshot],
                               grants: GrantTable = [:]) -> [ServiceDefinition] {
        guard let mine = members.first(where: { $0.name == me }) else { return [] }
        var routes: [String: String?] = [:]
        func route(_ role: String) -> String? {
            if let r = routes[role] { return r }
            let r = Routing.route(role, heavy: false, members: members, grants: grants).node
            routes[role] = r
            return r
        }
        return defs.filter { d in
            let holder = mine.roles.contains(d.role)
            guard holder || mine.backup[d.role] != nil, grants.allows(me, d.role, backup: !holder) else { return false }
            switch d.placement {
            case .route:
                return route(d.role) == me
            case .holders:
                if holder || d.run == nil || route(d.role) == me { return true }
                let holders = members.filter { $0.name != me && $0.roles.contains(d.role) }
                return Routing.routeService(d.id, members: holders, grants: grants).node == nil
            }
        }
    }
}
