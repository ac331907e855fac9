import RoleMeshCore

/// Runs the real gossip node for many nodes over an in-memory network in virtual time.
/// Loss, delay and partitions are injected; every run with the same seed is identical: the core
/// and this engine iterate members and nodes in name order, never in (per-process seeded)
/// Dictionary or Set order, and all randomness comes from `SplitMix64` streams of the seed.
///
/// Two ways to run a node:
/// - **the wire** (default): each node is a `GossipNode` with its own Ed25519 key, exactly as the
///   agent runs it — datagrams are encoded, sealed per pair of devices, proven per address with
///   hellos, opened, decoded and signature-checked; only the socket and the clock are simulated;
/// - **the core** (`wire: false`): the membership core alone, handed decoded datagrams and trusting
///   every signature, for meshes of thousands where N² pair keys and decoded copies of every record
///   would not fit (`rolemesh-bench scale`, the largest simulation tests).
public final class SimulatedMesh {
    public struct NodeHandle {
        public let name: String
        public let address: WireAddress
        public var core: Membership
        /// The whole gossip node (wire mode); its `membership` is `core`.
        public var gossip: GossipNode?
        public var up = true
        /// While set, the node's process is "suspended": no ticks, no receiving.
        public var pausedUntil: Millis?
        /// Raised on every (re)start: ticks scheduled for an earlier process are ignored.
        var epoch = 0
        /// Turns the views this process reports as changed into `role-moved` events, as the agent does.
        var routes = RouteWatcher()
        var seeds: [String] = []
    }

    public private(set) var now: Millis = 0
    public var loss: Double = 0
    public var delay: ClosedRange<Millis> = 1...5
    public private(set) var nodes: [String: NodeHandle] = [:]
    public private(set) var delivered = 0
    /// Datagrams and beats the nodes sent, delivered or not (to a dead node, lost, partitioned).
    public private(set) var sent = 0
    /// The same, by kind ("beat", or the datagram kind): where the traffic goes.
    public private(set) var sentByKind: [String: Int] = [:]
    public private(set) var events: [(Millis, String, MeshEvent)] = []
    /// Off: no events are recorded and routes are not watched (a snapshot per view change would
    /// dominate a 1000-node run); `role-moved` events after turning it back on compare with the
    /// last view watched.
    public var recordEvents = true
    /// Off: `.viewChanged` is not turned into `role-moved` events (each one reads the node's whole
    /// view: O(N) per change, which a 10,000-node run cannot afford). Events are still recorded.
    public var watchRoutes = true

    let crypto = TrustingCrypto()
    /// Wire mode: every device's key (kept across restarts: a restart is the same device).
    public let wire: Bool
    var keys: [String: Ed25519.KeyPair] = [:]
    /// One for all nodes: nodes that agree on who is alive share their rings (and every name's hashes).
    let ringCache = RingCache()
    var rng: SplitMix64
    var byAddress: [WireAddress: String] = [:]
    var queue = EventHeap()
    var groups: [String: Int] = [:]       // partition group per node; absent = group 0
    var sequence: UInt64 = 0
    var blocked: Set<[String]> = []
    var linkLoss: [[String]: Double] = [:]   // [from, to] -> loss on that direction only

    public init(seed: UInt64 = 1, wire: Bool = true) { rng = SplitMix64(seed: seed); self.wire = wire }

