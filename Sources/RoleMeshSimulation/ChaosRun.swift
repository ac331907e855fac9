import RoleMeshCore

/// A randomized run of the real membership core under faults, FoundationDB style: one seed gives
/// a mesh (3 to 8 nodes, names, roles) and a sequence of faults — splits of every shape, links that
/// fail one way, pairs that cannot reach each other while both reach the rest, loss from 0 to 40 %,
/// crashes and restarts, pauses (SIGSTOP, a laptop lid), address changes, leaves and role changes —
/// and the invariants below are checked all along. The same seed replays the same run
/// (`rolemesh-bench chaos --seed N` prints it).
///
/// Invariants (protocol.md 7.1 states the rules they hold the core to):
/// - **Safety**: a member that every other running member has heard cleanly (no split, no blocked
///   link, at most 30 % loss each way) for `safetyMargin` is never declared dead at its current
///   incarnation; and while loss is at most 30 % and nothing else happens, no role moves.
/// - **Liveness**: within `splitBound` of a split, each side lists every running member of the other
///   side dead (or left), and a crashed member is dead everywhere within the same bound; within
///   `healBound` of the last fault, every view agrees (every running node alive, everyone else
///   dead or left, at the same incarnation everywhere).
/// - **Routes**: once a split is detected, within each side every node routes each role to the same
///   node, and never to a member of another side.
/// - **Calm**: two members that cannot reach each other (one or both ways) while both reach the
///   rest are, after `settle`, never suspected, never raise their incarnation, are listed alive
///   everywhere, and each lists the other as reached through a third member.
public struct ChaosRun {
    public struct Failure: Error, CustomStringConvertible {
        public let seed: UInt64
        public let time: Millis
        public let message: String
        /// The faults applied and checks made, one per line, with virtual times.
        public let log: [String]
        public var description: String {
            "seed \(seed), at \(time) ms: \(message)\n  replay: \(ChaosRun.replayCommand(seed: seed))"
        }
    }

    public struct Outcome {
        public let seed: UInt64
        public let failure: Failure?
        public let log: [String]
        /// The event trace (as `SimulatedMesh.trace`).
        public let trace: String
        public let nodes: Int
        public let virtualMs: Millis
        /// Split detection times measured (ms from the split until each side saw the other dead).
        public let splitDetections: [Millis]
    }

    public static func replayCommand(seed: UInt64) -> String {
        "swift build -c release && .build/release/rolemesh-bench chaos --seed \(seed)"
    }

    /// Bounds for a profile (protocol.md 7.1 states them): a split is seen on both sides within the
    /// profile's detection time plus `splitExtra`.
    public static func splitExtra(_ p: TimingProfile) -> Millis { p.name == "fast" ? 3_000 : 6_000 }
    public static func detection(_ p: TimingProfile) -> Millis { p.suspectAfter + p.suspicionTimeout }

    public static func run(seed: UInt64, profile: TimingProfile = .fast) -> Outcome {
        let runner = ChaosRunner(seed: seed, profile: profile)
        runner.run()
        return Outcome(seed: seed, failure: runner.failure, log: runner.log, trace: runner.mesh.trace(),
                       nodes: runner.names.count, virtualMs: runner.mesh.now, splitDetections: runner.splitDetections)
    }
}

final class ChaosRunner {
    let seed: UInt64
    let profile: TimingProfile
    var rng: SplitMix64
    let mesh: SimulatedMesh
    var names: [String] = []
    let roles = ["r0", "r1"]
    var log: [String] = []
    var failure: ChaosRun.Failure?
    var splitDetections: [Millis] = []
    /// Since when each node has been heard cleanly by every other running node (nil: not now).
    var cleanSince: [String: Millis] = [:]
    var checkedEvents = 0
    /// While set, the episode is loss at ≤ 30 % and nothing else: no role may move.
    var calmLossSince: Millis?

    var splitBound: Millis { ChaosRun.detection(profile) + ChaosRun.splitExtra(profile) }
    var healBound: Millis { 6 * profile.deadRetry + 4 * profile.suspectAfter }
    var safetyMargin: Millis { 5 * profile.suspectAfter }
    var settle: Millis { 10 * profile.suspectAfter + profile.refreshEvery }

