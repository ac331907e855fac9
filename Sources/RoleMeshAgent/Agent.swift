#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import RoleMeshCore

/// The shell around the membership core: sockets, timers, files and the control socket.
///
/// Confinement rule: every mutable field here, the core included, is touched only on `queue`.
/// Dispatch sources and timers are created on `queue`, so their handlers run there too.
public final class Agent: @unchecked Sendable {
    public let dir: NodeDirectory
    public internal(set) var config: NodeConfig
    let queue = DispatchQueue(label: "rolemesh.agent")
    let keyRing: KeyRing
    let state: StateStore
    let core: Membership
    let udp: UDPSocket
    let control: ControlServer
    var timers: [DispatchSourceTimer] = []
    var signalSources: [DispatchSourceSignal] = []
    var watchers: [ControlConnection] = []
    var lastSavedPeers: [String: WireAddress] = [:]
    /// `role-moved` events from the views the core reports as changed.
    var routeWatcher = RouteWatcher()
    var trustedSnapshot: [String: [UInt8]]
    var lastKeyReadFailureLog: Millis = 0
    let startedAt = Clock.now()
    /// `ROLEMESH_PROBE_ROOT` points the probes at another filesystem root (tests use a fake /proc).
    let probe = SignalProbe(root: ProcessInfo.processInfo.environment["ROLEMESH_PROBE_ROOT"] ?? "/")
    var overrides: LocalOverrides
    let listenAddress: WireAddress
    let taskListener: TaskListener
    let journal: TaskJournal
    var executor: Executor!
    var submitter: Submitter!
    var leaving = false

    public init(dir: NodeDirectory) throws(MeshError) {
        self.dir = dir
        NodeDirectory.restrictNewFiles()
        let config = try dir.loadConfig()
        self.config = config
        guard let profile = TimingProfile.named(config.profile) else {
            throw MeshError(MeshError.config, "unknown profile \(config.profile)")
        }
        let pair = try KeyStore.loadSecret(name: config.name, in: dir)
        var trusted: [String: [UInt8]]
        do { trusted = try KeyStore.loadTrusted(in: dir, report: Log.warn) } catch {
            throw MeshError(MeshError.config, "cannot read the trusted keys: \(error.message)")
        }
        // We always trust ourselves (our own .pub may be missing on a node set up by hand).
        trusted[config.name] = pair.publicKey
        trustedSnapshot = trusted
        keyRing = KeyRing(keyPair: pair, trusted: trusted)
        guard let (host, port) = NodeConfig.splitHostPort(config.listen),
              let listen = WireAddress(host: host, port: port) ?? SocketAddress.resolve(config.listen) else {
            throw MeshError(MeshError.config, "\(dir.configFile.path): key \"listen\": cannot resolve \(config.listen)")
        }
        state = StateStore(dir: dir)
        try state.prepare()
        dir.tightenModes(report: Log.warn)
        overrides = LocalOverrides.load(dir)
        let incarnation = try state.nextIncarnation()
        udp = try UDPSocket(bind: listen, queue: queue)
        do { taskListener = try TaskListener(bind: listen) } catch { udp.stop(); throw error }
        listenAddress = listen
        control = ControlServer(path: dir.socketPath, queue: queue)
        journal = TaskJournal(dir: dir)

        var bootstrap: [WireAddress] = []
        for seed in config.seeds {
            if let a = SocketAddress.resolve(seed) { bootstrap.append(a) } else { Log.warn("cannot resolve seed \(seed) now; skipping it") }
        }
        for (_, addr) in state.loadPeers() { if let a = SocketAddress.resolve(addr), !bootstrap.contains(a) { bootstrap.append(a) } }
        // Listening on 0.0.0.0 (or ::): advertise the address our seeds see, so nodes that only
        // hear of us through relays can still reach us.
        var advertised = listen
        if listen.isUnspecified, let ip = bootstrap.lazy.compactMap({ SocketAddress.localIP(toward: $0) }).first(where: { listen.isIPv6 || !$0.isIPv6 }) {
            advertised = WireAddress(ip: ip.ip, port: listen.port)
            Log.info("listening on \(listen), advertising \(advertised)")
        }
        core = Membership(
            config: .init(name: config.name, address: advertised, incarnation: incarnation, roles: config.roles,
                          backup: config.backup, draining: overrides.draining, profile: profile, bootstrap: bootstrap),
            crypto: keyRing, seed: UInt64.random(in: 0...UInt64.max), now: Clock.now())
        executor = Executor(agent: self, journal: journal, maxTasks: config.maxTasks)
        submitter = Submitter(agent: self, journal: journal)
        Log.info("agent \(config.name) on \(listen) (profile \(profile.name), incarnation \(incarnation), \(trusted.count) trusted keys)")
    }