    /// Adds and starts a node at 10.x.y.z:7946 (addresses are labels; nothing leaves the process).
    /// A name added again is the same machine restarted: same address, a fresh process.
    @discardableResult
    public func addNode(_ name: String, profile: TimingProfile = .lan, seeds: [String] = [],
                        roles: [String] = [], backup: [String: Int] = [:], incarnation: UInt64 = 1) -> WireAddress {
        let old = nodes[name]
        let i = nodes.count + 1
        let address = old?.address
            ?? WireAddress(ip: [10, UInt8((i >> 16) & 0xff), UInt8((i >> 8) & 0xff), UInt8(i & 0xff)], port: 7946)
        let bootstrap = seeds.compactMap { nodes[$0]?.address }
        let config = Membership.Config(name: name, address: address, incarnation: incarnation, roles: roles, backup: backup,
                                       profile: profile, bootstrap: bootstrap)
        let epoch = (old?.epoch ?? 0) + 1
        byAddress[address] = name
        if wire {
            let key = keys[name] ?? Ed25519.KeyPair(seed: (0..<4).flatMap { _ in withUnsafeBytes(of: rng.next()) { Array($0) } })
            keys[name] = key
            let trusted = keys.mapValues(\.publicKey)
            // Nonces and challenges from the run's seed, so one seed still gives one run.
            let random = SeededBytes(seed: rng.next())
            let node = GossipNode(config: config, keyPair: key, trusted: trusted, seed: rng.next(), now: now,
                                  random: random.take, ringCache: ringCache)
            // Everyone already running trusts the new device (a key copied into every keys/).
            if old == nil { for other in nodes.keys.sorted() { nodes[other]!.gossip?.replaceTrusted(trusted) } }
            nodes[name] = NodeHandle(name: name, address: address, core: node.membership, gossip: node, epoch: epoch, seeds: seeds)
            perform(node.start(now: now), by: name)
        } else {
            let core = Membership(config: config, crypto: crypto, seed: rng.next(), now: now, ringCache: ringCache)
            nodes[name] = NodeHandle(name: name, address: address, core: core, epoch: epoch, seeds: seeds)
            crypto.trusted.insert(name)
            perform(core.start(now: now), by: name)
        }
        schedule(at: now + Millis.random(in: 0..<profile.tick, using: &rng), .tick(name, epoch: epoch))
        return address
    }

    /// Adds and starts `names` as a mesh that has run quietly for a while: every node alive and known
    /// to every other (`Membership.assumeConverged`), with no joining traffic. For runs at thousands
    /// of nodes, where joining one by one takes hours of wall time; smaller runs join for real.
    public func addConvergedMesh(_ names: [String], profile: TimingProfile = .lan) {
        precondition(!wire, "a converged start is for core mode (thousands of nodes)")
        for name in names { addNode(name, profile: profile) }
        let cores = names.map { nodes[$0]!.core }
        for core in cores { core.assumeConverged(with: cores, now: now) }
    }

    /// The process is replaced (killed first if it still runs) by a new one that kept its state:
    /// incarnation raised by one (or `incarnation` if given: state lost), same roles, and the
    /// peers it remembered as well as its seeds to rejoin through.
    public func restart(_ name: String, incarnation: UInt64? = nil) {
        guard let n = nodes[name] else { return }
        let me = n.core.me
        let remembered = n.core.rememberedPeers.keys.sorted()
        addNode(name, profile: n.core.profile, seeds: n.seeds + remembered.filter { !n.seeds.contains($0) },
                roles: me.roles, backup: me.backup, incarnation: incarnation ?? me.incarnation + 1)
    }

    /// A local change to a running node's heartbeat (roles, backups, draining), as the agent
    /// would make after `rolemesh roles add`.
    public func update(_ name: String, _ change: (inout Heartbeat) -> Void) {
        guard let n = nodes[name], n.up else { return }
        if let g = n.gossip { perform(g.updateSelf(now: now, change), by: name) } else { perform(n.core.updateSelf(now: now, change), by: name) }
    }

    /// SIGKILL: the node stops at once and says nothing.
    public func kill(_ name: String) { nodes[name]?.up = false }

    /// SIGSTOP for `duration`, then SIGCONT.
    public func pause(_ name: String, for duration: Millis) { nodes[name]?.pausedUntil = now + duration }

    public func leave(_ name: String) {
        guard let n = nodes[name] else { return }
        if let g = n.gossip { perform(g.leave(now: now), by: name) } else { perform(n.core.leave(now: now), by: name) }
        nodes[name]?.up = false
    }

