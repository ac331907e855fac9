import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTransport
import RoleMeshProbes
import RoleMeshTaskChannel

/// The shell around the membership core: sockets, timers, files and the control socket.
///
/// An actor whose executor is `queue`: the Dispatch sources and timers created on `queue` (UDP,
/// control socket, task listener, ticks, signals) run there too and enter the actor with
/// `assumeIsolated`. It never does file I/O or waits: writes go to `disk` (in order), probes
/// and the keys/ scan run on `reads`, the task plane is its own actors, and results come back
/// as messages.
public actor Agent {
    public nonisolated let dir: NodeDirectory
    /// This node's name (fixed for the agent's life; `config` may change, its name never does).
    public nonisolated let name: String
    var config: NodeConfig
    nonisolated let queue: DispatchQueue
    private nonisolated let executorOfQueue: QueueExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executorOfQueue.asUnownedSerialExecutor() }
    nonisolated let disk: DiskWriter
    /// Reads that may block (sysfs, procfs, keys/): one at a time, off the agent queue.
    nonisolated let reads = DispatchQueue(label: "rolemesh.reads", qos: .utility)
    /// Bumped whenever the core reports a changed view: queued submissions wait on it.
    nonisolated let viewChanges = ChangeSignal()
    var probing = false, readingKeys = false, readKeysAgain = false
    /// Changes in `keys/` (nil without inotify: polled), and when it was last read.
    var keysWatcher: FolderWatcher?
    var keysReadAt: Millis = .min / 2
    /// The last signals the probe read (before pins).
    var probed: Signals
    /// The pure gossip node (RoleMeshCore/Gossip): key ring, sealing and proof of key per address
    /// (protocol.md 2), the membership core and route watching. Every datagram in and out, and
    /// every change of this node's own heartbeat, goes through it (`carry`).
    let node: GossipNode
    var core: Membership { node.membership }
    var keyRing: KeyRing { node.keyRing }
    var gossip: SecureGossip { node.envelopes }
    let state: StateStore
    let udp: UDPSocket
    let control: ControlServer
    var timers: [DispatchSourceTimer] = []
    var signalSources: [DispatchSourceSignal] = []
    /// `watch` streams and hooks (Hooks/EventHub.swift).
    var events: EventHub
    var lastSavedPeers: [String: WireAddress] = [:]
    var lastKeyReadFailureLog: Millis = 0
    /// Which untrusted senders were named in the log lately (`noteUnknownKey`).
    var unknownKeyLog = UnknownKeyLog()
    let startedAt = Clock.now()
    /// `ROLEMESH_PROBE_ROOT` points the probes at another filesystem root (tests use a fake /proc).
    let probe: SignalProbe
    var overrides: LocalOverrides
    nonisolated let listenAddress: WireAddress
    /// Netlink address events (Transport/FollowAddresses.swift); nil where there is none.
    var addressWatcher: AddressWatcher?
    var addressLookPending = false
    /// This device's own address and members' moves (RoleMeshTransport/AddressFollower.swift).
    var addresses: AddressFollower
    /// No route to the mesh now (between networks, or the fixed listen address gone): the failure
    /// detector is held rather than accusing everyone.
    var cutOff: Bool { addresses.cutOff }
    let taskListener: TaskListener
    nonisolated let journal: TaskJournal
    nonisolated let executor: Executor
    nonisolated let submitter: Submitter
    /// Leaving has begun (`leave()`): derived from the signal the entry point waits on.
    var leaving: Bool { leavingSignal.count > 0 }
    /// Bumped once, when leaving begins.
    nonisolated let leavingSignal = ChangeSignal()
    /// Every piece of background work the agent starts runs as a child of `run()` (`spawn`), so
    /// that when it has left, what still runs is cancelled and awaited.
    nonisolated let children: ChildTasks
    /// The core's timer (Wakeups.swift): when it is armed for, when it last ticked, and when
    /// signals were last probed.
    var coreTimer: DispatchSourceTimer?
    var coreTickAt: Millis = .max
    var lastCoreTick: Millis = .min / 2
    var lastSignalProbe: Millis = .min / 2
    /// The slow chores, run on the core's timer (Wakeups.swift).
    var chores: [Chore] = []
    /// Schedules, slot records, idle readings and paused runs (Schedules/).
    var background = BackgroundState()
    let idleProbe: IdleProbe
    /// Introductions and revocations this node holds and passes on (`state/trust.json`, Trust/).
    var trust: TrustLedger
    /// Keys in `keys/revoked/`, read with `keys/`: an introduction never re-admits one.
    var revokedOnDisk: Set<[UInt8]> = []
    /// Invites not used yet (`state/invites.json`); several may admit one name, each until one is used.
    var invites: [PendingInvite]
    /// What a used invite granted, until the `welcome` introduces the device (Trust/Invites.swift).
    var claimedGrants: [String: [String]] = [:]
    /// `keys/*.pub` as last read: grants and who introduced each (Trust/TrustRelay.swift).
    var keyFiles: [String: KeyFile] = [:]
    /// Members reached through another, and channels carried for others (Tasks/RelayTable.swift).
    var relays = RelayTable()
    /// `state/agent.lock`, held while the agent runs (`AgentLock`).
    nonisolated let lockFD: Int32
    /// Every authenticated task connection, by peer: the per-peer cap, closed on revocation.
    nonisolated let channels: ChannelRegistry
    /// Task connections refused before authentication, for the log (rate-limited).
    var refusals = RefusalLog()
    /// Role services: declared, offered, their health and the listeners (RoleServices/).
    var services = ServicePlane()

    public init(dir: NodeDirectory) throws(MeshError) {
        self.dir = dir
        let queue = DispatchQueue(label: "rolemesh.agent")
        self.queue = queue
        executorOfQueue = QueueExecutor(queue)
        disk = DiskWriter()
        let children = ChildTasks()
        self.children = children
        let environment = ProcessInfo.processInfo.environment
        let probe = SignalProbe(root: environment["ROLEMESH_PROBE_ROOT"] ?? "/")
        self.probe = probe
        idleProbe = IdleProbe(root: environment["ROLEMESH_PROBE_ROOT"] ?? "/")
        probed = probe.read()   // once here, before the queue runs; then off it
        NodeDirectory.restrictNewFiles()
        // Descriptors are what idle connections exhaust (systemd's default soft limit is 1,024):
        // the soft limit goes up to the hard one, and one peer may hold an eighth of it (16–256).
        let files = OpenFiles.raiseSoftLimit()
        channels = ChannelRegistry(perPeer: min(256, max(16, files / 8)))
        let config = try dir.loadConfig()
        // Before anything that shows or changes: a second agent on this directory stops here.
        lockFD = try AgentLock.acquire(dir)
        self.config = config
        name = config.name
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
        guard let (host, port) = NodeConfig.splitHostPort(config.listen),
              let listen = WireAddress(host: host, port: port) ?? SocketAddress.resolve(config.listen) else {
            throw MeshError(MeshError.config, "\(dir.configFile.path): key \"listen\": cannot resolve \(config.listen)")
        }
        state = StateStore(dir: dir)
        try state.prepare()
        dir.tightenModes(report: Log.warn)
        overrides = LocalOverrides.load(dir)
        // Written here, directly: the agent queue does not run yet, and it must be on disk before use.
        let incarnation = try state.nextIncarnation()
        udp = try UDPSocket(bind: listen, queue: queue)
        do { taskListener = try TaskListener(bind: listen) } catch { udp.stop(); throw error }
        listenAddress = listen
        control = ControlServer(path: dir.socketPath, queue: queue)
        journal = TaskJournal(dir: dir, writer: disk)
        events = EventHub(hooks: HookRunner(dir: dir.hooksDir, me: config.name, children: children), children: children)
        trust = TrustLedger(TrustStore.load(dir))
        revokedOnDisk = (try? KeyStore.loadRevoked(in: dir)) ?? []
        invites = InviteStore.load(dir)

        var seeds: [WireAddress] = []
        for seed in config.seeds {
            if let a = SocketAddress.resolve(seed) { seeds.append(a) } else { Log.warn("cannot resolve seed \(seed) now; skipping it") }
        }
        addresses = AddressFollower(listen: listen, seeds: seeds)
        var bootstrap = seeds
        for (_, addr) in state.loadPeers() { if let a = SocketAddress.resolve(addr), !bootstrap.contains(a) { bootstrap.append(a) } }
        // Listening on 0.0.0.0 (or ::): advertise the address our seeds see, so nodes that only
        // hear of us through relays can still reach us.
        var advertised = listen
        if listen.isUnspecified, let here = OwnAddress.toward(bootstrap, listen: listen) {
            advertised = here
            Log.info("listening on \(listen), advertising \(advertised)")
        }
        // Logged, and fixed by `ROLEMESH_SEED`, so a run's random choices can be replayed.
        let seed = environment["ROLEMESH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        node = GossipNode(
            config: .init(name: config.name, address: advertised, incarnation: incarnation, roles: config.roles,
                          backup: config.backup, draining: overrides.draining, profile: profile, bootstrap: bootstrap),
            keyPair: pair, trusted: trusted, seed: seed, now: Clock.now())
        let link = AgentLink()
        let executor = Executor(me: config.name, dir: dir, journal: journal, link: link, children: children, maxTasks: config.maxTasks,
                                envPassthrough: config.envPassthrough, maxLogBytes: config.maxLogBytes)
        self.executor = executor
        submitter = Submitter(me: config.name, dir: dir, journal: journal, link: link, children: children, executor: executor)
        link.set(self)
        Log.info("agent started on \(listen) (profile \(profile.name), incarnation \(incarnation), \(trusted.count) trusted keys, seed \(seed))",
                 context: ["node": config.name])
    }

    /// Runs the agent until it has left the mesh (SIGINT, SIGTERM or `rolemesh leave`): starts
    /// everything, then runs the background work as children of one task group (`children`) until
    /// leaving ends it. Throws only when it cannot start (the control socket).
    public func run() async throws(MeshError) {
        if let failure = startOnQueue() { throw failure }
        await children.run()
    }

    /// Starts `job` as a child of `run()`: what `Task {}` was, but owned. A job formed in an agent
    /// method runs on the agent, as `Task {}` would.
    nonisolated func spawn(@_inheritActorContext @_implicitSelfCapture _ job: @escaping ChildTasks.Job) {
        children.spawn(job)
    }

    /// Resumes once the agent has begun to leave: the entry point's bound on how long leaving may
    /// take (`rolemesh agent`).
    public nonisolated func untilLeaving() async {
        await leavingSignal.wait(after: 0)
    }

    private func startOnQueue() -> MeshError? {
        do throws(MeshError) { try control.start() } catch {
            udp.stop(); taskListener.stop()
            return error
        }
        // These handlers run on `queue`, the actor's executor: checked, then inside the actor.
        control.onRequest = { req, conn in
            self.preconditionIsolated()
            self.handle(req, conn)
        }
        udp.start { bytes, from in
            self.preconditionIsolated()
            self.receive(bytes, from: from)
        }
        // The digest of what this node holds is in its heartbeat from the first datagram: a member
        // without one runs the release before (SecureChannel: the handshake it speaks).
        background.digestDirty = false
        let digest = slotsDigest()
        _ = node.updateSelf(now: Clock.now()) { $0.digest = digest }
        perform(node.start(now: Clock.now()))
        startCoreTicks()
        startWatchingKeys()
        every(ms: 5_000) { $0.savePeersIfChanged() }
        // Pages touched only while starting go back once the start is over, and later whatever a
        // status request or a task faulted in (ResidentPages.swift). Off the queue: writing smaps
        // walks every mapping, a few milliseconds.
        every(ms: 300_000, first: 5_000) { agent in
            agent.spawn {
                let kb = await agent.offQueue { ResidentPages.release() }
                Log.debug("released \(kb) kB of clean code pages")
            }
        }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            s.setEventHandler { [unowned self] in
                Log.info("signal \(sig == SIGINT ? "SIGINT" : "SIGTERM"): leaving the mesh")
                self.preconditionIsolated()
                self.leave()
            }
            s.resume()
            signalSources.append(s)
        }
        signal(SIGPIPE, SIG_IGN)
        startExtensions()
        return nil
    }

    // MARK: - What the gossip node asks for

    /// Carries out one input's output: datagrams onto the socket, events to `watch` and the hooks,
    /// the incarnation to disk, strangers to the log that names them.
    func perform(_ out: GossipNode.Output, from source: WireAddress? = nil) {
        for d in out.datagrams { udp.send(d.bytes, to: d.to) }
        for line in out.logs { Log.info(line) }
        if let inc = out.incarnation {
            let state = self.state
            disk.write { () throws(MeshError) in try state.saveIncarnation(inc) }
        }
        for e in out.events { publish(e) }
        if out.viewChanged {
            viewChanges.bump()
            noticeMoves()
        }
        if let source {
            let now = Clock.now()
            switch out.stranger {
            case .none: break
            case .sealedByStranger: unknownKeyLog.sealedByStranger(source: source.description, now: now)
            case .authenticated: unknownKeyLog.authenticated(source: source.description, now: now)
            case .unknownKeyIn(let plain):
                unknownKeyLog.authenticated(source: source.description, now: now)
                let ring = keyRing
                unknownKeyLog.noteUnknownKey(plain, from: source, now: now) { ring.trusted[$0] != nil }
            }
        }
        armCoreTick()    // the input may have brought the core's next deadline forward
    }

    /// A datagram off the socket.
    func receive(_ bytes: [UInt8], from: WireAddress) {
        perform(node.receive(bytes, from: from, now: Clock.now()), from: from)
    }

    func publish(_ e: MeshEvent) {
        let event = WatchEvent(event: e.kind.rawValue, node: e.node, time: Clock.rfc3339(),
                               role: e.role, from: e.from, to: e.to)
        if e.kind == .memberAlive {
            exchangeSlots(with: e.node)     // a restart or a healed partition
            if background.exchanging.contains(e.node) { background.greeted.insert(e.node) }
        }
        if e.kind == .roleMoved {
            Log.info("role moved: \(e.from ?? "nobody") -> \(e.to ?? "nobody")", context: ["role": e.role ?? "?"])
        } else {
            Log.info(e.kind.rawValue, context: ["peer": e.node])
        }
        if e.kind == .memberDead || e.kind == .memberLeft {
            let submitter = self.submitter, node = e.node
            spawn { await submitter.nodeLost(node) }
            endServiceConnections(to: node)
        }
        publish(event)
    }

    /// To every `watch` stream: encoded once; each watcher buffers it without waiting, and one
    /// that stopped reading is dropped.
    func publish(_ event: WatchEvent) {
        if event.event == "run-paused" { background.paused[event.id ?? ""] = event.reason }
        if event.event == "run-resumed" || event.event == "run-finished" { background.paused[event.id ?? ""] = nil }
        events.publish(event)
    }

    // MARK: - Files

    /// Runs `body` on `reads` (file and sysfs reads that may block), not on the agent queue.
    /// `nonsending`: the caller's executor (the agent's) is kept around the read, so the way there
    /// and back is two thread wakeups, not four through the global executor (an idle agent does
    /// this about once a second for its signals).
    nonisolated(nonsending) func offQueue<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in reads.async { c.resume(returning: body()) } }
    }

    /// A safety net under inotify: `keys/` is read this often even when no change was reported.
    static let keysUnwatchedMs: Millis = 30_000

    /// Trust follows `keys/*.pub` (revocation within 10 s, no restart): re-read as soon as inotify
    /// reports a change in `keys/` or `keys/revoked/`, and by a chore every 2 s while the
    /// folder cannot be watched (no inotify, or `keys/` replaced and not found again yet). Reading
    /// every key file every 2 s was most of an idle agent's file reads.
    func startWatchingKeys() {
        let dir = self.dir, children = self.children
        keysWatcher = FolderWatcher([dir.keysDir.path, KeyStore.revokedDir(dir).path]) { [weak self] in
            guard let self else { return }
            children.spawn { await self.reloadKeys() }
        }
        every(ms: 2_000) { agent in
            guard agent.keysWatcher?.watching != true || Clock.now() - agent.keysReadAt >= Self.keysUnwatchedMs else { return }
            agent.keysWatcher?.rearm()
            agent.reloadKeys()
        }
    }

    /// Reads `keys/` off the agent queue; only the outcome is applied on it.
    /// A call while a read is under way reads again after it (a key file just written is seen).
    func reloadKeys() {
        guard !readingKeys else { readKeysAgain = true; return }
        readingKeys = true
        keysReadAt = Clock.now()
        let dir = self.dir
        spawn {
            let result = await offQueue { () -> Result<[String: KeyFile], MeshError> in
                do throws(MeshError) { return .success(try KeyStore.loadTrustedFiles(in: dir)) } catch { return .failure(error) }
            }
            let revoked = await offQueue { try? KeyStore.loadRevoked(in: dir) }
            readingKeys = false
            if let revoked { revokedOnDisk = revoked }
            if case .success(let files) = result { applyKeyFiles(files) }
            applyTrusted(result.map { $0.mapValues(\.key) })
            if readKeysAgain { readKeysAgain = false; reloadKeys() }
        }
    }

    func applyTrusted(_ result: Result<[String: [UInt8]], MeshError>) {
        var trusted: [String: [UInt8]]
        switch result {
        case .success(let t): trusted = t
        case .failure(let error):
            // Cannot read is not "no keys": the trust set stays as it was until the folder reads again.
            if Clock.now() - lastKeyReadFailureLog >= 10_000 || lastKeyReadFailureLog == 0 {
                lastKeyReadFailureLog = Clock.now()
                Log.warn("\(error.message); keeping the trusted keys as they were")
            }
            return
        }
        trusted[config.name] = keyRing.keyPair.publicKey
        let before = keyRing.trusted
        guard trusted != before else { return }
        let revoked = node.replaceTrusted(trusted)
        for name in revoked { Log.notice("trust revoked (keys/\(name).pub removed or changed)", context: ["peer": name]) }
        for name in trusted.keys.sorted() where before[name] == nil { Log.info("now trusting", context: ["peer": name]) }
        armCoreTick()
        // Its open doors close too: tasks, channels and `logs` streams (off the agent queue: they do I/O).
        if !revoked.isEmpty {
            for io in relays.ends(touching: Set(revoked)) { io.abort() }
            let names = revoked, executor = self.executor, submitter = self.submitter, channels = self.channels
            spawn {
                for name in names {
                    await executor.revoke(name)
                    await submitter.nodeRevoked(name)
                    // Whatever else of its is open (idle, a slot exchange, a relay's own channel) ends too.
                    channels.close(name)
                }
            }
        }
    }

    func savePeersIfChanged() {
        let peers = core.rememberedPeers
        guard peers != lastSavedPeers else { return }
        lastSavedPeers = peers
        let state = self.state
        disk.write { () throws(MeshError) in try state.savePeers(peers) }
    }

    // MARK: - Leaving

    /// How long leaving waits for pending writes (incarnation, peers, overrides) when the disk hangs.
    static let leaveWriteWait: Duration = .seconds(5)

    /// Leaves the mesh, then ends `run()`. Running tasks finish first (bounded), and the mesh hears
    /// this node left once they are done; then pending writes land (unless the disk hangs), the
    /// background work still running is cancelled, and every connection still open ends.
    func leave() {
        guard !leaving else { return }
        leavingSignal.bump()
        spawn {
            await stopExtensions()
            perform(node.leave(now: Clock.now()))
            savePeersIfChanged()
            for t in timers { t.cancel() }
            coreTimer?.cancel()
            for s in signalSources { s.cancel() }
            control.stop()
            udp.stop()
            Log.info("left the mesh")
            let written = ChangeSignal()
            disk.whenDone { written.bump() }
            await written.wait(after: 0, timeout: Self.leaveWriteWait)
            // The rest is cancelled (a queued submission stays queued on disk for the next start);
            // then the connections it may wait on end.
            let channels = self.channels
            children.finish { channels.closeAll() }
        }
    }
}
