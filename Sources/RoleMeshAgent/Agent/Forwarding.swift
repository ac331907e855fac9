import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// Forwarded connections: the client side picks the node by the routing rules (`routeService`)
/// and tries the next candidate at once when one cannot be reached or refuses; the serving side
/// connects only to `127.0.0.1:port` of a service its own `service.toml` declares and offers now.
extension Agent {
    /// How long the serving side may take to answer a `connect` request (its service's connect included).
    static let serviceConnectSeconds: Double = 5

    /// One local connection to `service`, forwarded until either side ends it. `opened(node)`
    /// comes first, once the service answered (nil: none could be reached; the error says why).
    func forward(_ local: AsyncFD, to service: String, opened: @escaping @Sendable (String?, MeshError?) async -> Void = { _, _ in }) async {
        let target: (node: String, stream: Opened)
        do throws(MeshError) { target = try await openService(service) } catch {
            await opened(nil, error)
            local.close()
            return
        }
        await opened(target.node, nil)
        switch target.stream {
        case .remote(let ch):
            let id = services.nextOpen
            services.nextOpen += 1
            services.open[id] = (target.node, ch)
            await ServiceStream.client(local, ch)
            services.open[id] = nil
        case .local(let io): await SecureChannel.splice(local, io)
        }
    }

    enum Opened { case remote(SecureChannel), local(AsyncFD) }

    /// `node` died or left: the connections forwarded to it end (new ones go to the next route).
    func endServiceConnections(to node: String) {
        for (_, o) in services.open where o.node == node { o.channel.abort() }
    }

    /// A connection to `service` on its route, else on the next candidate (each failure excludes
    /// its node with the reason), at most once per node. An attempt at a node the view meanwhile
    /// suspects or lists dead is given up at once for the next candidate (a device that dropped
    /// off the network answers nothing: its connect would wait for the handshake's deadline).
    func openService(_ service: String) async throws(MeshError) -> (node: String, stream: Opened) {
        var excluded: [String: String] = [:]
        while true {
            let d = Routing.routeService(service, members: core.snapshot(now: Clock.now()), excluding: excluded, grants: grants)
            guard let node = d.node else { throw MeshError(MeshError.unavailable, d.failureSentence) }
            // The attempt, raced with a watch on the node's state: whichever ends first decides.
            let decided = Locked(false)
            let outcome: Result<Opened, MeshError>? = await withCheckedContinuation { c in
                let finish: @Sendable (Result<Opened, MeshError>?) -> Bool = { r in
                    guard decided.withLock({ d in defer { d = true }; return !d }) else { return false }
                    c.resume(returning: r)
                    return true
                }
                spawn {
                    let r: Result<Opened, MeshError>
                    do throws(MeshError) { r = .success(try await self.attempt(service, on: node)) } catch { r = .failure(error) }
                    // Too late (the node was given up): what it brought is closed.
                    if !finish(r), case .success(let o) = r { Self.close(o) }
                }
                spawn {
                    while !decided.withLock({ $0 }) {
                        try? await Task.sleep(for: .milliseconds(Self.attemptPollMs))
                        let m = self.core.snapshot(now: Clock.now()).first { $0.name == node }
                        if m.map({ $0.state != .alive }) ?? true { _ = finish(nil); return }
                    }
                }
            }
            guard let outcome else {
                Log.info("\(node) stopped answering while connecting to \(service); trying the next node", context: ["service": service])
                excluded[node] = "stopped answering"
                continue
            }
            switch outcome {
            case .success(let o): return (node, o)
            case .failure(let error):
                Log.info("cannot connect to \(service) on \(node): \(error.message); trying the next node", context: ["service": service])
                excluded[node] = "could not connect: \(error.message)"
            }
        }
    }

    /// How often an attempt looks whether its node is still up.
    static let attemptPollMs = 20

    static func close(_ o: Opened) {
        switch o {
        case .remote(let ch): ch.close()
        case .local(let io): io.close()
        }
    }

    /// One node: its answer to `connect` (this node's own service: a plain local connect).
    func attempt(_ service: String, on node: String) async throws(MeshError) -> Opened {
        if node == name { return .local(try await connectOwnService(service, for: name)) }
        guard let address = address(of: node) else { throw MeshError(MeshError.tempFail, "its address is not known") }
        let ch = try await channel(to: node, address: address)
        ch.io.setDeadline(Self.serviceConnectSeconds)
        try await ch.send(Frame(.request, encoding: TaskRequest.connect(service: service)))
        let answer = try await ch.receive()
        ch.io.setDeadline(nil)
        guard let answer, answer.type == .info else {
            ch.close()
            throw answer?.type == .error ? answer!.meshError : MeshError(MeshError.tempFail, "the connection to \(node) ended")
        }
        return .remote(ch)
    }

    /// The serving side's one rule: only `127.0.0.1:port` of a service this node's own
    /// `service.toml` declares and offers now, whatever the peer asked for.
    func connectOwnService(_ service: String?, for peer: String) async throws(MeshError) -> AsyncFD {
        guard let service, let d = services.defs.first(where: { $0.id == service }), services.health[service] != nil else {
            throw MeshError(MeshError.noPermission, "\(name) does not offer \(service ?? "that service")")
        }
        let io = try await SecureChannel.openTCP(to: WireAddress(ip: [127, 0, 0, 1], port: UInt16(d.port)), peer: "\(service) on \(name)", from: nil)
        io.setDeadline(nil)
        return io
    }

    /// `{"op": "connect", "service": "ROLE/NAME"}` from a trusted peer: the service's answer,
    /// then its bytes both ways until either side ends.
    func serveConnect(_ service: String, on ch: SecureChannel) async {
        let io: AsyncFD
        do throws(MeshError) { io = try await connectOwnService(service, for: ch.peer) } catch {
            Log.info("refused a service connection: \(error.message)", context: ["peer": ch.peer])
            try? await ch.send(.error(error))
            return
        }
        try? await ch.send(.info("connected"))
        await ServiceStream.server(ch, io, fd: io.fd)
    }
}