    /// Splits the mesh: nodes only reach nodes in the same group.
    public func partition(_ parts: [[String]]) {
        groups = [:]
        for (g, part) in parts.enumerated() { for n in part { groups[n] = g + 1 } }
    }
    public func heal() { groups = [:]; blocked = [] }

    /// Drops everything between two nodes, both ways, while each still reaches the others.
    public func blockLink(_ a: String, _ b: String) { blocked.insert([a, b]); blocked.insert([b, a]) }
    public func unblockLink(_ a: String, _ b: String) { blocked.remove([a, b]); blocked.remove([b, a]) }

    /// Loss on one direction of one link (`from` → `to`), on top of the global `loss`; 0 clears it.
    public func setLoss(from: String, to: String, _ p: Double) { linkLoss[[from, to]] = p > 0 ? p : nil }
    public func clearLinkLoss() { linkLoss = [:] }

    /// The extra loss on one direction of one link (0 when none).
    public func linkLoss(from: String, to: String) -> Double { linkLoss[[from, to]] ?? 0 }

    /// The device changes address (another network): the new one is where it is reached and where
    /// its datagrams come from; it announces it, as the agent does when it sees its address change.
    public func move(_ name: String) {
        guard let n = nodes[name] else { return }
        moves += 1
        let i = nodes.count + 1000 * moves
        let address = WireAddress(ip: [10, 200, UInt8((i >> 8) & 0xff), UInt8(i & 0xff)], port: 7946)
        byAddress[n.address] = nil
        byAddress[address] = name
        nodes[name] = NodeHandle(name: name, address: address, core: n.core, gossip: n.gossip, up: n.up, pausedUntil: n.pausedUntil,
                                 epoch: n.epoch, routes: n.routes, seeds: n.seeds)
        guard n.up else { return }
        if let g = n.gossip {
            // As the agent does when its address changes: prove every peer again, then announce.
            g.forgetProofs()
            perform(g.updateSelf(now: now, announce: true) { $0.address = address }, by: name)
        } else {
            perform(n.core.updateSelf(now: now) { $0.address = address }, by: name)
        }
    }
    var moves = 0

    public func run(for duration: Millis) { run(until: now + duration) }

    public func run(until end: Millis) {
        while let next = queue.peekTime, next <= end {
            let (time, event) = queue.pop()!
            now = time
            handle(event)
        }
        now = end
    }

    /// Runs until `condition` holds, checking every `step`; returns the time it took, or nil.
    public func run(until condition: () -> Bool, step: Millis = 100, timeout: Millis) -> Millis? {
        let start = now
        while now - start < timeout {
            if condition() { return now - start }
            run(for: step)
        }
        return condition() ? now - start : nil
    }

    // MARK: - Views

    public func state(of node: String, seenBy observer: String) -> MemberState? {
        nodes[observer]?.core.state(of: node)
    }

    /// The member `observer` reaches `node` through, or nil (direct).
    public func via(of node: String, seenBy observer: String) -> String? {
        nodes[observer]?.core.via(node)
    }

    public var liveNodes: [String] { nodes.values.filter { $0.up }.map(\.name).sorted() }

    /// Up and not suspended now.
    public func isRunning(_ name: String) -> Bool {
        guard let n = nodes[name], n.up else { return false }
        return n.pausedUntil.map { now >= $0 } ?? true
    }

    /// Whether a connection from `a` to `b` would get through now (both up, same side of any
    /// partition, the link not blocked): what a TCP exchange beside the gossip needs.
    public func canReach(_ a: String, _ b: String) -> Bool {
        guard let x = nodes[a], let y = nodes[b], x.up, y.up else { return false }
        return (groups[a] ?? 0) == (groups[b] ?? 0) && !blocked.contains([a, b])
    }

    /// The chance a datagram from `a` reaches `b` now: 0 across a partition or a blocked link, else
    /// what the global loss and the link's own loss leave.
    public func deliveryChance(from a: String, to b: String) -> Double {
        guard (groups[a] ?? 0) == (groups[b] ?? 0), !blocked.contains([a, b]) else { return 0 }
        return (1 - loss) * (1 - linkLoss(from: a, to: b))
    }

