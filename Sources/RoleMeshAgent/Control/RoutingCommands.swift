import Foundation
import RoleMeshCore

/// Control requests about roles, routing, signals and draining.
extension Agent {
    func handleRouting(_ req: JSON, _ conn: ControlConnection) -> Bool {
        switch req["cmd"]?.string ?? "" {
        case "route":
            guard let role = req["role"]?.string else { conn.fail(MeshError(MeshError.usage, "route needs a role")); return true }
            conn.reply(routeJSON(route(role, heavy: req["heavy"]?.bool ?? false)))
        case "roles", "backup":
            do {
                let config = try changeRoles(req), file = dir.configFile
                disk.write({ () throws(MeshError) in try Self.persist(config, to: file) }) { failure in
                    if let failure { conn.fail(failure) } else { conn.reply(.object([("ok", .bool(true))])) }
                }
            } catch { conn.fail(error) }
        case "signal":
            do {
                var o = overrides
                if req["clear"]?.bool == true { o.pinned = Signals() } else {
                    try o.pin((req["set"]?.array ?? []).compactMap(\.string))
                }
                overrides = o
                applySignals(announce: true)
                saveOverrides { [self] failure in
                    if let failure { conn.fail(failure) } else {
                        conn.reply(.object([("ok", .bool(true)), ("signals", signalsJSON(core.me.signals))]))
                    }
                }
            } catch { conn.fail(error) }
        case "drain", "undrain":
            overrides.draining = req["cmd"]?.string == "drain"
            let draining = overrides.draining
            perform(core.updateSelf(now: Clock.now()) { $0.draining = draining })
            saveOverrides { failure in
                if let failure { conn.fail(failure) } else { conn.reply(.object([("ok", .bool(true)), ("draining", .bool(draining))])) }
            }
        default:
            return false
        }
        return true
    }

    func route(_ role: String, heavy: Bool) -> RouteDecision {
        Routing.route(role, heavy: heavy, members: core.snapshot(now: Clock.now()))
    }

    func routeJSON(_ r: RouteDecision) -> JSON {
        var fields: [(String, JSON)] = [
            ("role", .string(r.role)), ("heavy", .bool(r.heavy)), ("node", .optional(r.node)),
            ("skipped", .array(r.skipped.map { .object([("node", .string($0.node)), ("reason", .string($0.reason))]) })),
        ]
        if r.node == nil { fields.append(("error", .string(r.failureSentence))); fields.append(("code", .int(Int(MeshError.unavailable)))) }
        return .object(fields)
    }

    func rolesJSON() -> JSON {
        let view = core.snapshot(now: Clock.now())
        return .object(Routing.roles(in: view).map { role in
            (role, .object([("route", .optional(Routing.route(role, heavy: false, members: view).node)),
                            ("heavy_route", .optional(Routing.route(role, heavy: true, members: view).node))]))
        })
    }

    /// `roles add|remove ROLE`, `backup add|remove ROLE [--priority P]`: the running node and
    /// the mesh at once; the returned config is for node.toml (edited in place, comments kept),
    /// written after it on the disk queue. Applied first, so a second change builds on this one.
    func changeRoles(_ req: JSON) throws(MeshError) -> NodeConfig {
        let kind = req["cmd"]?.string ?? ""
        let add = req["action"]?.string == "add"
        guard let role = req["role"]?.string, NodeName.isValid(role) else {
            throw MeshError(MeshError.usage, "invalid role name \"\(req["role"]?.string ?? "")\"")
        }
        var next = core.me
        // A node holds a role actively or stands by for it, not both: adding one drops the other.
        if kind == "roles" {
            if add {
                if !next.roles.contains(role) { next.roles.append(role) }
                next.backup[role] = nil
            } else { next.roles.removeAll { $0 == role } }
        } else {
            let p = req["priority"]?.int ?? 1
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
        self.config = config
        perform(core.updateSelf(now: Clock.now()) { $0.roles = next.roles; $0.backup = next.backup })
        return config
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
        reads.async { [self] in
            let s = probe.read()
            queue.async { self.probing = false; self.probed = s; self.applySignals() }
        }
    }

    /// The last probed signals with the pins on top, to the core.
    func applySignals(announce: Bool = false) {
        let s = overrides.apply(to: probed)
        perform(core.updateSelf(now: Clock.now(), announce: announce) { $0.signals = s })
    }

    /// Writes the overrides as they are now (`signal`, `drain`); `done` runs on the agent queue
    /// once they are on disk, or with why not.
    func saveOverrides(then done: @escaping @Sendable (MeshError?) -> Void) {
        let o = overrides, dir = self.dir
        disk.write({ () throws(MeshError) in try o.save(dir) }, then: done)
    }
}

/// Hooks where the parts of the agent plug in.
extension Agent {
    func startExtensions() {
        applySignals()
        startTasks()
    }

    func stopExtensions(_ done: @escaping @Sendable () -> Void) { stopTasks(done) }

    func handleExtension(_ req: JSON, _ conn: ControlConnection) -> Bool {
        handleRouting(req, conn) || handleTasks(req, conn)
    }
}