    init(seed: UInt64, profile: TimingProfile) {
        self.seed = seed
        self.profile = profile
        rng = SplitMix64(seed: seed ^ 0x5eed_c4a0_5eed_c4a0)
        mesh = SimulatedMesh(seed: seed)
    }

    func note(_ s: String) { log.append("\(mesh.now) \(s)") }

    func fail(_ message: String) {
        guard failure == nil else { return }
        note("FAILED: \(message)")
        failure = ChaosRun.Failure(seed: seed, time: mesh.now, message: message, log: log)
    }

    func random(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }

    // MARK: - The run

    func run() {
        // Names decide ring positions, so each seed draws its own set.
        let n = random(3...8)
        let prefix = pick(["n", "node", "dev", "host", "m", "pi", "laptop"])
        var pool = Set<String>()
        while pool.count < n { pool.insert("\(prefix)\(random(0...99))") }
        names = pool.sorted().shuffled(using: &rng)
        var starts: [String] = []
        for (i, name) in names.enumerated() {
            var held: [String] = [], backup: [String: Int] = [:]
            for r in roles {
                if chance(0.3) { held.append(r) } else if chance(0.4) { backup[r] = random(1...2) }
            }
            mesh.addNode(name, profile: profile, seeds: i == 0 ? [] : [names[0]], roles: held, backup: backup)
            // In scenario syntax (Tests/RoleMeshSimulationTests/scenarios), so a seed replays as a file.
            starts.append("start \(name)" + (held.isEmpty ? "" : " roles=\(held.joined(separator: ","))")
                + (backup.isEmpty ? "" : " backup=" + backup.keys.sorted().map { "\($0):\(backup[$0]!)" }.joined(separator: ",")))
        }
        note("start \(names.joined(separator: " ")) profile \(profile.name)")
        for line in starts { note(line) }
        step(until: { self.converged() }, timeout: 10_000, what: "the mesh to form")
        let episodes = random(2...4)
        for _ in 0..<episodes where failure == nil {
            episode()
            guard failure == nil else { return }
            heal()
        }
    }

    /// Lets virtual time pass in ticks, checking the safety invariants after each.
    func step(for duration: Millis) {
        let end = mesh.now + duration
        while mesh.now < end, failure == nil {
            mesh.run(for: min(profile.tick, end - mesh.now))
            observe()
        }
    }

    @discardableResult
    func step(until condition: () -> Bool, timeout: Millis, what: String) -> Millis? {
        let start = mesh.now
        while failure == nil {
            if condition() { return mesh.now - start }
            if mesh.now - start >= timeout {
                fail("liveness: \(what) did not happen within \(timeout) ms: \(describeViews())")
                return nil
            }
            step(for: profile.tick)
        }
        return nil
    }

    var running: [String] { names.filter { mesh.isRunning($0) } }

    // MARK: - Invariants

    func observe() {
        let now = mesh.now
        let run = running
        for x in names {
            let clean = mesh.isRunning(x) && run.allSatisfy {
                $0 == x || (mesh.deliveryChance(from: x, to: $0) >= 0.7 && mesh.deliveryChance(from: $0, to: x) >= 0.7)
            }
            if !clean { cleanSince[x] = nil } else if cleanSince[x] == nil { cleanSince[x] = now }
        }
        let events = mesh.events
        while checkedEvents < events.count {
            let (time, observer, e) = events[checkedEvents]
            checkedEvents += 1
            if e.kind == .memberDead, let since = cleanSince[e.node], time - since >= safetyMargin,
               let held = mesh.nodes[observer]?.core.snapshot(now: now).first(where: { $0.name == e.node })?.incarnation,
               held == mesh.nodes[e.node]?.core.me.incarnation {
                fail("safety: \(observer) declared \(e.node) dead although every running member has heard it cleanly for \(time - since) ms")
            }
            if e.kind == .roleMoved, let since = calmLossSince, time >= since {
                fail("safety: \(observer) moved role \(e.role ?? "?") from \(e.from ?? "nobody") to \(e.to ?? "nobody") under loss alone")
            }
        }
    }

    func view(of observer: String) -> [MemberSnapshot] { mesh.nodes[observer]!.core.snapshot(now: mesh.now) }