    /// True when every live node sees `node` in `state`.
    public func everyone(sees node: String, as state: MemberState, excluding: Set<String> = []) -> Bool {
        liveNodes.allSatisfy { $0 == node || excluding.contains($0) || self.state(of: node, seenBy: $0) == state }
    }

    /// Recorded events as text, one per line: virtual ms, observer, event, node, then role, from
    /// and to when set. Two runs with the same seed give the same bytes.
    public func trace(from start: Int = 0) -> String {
        var out = ""
        for (time, observer, e) in events[start...] {
            out += "\(time) \(observer) \(e.kind.rawValue) \(e.node)"
            if let r = e.role { out += " role=\(r)" }
            if let f = e.from { out += " from=\(f)" }
            if let t = e.to { out += " to=\(t)" }
            out += "\n"
        }
        return out
    }

    // MARK: - Engine

    enum Event {
        case tick(String, epoch: Int)
        case deliver(Datagram, from: WireAddress, to: String)
        /// A beat; the sender is what its pair key would prove.
        case deliverBeat(Beat, sender: String, to: String)
        /// Wire mode: a sealed envelope, as a socket would hand it over.
        case deliverBytes([UInt8], from: WireAddress, to: String)
    }

    func schedule(at time: Millis, _ e: Event) {
        sequence += 1
        queue.push(time: time, seq: sequence, e)
    }

    func handle(_ e: Event) {
        switch e {
        case .tick(let name, let epoch):
            guard var n = nodes[name], n.up, n.epoch == epoch else { return }
            if let until = n.pausedUntil {
                if now < until { schedule(at: until, .tick(name, epoch: epoch)); return }
                n.pausedUntil = nil
                nodes[name] = n
            }
            if let g = n.gossip { perform(g.tick(now: now), by: name) } else { perform(n.core.tick(now: now), by: name) }
            schedule(at: now + n.core.profile.tick, .tick(name, epoch: epoch))
        case .deliver(let d, let from, let to):
            guard let n = nodes[to], n.up else { return }
            if let until = n.pausedUntil, now < until {
                schedule(at: until, .deliver(d, from: from, to: to))   // waits in the socket buffer
                return
            }
            delivered += 1
            perform(n.core.receive(d, from: from, now: now), by: to)
        case .deliverBeat(let b, let sender, let to):
            guard let n = nodes[to], n.up else { return }
            if let until = n.pausedUntil, now < until {
                schedule(at: until, .deliverBeat(b, sender: sender, to: to))
                return
            }
            delivered += 1
            perform(n.core.receive(b, sender: sender, now: now), by: to)
        case .deliverBytes(let bytes, let from, let to):
            guard let n = nodes[to], n.up, let g = n.gossip else { return }
            if let until = n.pausedUntil, now < until {
                schedule(at: until, .deliverBytes(bytes, from: from, to: to))
                return
            }
            delivered += 1
            perform(g.receive(bytes, from: from, now: now), by: to)
        }
    }

    /// Wire mode: what one input of a node's `GossipNode` asks for.
    func perform(_ out: GossipNode.Output, by name: String) {
        guard let sender = nodes[name] else { return }
        for d in out.datagrams {
            precondition(d.bytes.count <= Envelope.maxSize, "datagram over the MTU budget")
            sent += 1
            sentByKind[Self.kind(of: d.bytes, gossip: sender.gossip!), default: 0] += 1
            guard let (target, lag) = transit(from: name, to: d.to) else { continue }
            schedule(at: now + lag, .deliverBytes(d.bytes, from: sender.address, to: target))
        }
        if recordEvents { for e in out.events { events.append((now, name, e)) } }
    }

