import Foundation
import RoleMeshControl
import RoleMeshCore

/// Control requests about roles, routing, signals and draining.
extension Agent {
    func changeSignals(_ change: ControlRequest.SignalChange) throws(MeshError) -> OkReply {
        var o = overrides
        switch change {
        case .clear: o.pinned = Signals()
        case .set(let pins): try o.pin(pins)
        }
        overrides = o
        overrides.save(dir)
        refreshSignals(announce: true)
        return OkReply(signals: signalsStatus(core.me.signals))
    }

    func setDraining(_ draining: Bool) -> OkReply {
        overrides.draining = draining
        overrides.save(dir)
        perform(core.updateSelf(now: Clock.now()) { $0.draining = draining })
        return OkReply(draining: draining)
    }

    func route(_ role: String, heavy: Bool) -> RouteDecision {
        Routing.route(role, heavy: heavy, members: core.snapshot(now: Clock.now()))
    }

    func routeReply(_ r: RouteDecision) -> RouteReply {
        RouteReply(role: r.role, heavy: r.heavy, node: r.node, skipped: r.skipped.map { .init(node: $0.node, reason: $0.reason) },
                   error: r.node == nil ? r.failureSentence : nil, code: r.node == nil ? Int(MeshError.unavailable) : nil)
    }

    func roleRoutes() -> [String: RoleRoutes] {
        let view = core.snapshot(now: Clock.now())
        var out: [String: RoleRoutes] = [:]
        for role in Routing.roles(in: view) {
            out[role] = RoleRoutes(route: Routing.route(role, heavy: false, members: view).node,
                                   heavyRoute: Routing.route(role, heavy: true, members: view).node)
        }
        return out
    }

    /// `roles add|remove ROLE`, `backup add|remove ROLE [--priority P]`: the running node,
    /// node.toml (edited in place, comments kept) and then the mesh.
    func changeRoles(backup: Bool, _ action: ControlRequest.RoleAction, role: String, priority p: Int) throws(MeshError) {
        let add = action == .add
        guard NodeName.isValid(role) else {
            throw MeshError(MeshError.usage, "invalid role name \"\(role)\"")
        }
        var next = core.me
        // A node holds a role actively or stands by for it, not both: adding one drops the other.
        if !backup {
            if add {
                if !next.roles.contains(role) { next.roles.append(role) }
                next.backup[role] = nil
            } else { next.roles.removeAll { $0 == role } }
        } else {
            guard p >= 1, p <= 255 else { throw MeshError(MeshError.usage, "priority must be 1...255") }
            next.backup[role] = add ? p : nil
            if add { next.roles.removeAll { $0 == role } }
        }
        guard Wire.fits(next) else {
            throw MeshError(MeshError.usage, "too many roles: this node's heartbeat would no longer fit in one datagram")
        }
        var config = self.config
        config.roles = next.roles
        config.backup = next.backup
        try persist(config)
        self.config = config
        perform(core.updateSelf(now: Clock.now()) { $0.roles = next.roles; $0.backup = next.backup })
    }

    /// Rewrites only the `roles` and `backup` lines of node.toml.
    func persist(_ config: NodeConfig) throws(MeshError) {
        let path = dir.configFile
        do {
            var text = try String(contentsOf: path, encoding: .utf8)
            text = try TOMLSubset.setting("roles", to: .array(config.roles.map(TOMLValue.string)), in: text)
            text = try TOMLSubset.setting("backup", to: .table(config.backup.sorted { $0.key < $1.key }.map { ($0.key, .integer($0.value)) }), in: text)
            let tmp = path.appendingPathExtension("tmp")
            try text.write(to: tmp, atomically: false, encoding: .utf8)
            guard rename(tmp.path, path.path) == 0 else { throw MeshError(MeshError.other, "cannot replace \(path.path)") }
        } catch let e as MeshError {
            throw e
        } catch {
            throw MeshError(MeshError.config, "cannot update \(path.path): \(error)")
        }
    }

    /// Probe, pin, and hand the result to the core (it rides on the next heartbeat).
    func refreshSignals(announce: Bool = false) {
        let s = overrides.apply(to: probe.read())
        perform(core.updateSelf(now: Clock.now(), announce: announce) { $0.signals = s })
    }
}

/// Hooks where the parts of the agent plug in.
extension Agent {
    func startExtensions() {
        refreshSignals()
        startTasks()
    }

    func stopExtensions(_ done: @escaping @Sendable () -> Void) { stopTasks(done) }
}