    /// Every running node sees every running node alive and everyone else dead or left, and all
    /// agree on every member's incarnation.
    func converged() -> Bool {
        let run = running
        var incarnations: [String: UInt64] = [:]
        for o in run {
            for m in view(of: o) where !m.isSelf {
                let up = run.contains(m.name)
                if up && m.state != .alive { return false }
                if !up && (m.state == .alive || m.state == .suspect) && mesh.nodes[m.name]?.up != true { return false }
                if up {
                    if let i = incarnations[m.name], i != m.incarnation { return false }
                    incarnations[m.name] = m.incarnation
                }
            }
            if view(of: o).filter({ run.contains($0.name) }).count != run.count { return false }
        }
        return true
    }

    func describeViews() -> String {
        var out: [String] = []
        for o in running {
            let v = view(of: o).filter { !$0.isSelf }.map { "\($0.name)=\($0.state)\($0.via.map { "(via \($0))" } ?? "")#\($0.incarnation)" }
            out.append("\(o)#\(mesh.nodes[o]!.core.me.incarnation) sees [\(v.joined(separator: " "))]")
        }
        return out.joined(separator: "; ")
    }

    func route(_ role: String, from o: String) -> String? {
        Routing.route(role, heavy: false, members: view(of: o)).node
    }

    // MARK: - Faults

    func episode() {
        let kind = pick(["split", "split", "split", "pair", "oneway", "loss", "crash", "pause", "move", "leave", "roles"])
        switch kind {
        case "split": split()
        case "pair": pair(oneWay: false)
        case "oneway": pair(oneWay: true)
        case "loss": loss()
        case "crash": crash()
        case "pause": pause()
        case "move": move()
        case "leave": leave()
        default: changeRoles()
        }
    }

    /// Back to a whole, quiet network, and every view agrees within `healBound`.
    func heal() {
        mesh.heal()
        mesh.clearLinkLoss()
        mesh.loss = 0
        calmLossSince = nil
        for n in names where mesh.nodes[n]?.up != true && chance(0.7) {
            note("restart \(n)")
            mesh.restart(n)
        }
        note("heal")
        step(until: { self.converged() }, timeout: healBound, what: "every view to agree after the heal")
        step(for: profile.heartbeat * 5)
    }

    func split() {
        var nodes = running
        guard nodes.count >= 2 else { return }
        nodes.shuffle(using: &rng)
        let ways = nodes.count >= 4 && chance(0.25) ? 3 : 2
        var groups = Array(repeating: [String](), count: ways)
        for (i, n) in nodes.enumerated() { groups[i < ways ? i : random(0...(ways - 1))].append(n) }
        let loss = pick([0, 0, 0.05, 0.1])
        mesh.loss = loss
        mesh.partition(groups)
        note("split \(groups.map { $0.sorted().joined(separator: " ") }.joined(separator: " | ")) loss \(Int(loss * 100))%")
        let detected = step(until: {
            for (gi, g) in groups.enumerated() {
                for o in g where self.mesh.isRunning(o) {
                    let v = self.view(of: o)
                    for (hi, h) in groups.enumerated() where hi != gi {
                        for x in h where !v.contains(where: { $0.name == x && ($0.state == .dead || $0.state == .left) }) { return false }
                    }
                }
            }
            return true
        }, timeout: splitBound, what: "each side of the split to list the other side dead")
        guard let detected else { return }
        splitDetections.append(detected)
        note("split seen on every side after \(detected) ms")
        // Routes: the same within each side, never to the other side (given a moment to agree).
        step(until: {
            for g in groups {
                for r in self.roles {
                    let routes = Set(g.map { self.route(r, from: $0) ?? "-" })
                    if routes.count != 1 { return false }
                }
            }
            return true
        }, timeout: 2 * profile.suspectAfter, what: "the routes within each side of the split to agree")
        for g in groups {
            for r in roles {
                if let to = route(r, from: g[0]), !g.contains(to) {
                    fail("routes: \(g[0]) routes \(r) to \(to), on the other side of the split")
                }
            }
        }
        step(for: Millis(random(0...3)) * profile.suspectAfter)
    }