    /// Starts everything on the agent queue; returns once the control socket is listening.
    public func start() throws(MeshError) {
        var failure: MeshError?
        queue.sync {
            do {
                try control.start()
            } catch let e as MeshError { failure = e } catch {}
        }
        if let failure { udp.stop(); taskListener.stop(); throw failure }
        queue.sync {
            control.onRequest = { [unowned self] req, conn in self.handle(req, conn) }
            udp.start { [unowned self] bytes, from in
                self.perform(self.core.receive(bytes: bytes, from: from, now: Clock.now()))
            }
            perform(core.start(now: Clock.now()))
            // One timer drives the core; signals are probed on it once per heartbeat, so a change
            // rides on the next heartbeat without another wakeup.
            let probeEvery = max(1, Int(core.profile.heartbeat / core.profile.tick))
            var ticks = 0
            every(ms: Int(core.profile.tick)) { [unowned self] in
                ticks += 1
                if ticks % probeEvery == 0 { self.refreshSignals() }
                self.perform(self.core.tick(now: Clock.now()))
            }
            every(ms: 2_000) { [unowned self] in self.reloadKeys() }
            every(ms: 5_000) { [unowned self] in self.savePeersIfChanged() }
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                s.setEventHandler { [unowned self] in
                    Log.info("signal \(sig == SIGINT ? "SIGINT" : "SIGTERM"): leaving the mesh")
                    self.leaveAndExit()
                }
                s.resume()
                signalSources.append(s)
            }
            signal(SIGPIPE, SIG_IGN)
            startExtensions()
        }
    }

    func every(ms: Int, _ body: @escaping () -> Void) {
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(ms), leeway: .milliseconds(max(1, ms / 10)))
        t.setEventHandler(handler: body)
        t.resume()
        timers.append(t)
    }

    // MARK: - Actions from the core

    func perform(_ actions: [MembershipAction]) {
        for a in actions {
            switch a {
            case .send(let d, let to):
                udp.send(Wire.encode(d), to: to)
            case .event(let e):
                publish(e)
            case .viewChanged:
                for e in routeWatcher.observe(core.snapshot(now: Clock.now())) { publish(e) }
            case .persistIncarnation(let inc):
                do { try state.saveIncarnation(inc) } catch { Log.warn(error.description) }
            case .log(let s):
                Log.info(s)
            }
        }
    }

    func publish(_ e: MeshEvent) {
        var fields: [(String, JSON)] = [("event", .string(e.kind.rawValue)), ("node", .string(e.node)),
                                        ("time", .string(Clock.rfc3339()))]
        if e.kind == .roleMoved {
            fields += [("role", .optional(e.role)), ("from", .optional(e.from)), ("to", .optional(e.to))]
        }
        if e.kind == .roleMoved {
            Log.info("role \(e.role ?? "?") moved: \(e.from ?? "nobody") -> \(e.to ?? "nobody")")
        } else {
            Log.info("\(e.node): \(e.kind.rawValue)")
        }
        if e.kind == .memberDead || e.kind == .memberLeft { submitter.nodeLost(e.node) }
        let line = JSON.object(fields)
        watchers.removeAll { !$0.send(line, patience: 0) }
    }

    // MARK: - Files

    /// Trust follows `keys/*.pub`: re-read every 2 s (revocation within 10 s, no restart).
    func reloadKeys() {
        var trusted: [String: [UInt8]]
        do { trusted = try KeyStore.loadTrusted(in: dir) } catch {
            // Cannot read is not "no keys": the trust set stays as it was until the folder reads again.
            if Clock.now() - lastKeyReadFailureLog >= 10_000 || lastKeyReadFailureLog == 0 {
                lastKeyReadFailureLog = Clock.now()
                Log.warn("\(error.message); keeping the trusted keys as they were")
            }
            return
        }
        trusted[config.name] = keyRing.keyPair.publicKey
        guard trusted != trustedSnapshot else { return }
        var revoked: [String] = []
        for (name, key) in trustedSnapshot where trusted[name] != key {
            Log.info("trust in \(name) revoked (keys/\(name).pub removed or changed)")
            core.revoke(name)
            revoked.append(name)
        }
        for name in trusted.keys where trustedSnapshot[name] == nil { Log.info("now trusting \(name)") }
        keyRing.replaceTrusted(trusted)
        trustedSnapshot = trusted
        // Its open doors close too: tasks, channels and `logs` streams (off the agent queue: they do I/O).
        if !revoked.isEmpty, let executor, let submitter {
            let names = revoked
            onWorkerThread { for name in names { executor.revoke(name); submitter.nodeRevoked(name) } }
        }
    }

    func savePeersIfChanged() {
        let peers = core.rememberedPeers
        guard peers != lastSavedPeers else { return }
        state.savePeers(peers)
        lastSavedPeers = peers
    }

    // MARK: - Leaving

    func leaveAndExit() {
        guard !leaving else { return }
        // Running tasks finish first (bounded); the mesh hears we left once they are done.
        stopExtensions { [self] in
            perform(core.leave(now: Clock.now()))
            savePeersIfChanged()
            control.stop()
            udp.stop()
            Log.info("left the mesh")
            exit(0)
        }
    }
}
