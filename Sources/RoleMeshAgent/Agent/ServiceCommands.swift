import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// Control requests about services: `services`, `connect`, and the `forwards` of `status`.
extension Agent {
    func servicesReply() -> ServicesReply {
        let view = core.snapshot(now: Clock.now())
        var ids = Set(view.flatMap { $0.services.map(\.service) })
        for d in services.defs { ids.insert(d.id) }
        let out = ids.sorted().map { id -> ServicesReply.Service in
            let offers = view.compactMap { m in m.services.first { $0.service == id }.map { (m, $0) } }
            let own = services.defs.first { $0.id == id }
            let d = Routing.routeService(id, members: view, grants: grants)
            var s = ServicesReply.Service(service: id, port: offers.first?.1.port ?? own?.port ?? 0,
                                          where: (offers.first?.1.placement ?? own?.placement ?? .holders).rawValue,
                                          node: d.node, reason: serviceReason(d, view),
                                          nodes: offers.map { .init(node: $0.0.name, health: $0.1.health.word, detail: $0.1.detail) })
            s.via = d.node.flatMap { via($0) }
            return s
        }
        return ServicesReply(services: out, errors: services.errors.isEmpty ? nil : services.errors)
    }

    /// Why new connections go where they go: the chosen node's standing, or why none can take them.
    func serviceReason(_ d: RouteDecision, _ view: [MemberSnapshot]) -> String {
        guard let node = d.node, let m = view.first(where: { $0.name == node }) else { return d.failureSentence }
        let role = d.role
        let standing = m.roles.contains(role) ? "holder" : "backup \(m.backup[role] ?? 0): no holder serves it healthy"
        let others = d.skipped.map { "\($0.node): \($0.reason)" }
        return "healthy \(standing), score \(Routing.twoDecimals(Score.of(m.signals)))" + (others.isEmpty ? "" : "; skipped " + others.joined(separator: "; "))
    }

    /// The port a service listens on, as the nodes offering it say (or this node's own file).
    func servicePort(_ service: String) -> Int? {
        if let d = services.defs.first(where: { $0.id == service }) { return d.port }
        return core.snapshot(now: Clock.now()).lazy.compactMap { $0.services.first { $0.service == service }?.port }.first
    }

    /// `connect ROLE/NAME [--local [HOST:]PORT] [--stdio]`.
    func connect(_ service: String, listen: String?, stdio: Bool, _ conn: ControlConnection) {
        guard ServiceName.split(service) != nil else {
            return conn.fail(MeshError(MeshError.usage, "invalid service name \"\(service)\": expected ROLE/NAME, each \(ServiceName.rule)"))
        }
        let d = Routing.routeService(service, members: core.snapshot(now: Clock.now()), grants: grants)
        guard d.node != nil else { return conn.fail(MeshError(MeshError.unavailable, d.failureSentence)) }
        if stdio {
            return conn.takeOver { frames in
                let local = frames.io
                self.spawn {
                    await self.forward(local, to: service) { node, error in
                        if let node {
                            _ = local.enqueue(Array(ControlJSON.line(ConnectReply(listen: nil, node: node, via: await self.via(node)))))
                        } else if let error {
                            _ = local.enqueue(Array(ControlJSON.line(ErrorReply(error: error.message, code: Int(error.code)))))
                        }
                    }
                }
            }
        }
        var local: (host: String, port: UInt16)
        if let listen {
            guard let l = ForwardSpec.local(listen) else {
                return conn.fail(MeshError(MeshError.usage, "--local: expected [HOST:]PORT, found \"\(listen)\""))
            }
            local = l
        } else {
            guard let p = servicePort(service), let port = UInt16(exactly: p) else {
                return conn.fail(MeshError(MeshError.unavailable, "no node offering \(service) says its port yet"))
            }
            local = ("127.0.0.1", port)
        }
        guard let address = WireAddress(host: local.host, port: local.port) else {
            return conn.fail(MeshError(MeshError.usage, "--local: \(local.host) is not an IP address"))
        }
        let l = ServiceListener(service: service, address: address)
        guard let id = openListener(l) else { return conn.fail(MeshError(MeshError.other, l.error ?? "cannot listen")) }
        conn.send(ConnectReply(listen: l.listenText, node: d.node, via: d.node.flatMap { via($0) }))
        // The listener lives as long as the command: its control connection ends with it.
        let previous = conn.onClose
        conn.onClose = { [weak self] in
            previous?()
            guard let self else { return }
            self.assumeIsolated { $0.closeListener(id) }
        }
    }

    /// Starts `l` and keeps it; nil (with `l.error`) when its port cannot be had.
    func openListener(_ l: ServiceListener, id existing: Int? = nil) -> Int? {
        let service = l.service
        let id = existing ?? services.nextListener
        guard l.open(queue: queue, onAccept: { [weak self] fd in
            guard let self else { sysClose(fd); return }
            self.assumeIsolated { agent in
                agent.services.listeners[id]?.connections += 1
                spawn {
                    await agent.forward(AsyncFD(fd), to: service) { _, error in
                        if let error { Log.info("a connection to \(service) found no node: \(error.message)") }
                    }
                    agent.services.listeners[id]?.connections -= 1
                }
            }
        }) else { return nil }
        if existing == nil { services.nextListener += 1 }
        services.listeners[id] = l
        return id
    }

    func closeListener(_ id: Int) {
        services.listeners[id]?.stop()
        services.listeners[id] = nil
    }

    /// `status`'s `forwards`: each listener, where its new connections go now, and how many are open.
    func forwardsStatus() -> [ForwardStatus] {
        let view = core.snapshot(now: Clock.now())
        return services.listeners.sorted { $0.key < $1.key }.map { _, l in
            ForwardStatus(service: l.service, listen: l.listenText, node: Routing.routeService(l.service, members: view, grants: grants).node,
                          connections: l.connections, error: l.error)
        }
    }
}
