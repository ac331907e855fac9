import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTransport
import RoleMeshTaskChannel

/// The checks that ask others: this node's agent on its control socket, the seeds, and every
/// trusted node, each through the same authenticated hello a task connection starts with.
enum MeshChecks {
    /// How long the agent may take to answer `status`: a stopped agent must not hang doctor.
    static let agentSeconds: Double = 3

    /// The agent's view, or why there is none. `running`: its control socket accepts (the
    /// process exists, even if it does not answer).
    static func agent(_ node: NodeDirectory, _ config: NodeConfig) -> (check: DoctorCheck, status: StatusReply?, running: Bool) {
        let sock = node.socketPath
        guard ControlClient.isAlive(path: sock) else {
            return (.fail("agent", "no agent answers on \(sock)", fix: startCommand(node, config)), nil, false)
        }
        do {
            let c = try ControlClient(dir: node)
            try c.send(.status)
            let line = try c.firstLine(within: agentSeconds)
            try ControlClient.check(line)
            let s = try ControlClient.decode(StatusReply.self, line)
            let alive = s.members.filter { $0.state == "alive" }.count
            return (.pass("agent", "the agent answers on \(sock): \(s.members.count) members, \(alive) alive"), s, true)
        } catch {
            return (.fail("agent", "the agent on \(sock) did not answer within \(Int(agentSeconds)) s: \(error.message)",
                          fix: "if it was paused (Ctrl-Z, SIGSTOP) resume it with `fg` or `kill -CONT PID`; else restart it"), nil, true)
        }
    }

    /// The service's start command when one is installed, else the foreground one.
    static func startCommand(_ node: NodeDirectory, _ config: NodeConfig) -> String {
        let env = ProcessInfo.processInfo.environment
        for system in [false, true] {
            let unit = ServiceUnit(manager: ServiceUnit.platformManager, system: system, node: config.name, binary: "",
                                   dir: node.root.path, home: NodeDirectory.home.path)
            guard unit.manager == .systemd, FileManager.default.fileExists(atPath: unit.folder(environment: env) + "/" + unit.fileName) else { continue }
            return (system ? "sudo systemctl start " : "systemctl --user start ") + unit.name
        }
        return "rolemesh agent --dir \(node.root.path)   (or `rolemesh service install` to start it at login)"
    }

    /// What this node needs to prove itself and to check answers.
    struct Identity {
        var name: String
        var keyPair: Ed25519.KeyPair?
        var trusted: [String: [UInt8]]
        var local: WireAddress?
        var publicKeyPath: String
        /// This node's key was revoked (by whom, when): a refusal is that, not a missing key file.
        var revoked: StatusReply.Revoked? = nil
    }

    /// The fix for a revoked node: a person re-admits it; copying its key back is not the way.
    static func readmit(_ name: String) -> String {
        "if that was a mistake, an introducer admits this device again with a new key: `rolemesh invite \(name)` there, then `rolemesh join CODE` here in a new directory; this key stays revoked: its statements count nowhere"
    }

    /// Probes every address at once, each with the names that may answer there in order (a
    /// member's own; for a seed, the members the view has there, then every trusted node); each
    /// attempt ends within the handshake deadline.
    static func probeAll(_ targets: [WireAddress: [String]], _ me: Identity) async -> [WireAddress: TrustProbe.Result] {
        guard let keyPair = me.keyPair else { return [:] }
        return await withTaskGroup(of: (WireAddress, TrustProbe.Result).self) { group in
            for (a, names) in targets.prefix(64) {
                group.addTask { (a, await TrustProbe.probe(a, candidates: names, me: me.name, keyPair: keyPair, trusted: me.trusted, from: me.local)) }
            }
            var out: [WireAddress: TrustProbe.Result] = [:]
            for await (a, r) in group { out[a] = r }
            return out
        }
    }

    static func seedAddress(_ seed: String) -> WireAddress? { SocketAddress.resolve(seed) }

    static func memberAddress(_ m: MemberStatus) -> WireAddress? {
        guard let (host, port) = NodeConfig.splitHostPort(m.address) else { return nil }
        return WireAddress(host: host, port: port)
    }

