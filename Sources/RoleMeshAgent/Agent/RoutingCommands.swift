import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage

/// Control requests about roles, routing, signals and draining. Changes apply to the running
/// node at once (so a second command builds on the first); the file that keeps them is written
/// on the disk queue, and the reply goes out once it is written (or says why not).
extension Agent {
    func changeSignals(_ change: ControlRequest.SignalChange, _ conn: ControlConnection) {
        var o = overrides
        do {
            switch change {
            case .clear: o.pinned = Signals()
            case .set(let pins): try o.pin(pins)
            }
        } catch { return conn.fail(error) }
        overrides = o
        applySignals(announce: true)
        spawn {
            if let failure = await saveOverrides() { conn.fail(failure) } else { conn.reply(OkReply(signals: signalsStatus(core.me.signals))) }
        }
    }

    func setDraining(_ draining: Bool, _ conn: ControlConnection) {
        overrides.draining = draining
        perform(node.updateSelf(now: Clock.now()) { $0.draining = draining })
        spawn {
            if let failure = await saveOverrides() { conn.fail(failure) } else { conn.reply(OkReply(draining: draining)) }
        }
    }

    func route(_ role: String, heavy: Bool) -> RouteDecision {
        Routing.route(role, heavy: heavy, members: core.snapshot(now: Clock.now()), grants: grants)
    }

    func routeReply(_ r: RouteDecision) -> RouteReply {
        var reply = RouteReply(role: r.role, heavy: r.heavy, node: r.node, skipped: r.skipped.map { .init(node: $0.node, reason: $0.reason) },
                               error: r.node == nil ? r.failureSentence : nil, code: r.node == nil ? Int(MeshError.unavailable) : nil)
        reply.via = r.node.flatMap { via($0) }
        return reply
    }

    func roleRoutes() -> [String: RoleRoutes] {
        let view = core.snapshot(now: Clock.now())
        var out: [String: RoleRoutes] = [:]
        for role in Routing.roles(in: view) {
            out[role] = RoleRoutes(route: Routing.route(role, heavy: false, members: view, grants: grants).node,
                                   heavyRoute: Routing.route(role, heavy: true, members: view, grants: grants).node)
        }
        return out
    }

    /// `roles add|remove ROLE`, `backup add|remove ROLE [--priority P]`: the running node and the
    /// mesh at once, then node.toml (edited in place, comments kept) on the disk queue.
    func changeRoles(backup: Bool, _ action: ControlRequest.RoleAction, role: String, priority p: Int, _ conn: ControlConnection) {
        let add = action == .add
        guard NodeName.isValid(role) else {
            return conn.fail(MeshError(MeshError.usage, "invalid role name \"\(role)\""))
        }
        var next = core.me
        // A node holds a role actively or stands by for it, not both: adding one drops the other.
        if !backup {
            if add {
                if !next.roles.contains(role) { next.roles.append(role) }
                next.backup[role] = nil
            } else { next.roles.removeAll { $0 == role } }
        } else {
            guard p >= 1, p <= 255 else { return conn.fail(MeshError(MeshError.usage, "priority must be 1...255")) }
            next.backup[role] = add ? p : nil
            if add { next.roles.removeAll { $0 == role } }
        }
        guard Wire.fits(next) else {
            return conn.fail(MeshError(MeshError.usage, "too many roles: this node's heartbeat would no longer fit in one datagram"))
        }
        var config = self.config
        config.roles = next.roles
        config.backup = next.backup
        self.config = config
        perform(node.updateSelf(now: Clock.now()) { $0.roles = next.roles; $0.backup = next.backup })
        let file = dir.configFile, written = config
        // Held, but not granted: the others skip this node for it, and the answer says so.
        let note = add && !grants.allows(name, role, backup: backup)
            ? "\(role) is not granted to \(name): the other nodes skip it for \(role) (`not granted`) until an introducer runs `rolemesh grant \(name) \(RoleGrants.word(role: role, backup: backup))`"
            : nil
        spawn {
            if let failure = await disk.written({ () throws(MeshError) in try Self.persist(written, to: file) }) {
                conn.fail(failure)
            } else { conn.reply(OkReply(note: note)) }
        }
    }

    /// Rewrites only the `roles` and `backup` lines of node.toml (on the disk queue).
    static func persist(_ config: NodeConfig, to path: URL) throws(MeshError) {
        do {
            var text = try String(contentsOf: path, encoding: .utf8)
            text = try TOMLSubset.setting("roles", to: .array(config.roles.map(TOMLValue.string)), in: text)
            text = try TOMLSubset.setting("backup", to: .table(config.backup.sorted { $0.key < $1.key }.map { ($0.key, .integer($0.value)) }), in: text)
            try AtomicFile.replace(path, with: text)
        } catch let e as MeshError {
            throw e
        } catch {
            throw MeshError(MeshError.config, "cannot update \(path.path): \(error)")
        }
    }

    /// Probes off the agent queue (sysfs reads can block); the result comes back to it, is
    /// pinned and goes to the core (it rides on the next heartbeat). One probe at a time.
    func refreshSignals() {
        guard !probing else { return }
        probing = true
        let probe = self.probe
        spawn {
            let s = await offQueue { probe.read() }
            probing = false
            probed = s
            applySignals()
        }
    }

    /// The last probed signals with the pins on top, to the core.
    func applySignals(announce: Bool = false) {
        let s = ownSignals()
        perform(node.updateSelf(now: Clock.now(), announce: announce) { $0.signals = s })
    }

    /// This node's signals as read here now, pins applied: its idle time to the second (what it
    /// announces to the others is whole minutes).
    func ownSignals() -> Signals {
        var read = probed
        read.idle = background.idle; read.idleSeconds = background.idleSeconds
        return overrides.apply(to: read)
    }

    /// Writes the overrides as they are now (`signal`, `drain`); returns once they are on
    /// disk (nil), or why not. The agent goes on meanwhile.
    func saveOverrides() async -> MeshError? {
        let o = overrides, dir = self.dir
        return await disk.written { () throws(MeshError) in try o.save(dir) }
    }
}

/// Hooks where the parts of the agent plug in.
extension Agent {
    func startExtensions() {
        reloadKeys()        // grants now, not at the first look at keys/
        trust.prune(trustView)      // a ledger from before introducers held every trusted node's word
        applySignals()
        startTasks()
        startSchedules()
        startFollowingAddresses()
        startServices()
    }

    func stopExtensions() async {
        async let services: Void = stopServices()
        await stopTasks()
        await services
    }
}
