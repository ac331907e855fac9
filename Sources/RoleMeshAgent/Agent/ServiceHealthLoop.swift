import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// The agent's side of service health: every second it works out what this node offers
/// (`ServiceOffering`), checks each offered service every 5 s (a new one at once), gossips the
/// result in its heartbeat, and says in `watch` when a service turns healthy or unhealthy here
/// and when a service's connections move to another node.
extension Agent {
    func startServices() {
        every(ms: 1_000, first: 0) { $0.tendServices() }
    }

    func tendServices() {
        guard !leaving else { return }
        let now = Clock.now()
        if !services.reading, now - services.readAt >= ServicePlane.readEveryMs { readServiceFiles() }
        let view = core.snapshot(now: now)
        let offered = ServiceOffering.offered(services.defs, me: name, members: view, grants: grants)
        let ids = Set(offered.map(\.id))
        for id in services.health.keys where !ids.contains(id) {
            services.health[id] = nil
            services.checkedAt[id] = nil
            Log.info("no longer offering the service", context: ["service": id])
        }
        for d in offered where services.health[d.id] == nil {
            services.health[d.id] = HealthTracker()
            Log.info("offering the service", context: ["service": d.id, "port": "\(d.port)"])
        }
        for d in offered where !services.checking.contains(d.id)
            && now - (services.checkedAt[d.id] ?? .min / 2) >= Millis(HealthTracker.intervalSeconds * 1000) {
            check(d)
        }
        superviseRuns(offered)
        announceServices()
        noteServiceMoves(view)
        openForwards(view)
    }

    /// Reads `roles/*/service.toml` off the agent queue; a bad file is logged once per change.
    func readServiceFiles() {
        services.reading = true
        services.readAt = Clock.now()
        let dir = self.dir
        spawn {
            let (defs, errors) = await offQueue { RoleServiceFiles.load(dir) }
            services.reading = false
            for (file, sentence) in errors where services.errors[file] != sentence { Log.warn(sentence, context: ["file": file]) }
            services.errors = errors
            if defs != services.defs { services.defs = defs; tendServices() }
        }
    }

    func check(_ d: ServiceDefinition) {
        services.checking.insert(d.id)
        services.checkedAt[d.id] = Clock.now()
        let dir = self.dir
        let env = serviceEnvironment(d)
        spawn {
            let (ok, why) = await ServiceCheck.run(d, dir: dir, environment: env)
            services.checking.remove(d.id)
            guard var t = services.health[d.id] else { return }
            let before = t.health
            // While its `run` process keeps dying, that is the reason, not the refused connect it causes.
            let changed = t.record(ok: ok, detail: ok ? nil : services.dying[d.id] ?? why)
            services.health[d.id] = t
            guard changed else { return }
            if t.health != before {
                Log.info("service \(t.health.word)" + (t.health == .unhealthy ? ": \(t.detail ?? "its check fails")" : ""), context: ["service": d.id])
            }
            announceServices()
        }
    }

    /// The environment of a check or `run` process: a task's, plus the service and its port.
    func serviceEnvironment(_ d: ServiceDefinition) -> [String] {
        Executor.environment(agent: ProcessInfo.processInfo.environment, passthrough: config.envPassthrough,
                             own: [("ROLEMESH_NODE", name), ("ROLEMESH_ROLE", d.role), ("ROLEMESH_SERVICE", d.id),
                                   ("ROLEMESH_PORT", String(d.port))])
    }

    /// Puts this node's offer into its heartbeat when it changed: a change of identity, sent to
    /// every member at once (routing reads it).
    func announceServices() {
        let all = services.offers()
        var offers = all
        // Entry 0 must fit in one datagram: with many long role names, the last services give way.
        var next = core.me
        next.services = offers
        while !offers.isEmpty, !Wire.fits(next) { offers.removeLast(); next.services = offers }
        guard offers != core.me.services else { return }
        if offers.count < all.count { Log.warn("the heartbeat has no room for every service: \(offers.count) of \(all.count) announced") }
        perform(node.updateSelf(now: Clock.now()) { $0.services = offers })
    }

    /// `service-healthy` and `service-unhealthy` for every node whose report of a service changed
    /// (this node's own included), and `service-moved` for every service whose new connections go
    /// elsewhere than at the last look.
    func noteServiceMoves(_ view: [MemberSnapshot]) {
        var health: [String: ServiceHealth] = [:]
        for m in view where m.state == .alive || m.state == .suspect {
            for s in m.services { health[m.name + " " + s.service] = s.health }
        }
        for (key, h) in health.sorted(by: { $0.key < $1.key }) where h != .starting && services.seenHealth[key] != h {
            // A node first seen healthy is no news; one first seen unhealthy is.
            guard services.seenHealth[key] != nil || h == .unhealthy else { continue }
            let parts = key.split(separator: " ", maxSplits: 1).map(String.init)
            var e = WatchEvent(event: "service-\(h.word)", node: parts[0], time: Clock.rfc3339())
            e.service = parts[1]
            publish(e)
        }
        services.seenHealth = health.filter { $0.value != .starting }.merging(services.seenHealth.filter { health[$0.key] == .starting }) { a, _ in a }
        let known = Set(view.flatMap { $0.services.map(\.service) })
        for id in known.union(services.routes.keys).sorted() {
            let now = known.contains(id) ? Routing.routeService(id, members: view, grants: grants).node : nil
            guard let was = services.routes[id] else { services.routes[id] = .some(now); continue }
            guard was != now else { continue }
            services.routes[id] = .some(now)
            var e = WatchEvent(event: "service-moved", node: name, time: Clock.rfc3339(), from: was, to: now)
            e.service = id
            publish(e)
        }
    }
}