    /// One line per seed: it resolves, this machine has a route to it (all UDP can show without a
    /// key the seed trusts), and its task port completes the authenticated hello.
    static func seed(_ seed: String, _ config: NodeConfig, _ me: Identity, _ probes: [WireAddress: TrustProbe.Result]) -> DoctorCheck {
        let name = "seed \(seed)"
        let toml = "node.toml"
        guard let address = seedAddress(seed) else {
            return .fail(name, "\(seed) does not resolve", fix: "check the name (`getent hosts \(NodeConfig.splitHostPort(seed)?.host ?? seed)`), or put the seed's IP address in seeds in \(toml)")
        }
        if address == me.local { return .pass(name, "is this node itself") }
        guard SocketAddress.localIP(toward: address) != nil else {
            return .fail(name, "this machine has no route to \(address)", fix: "check the network: `ip route get \(address.host)`")
        }
        guard let result = probes[address] else {
            return .pass(name, "\(address) is routable; TCP not checked: no usable secret key (see above)")
        }
        return trust(result, name, at: address, label: "seed \(address)", expected: nil, me)
            ?? .pass(name, "\(address) answers as \(result.peer ?? "?"), which trusts this node (authenticated hello)")
    }

    /// One line per trusted node: it is in the agent's view, and when up it answers this
    /// node's authenticated hello (trust both ways).
    static func trustedNode(_ node: String, _ status: StatusReply, _ me: Identity, _ probes: [WireAddress: TrustProbe.Result]) -> DoctorCheck {
        let name = "node \(node)"
        guard let m = status.members.first(where: { $0.name == node }) else {
            if let r = me.revoked {
                return .fail(name, "\(node) is not in the agent's view: \(me.name) was revoked by \(r.by) at \(r.at)", fix: readmit(me.name))
            }
            return .fail(name, "\(node) is trusted here but not in the agent's view: nothing was heard from it",
                         fix: "on \(node), trust this node (copy \(me.publicKeyPath) into its keys/) and check its agent runs; or add its HOST:PORT to seeds in node.toml")
        }
        let heard = "last heard \(m.lastHeardMs / 1000) s ago"
        switch m.state {
        case "left": return .pass(name, "\(node) left the mesh (its agent was stopped on purpose)")
        case "dead":
            return .fail(name, "\(node) is dead in the view (\(heard) at \(m.address))",
                         fix: "start its agent (`rolemesh doctor` there says why it is not running), or check the network between here and \(m.address)")
        default: break
        }
        guard let address = memberAddress(m), let result = probes[address] else {
            return .pass(name, "\(node) is \(m.state) at \(m.address); trust not checked: no usable secret key here")
        }
        return trust(result, name, at: address, label: "\(node) (\(m.state) at \(m.address))", expected: node, me)
            ?? .pass(name, "\(node) is \(m.state) at \(m.address) and trusts this node (authenticated hello)")
    }

    /// nil when `result` proves trust both ways (by the expected node), else the failure.
    static func trust(_ result: TrustProbe.Result, _ name: String, at address: WireAddress, label: String, expected: String?,
                      _ me: Identity) -> DoctorCheck? {
        let copyOurs = "copy \(me.publicKeyPath) into the keys/ folder of \(expected ?? "the seed's node") (e.g. `scp \(me.publicKeyPath) \(address.host):.rolemesh/keys/`)"
        if let r = me.revoked {
            switch result {
            case .refused, .notAccepted:
                return .fail(name, "\(label) refuses this node: \(me.name) was revoked by \(r.by) at \(r.at)", fix: readmit(me.name))
            default: break
            }
        }
        switch result {
        case .trusted(let peer) where expected == nil || peer == expected: return nil
        case .trusted(let peer):
            return .fail(name, "\(address) answers as \(peer), not \(expected!)", fix: "\(expected!) has moved: restart its agent so it announces its new address")
        case .refused:
            return .fail(name, "\(label) refuses this node: \(me.name)'s key is not in its keys/", fix: copyOurs)
        case .notAccepted:
            // The handshake names no one to a client it does not accept, so which side lacks the
            // other's key cannot be told apart from here.
            if let expected {
                return .fail(name, "\(label) does not accept this node: its keys/\(me.name).pub is missing or another key, or keys/\(expected).pub here is not the key it holds",
                             fix: "\(copyOurs); and copy \(expected)'s current keys/\(expected).pub into the keys/ folder here")
            }
            return .fail(name, "no node trusted here answers at \(address) and accepts this node",
                         fix: "\(copyOurs); and copy that node's keys/NAME.pub into the keys/ folder here")
        case .otherVersion:
            return .fail(name, "\(label) speaks another version of the task channel", fix: "run the same RoleMesh release on both devices")
        case .unreachable(let why):
            return .fail(name, "nothing answers on TCP \(address): \(why)",
                         fix: expected == nil ? "start the agent there (`rolemesh agent`), or correct seeds in node.toml"
                                              : "check that nothing blocks TCP port \(address.port) between here and \(expected!)")
        }
    }
}

extension TrustProbe.Result {
    var peer: String? { if case .trusted(let p) = self { p } else { nil } }
}