    /// What an envelope carries, for `sentByKind` ("beat", "hello", or the datagram kind).
    static func kind(of bytes: [UInt8], gossip: GossipNode) -> String {
        switch Envelope.open(bytes, keys: gossip.envelopes.keys) {
        case .opened(.beat, _, _): return "beat"
        case .opened(.hello, _, _): return "hello"
        case .opened(.gossip, let plain, _) where plain.count > 1:
            return DatagramKind(rawValue: plain[1]).map { "\($0)" } ?? "gossip"
        default: return "other"
        }
    }

    func perform(_ actions: [MembershipAction], by name: String) {
        guard let sender = nodes[name] else { return }
        for a in actions {
            switch a {
            case .send(let d, let to):
                precondition(d.encodedSize <= Wire.maxDatagramSize, "datagram over the MTU budget")
                sent += 1
                sentByKind["\(d.kind)", default: 0] += 1
                guard let (target, lag) = transit(from: name, to: to) else { continue }
                schedule(at: now + lag, .deliver(d, from: sender.address, to: target))
            case .beat(let b, let to):
                sent += 1
                sentByKind["beat", default: 0] += 1
                guard let (target, lag) = transit(from: name, to: to) else { continue }
                schedule(at: now + lag, .deliverBeat(b, sender: name, to: target))
            case .event(let e):
                if recordEvents { events.append((now, name, e)) }
            case .viewChanged:
                guard recordEvents, watchRoutes else { continue }
                for e in nodes[name]!.routes.observe(sender.core.snapshot(now: now)) { events.append((now, name, e)) }
            case .persistIncarnation, .log:
                break
            }
        }
    }
}

extension SimulatedMesh {
    /// Where a datagram from `name` to `address` lands and after how long, or nil if the network
    /// (partitions, blocked links, loss) swallows it.
    func transit(from name: String, to address: WireAddress) -> (String, Millis)? {
        guard let target = byAddress[address], target != name else { return nil }
        if (groups[name] ?? 0) != (groups[target] ?? 0) { return nil }
        if !blocked.isEmpty, blocked.contains([name, target]) { return nil }
        if loss > 0, Double.random(in: 0..<1, using: &rng) < loss { return nil }
        if !linkLoss.isEmpty, let p = linkLoss[[name, target]], Double.random(in: 0..<1, using: &rng) < p { return nil }
        return (target, Millis.random(in: delay, using: &rng))
    }
}

/// A stream of bytes from a seed: the nonces and challenges of a simulated node's `SecureGossip`.
final class SeededBytes {
    var rng: SplitMix64
    init(seed: UInt64) { rng = SplitMix64(seed: seed) }
    func take(_ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n + 8)
        while out.count < n { withUnsafeBytes(of: rng.next()) { out += $0 } }
        return Array(out.prefix(n))
    }
}

/// Core mode: signatures are not the point of a simulation of thousands: every listed node is
/// trusted, every signature valid. (Wire mode and the unit tests check real Ed25519.)
final class TrustingCrypto: StatementCrypto {
    var trusted: Set<String> = []
    static let zeroSignature = [UInt8](repeating: 0, count: Wire.signatureSize)
    func sign(_ message: [UInt8]) -> [UInt8] { Self.zeroSignature }
    func verify(signature: [UInt8], message: [UInt8], origin: String) -> Bool? { trusted.contains(origin) ? true : nil }
    func isTrusted(_ origin: String) -> Bool { trusted.contains(origin) }
}

/// A binary min-heap of timed events; ties keep insertion order.
struct EventHeap {
    private var items: [(time: Millis, seq: UInt64, event: SimulatedMesh.Event)] = []
    var peekTime: Millis? { items.first?.time }

    mutating func push(time: Millis, seq: UInt64, _ e: SimulatedMesh.Event) {
        items.append((time, seq, e))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard less(i, p) else { break }
            items.swapAt(i, p); i = p
        }
    }

    mutating func pop() -> (Millis, SimulatedMesh.Event)? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, less(l, m) { m = l }
            if r < items.count, less(r, m) { m = r }
            if m == i { break }
            items.swapAt(i, m); i = m
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        (items[a].time, items[a].seq) < (items[b].time, items[b].seq)
    }
}