    /// Two members that cannot reach each other (both ways, or one way) while both reach the rest.
    func pair(oneWay: Bool) {
        let nodes = running
        guard nodes.count >= 3 else { return }
        let a = pick(nodes)
        let b = pick(nodes.filter { $0 != a })
        if oneWay {
            mesh.setLoss(from: a, to: b, 1)
            note("one-way: \(a) -> \(b) lost")
        } else {
            mesh.blockLink(a, b)
            note("block \(a) \(b)")
        }
        step(for: settle)
        guard failure == nil else { return }
        let incarnations = [a: mesh.nodes[a]!.core.me.incarnation, b: mesh.nodes[b]!.core.me.incarnation]
        let mark = mesh.events.count
        step(for: 4 * settle / 3)
        guard failure == nil else { return }
        for (t, o, e) in mesh.events[mark...] where (e.node == a || e.node == b) && e.kind != .memberUpdated && e.kind != .roleMoved {
            fail("calm: at \(t) ms \(o) saw \(e.kind.rawValue) \(e.node) while \(a) and \(b) cannot reach each other")
            return
        }
        for x in [a, b] where mesh.nodes[x]!.core.me.incarnation != incarnations[x] {
            fail("calm: \(x)'s incarnation rose from \(incarnations[x]!) to \(mesh.nodes[x]!.core.me.incarnation)")
            return
        }
        for o in running {
            for x in [a, b] where o != x {
                if view(of: o).first(where: { $0.name == x })?.state != .alive { fail("calm: \(o) does not list \(x) alive: \(describeViews())"); return }
            }
        }
        // The one that cannot hear the other reaches it through a third member.
        let deaf = oneWay ? [(b, a)] : [(a, b), (b, a)]
        for (o, x) in deaf where view(of: o).first(where: { $0.name == x })?.via == nil {
            // Only a node that watches x needs to know; one that never needed x's beats may not.
            if mesh.nodes[o]!.core.isWatching(x) { fail("calm: \(o) watches \(x), which it cannot hear"); return }
        }
    }

    func loss() {
        let p = pick([0.05, 0.1, 0.2, 0.3, 0.3, 0.4])
        mesh.loss = p
        note("loss \(Int(p * 100))%")
        if p <= 0.3 { calmLossSince = mesh.now + safetyMargin }
        step(for: Millis(random(20...60)) * profile.suspectAfter)
        calmLossSince = nil
    }

    func crash() {
        let nodes = running
        guard nodes.count >= 3 else { return }
        let x = pick(nodes)
        mesh.kill(x)
        note("kill \(x)")
        let t = step(until: { self.running.allSatisfy { self.view(of: $0).first { $0.name == x }?.state == .dead } },
                     timeout: splitBound, what: "every running member to list the crashed \(x) dead")
        if let t { note("\(x) dead everywhere after \(t) ms") }
    }

    func pause() {
        let x = pick(running)
        let d = Millis(random(1...30)) * 100
        mesh.pause(x, for: d)
        note("pause \(x) \(d) ms")
        step(for: d + profile.heartbeat)
    }

    func move() {
        let x = pick(running)
        mesh.move(x)
        note("move \(x) to \(mesh.nodes[x]!.address)")
        step(for: 10 * profile.heartbeat)
    }

    func leave() {
        let nodes = running
        guard nodes.count >= 3 else { return }
        let x = pick(nodes)
        mesh.leave(x)
        note("leave \(x)")
        step(until: { self.running.allSatisfy { self.view(of: $0).first { $0.name == x }?.state == .left } },
             timeout: 4 * profile.suspectAfter, what: "every running member to list \(x) left")
    }

    func changeRoles() {
        let x = pick(running)
        let r = pick(roles)
        let add = !(mesh.nodes[x]!.core.me.roles.contains(r))
        mesh.update(x) { hb in if add { hb.roles.append(r) } else { hb.roles.removeAll { $0 == r } } }
        note("roles \(x) \(add ? "add" : "remove") \(r)")
        step(until: {
            let routes = Set(self.running.map { self.route(r, from: $0) ?? "-" })
            return routes.count == 1
        }, timeout: 4 * profile.suspectAfter, what: "every node to route \(r) the same after \(x) changed its roles")
    }
}
