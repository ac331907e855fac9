import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// `rolemesh doctor`: why this device cannot see the others, one line per check, each failure
/// with its fix. Every check is bounded in time (the agent 3 s, each probe its handshake's 5 s,
/// all probes at once), so doctor never hangs on a stopped agent or a silent seed.
public enum Doctor {
    public static func run(_ node: NodeDirectory) async -> DoctorReport {
        var checks: [DoctorCheck] = []
        let (configCheck, parsed) = LocalChecks.config(node)
        checks.append(configCheck)
        guard let config = parsed else {
            // Without node.toml nothing else can be named; the clock needs nothing.
            return DoctorReport(checks: checks + [LocalChecks.clock(node)])
        }
        let (secretCheck, keyPair) = LocalChecks.secret(node, config.name)
        let agent = MeshChecks.agent(node, config)
        let (listenCheck, local) = LocalChecks.address(config, node, agentRunning: agent.running)
        checks += [secretCheck, listenCheck, agent.check]

        var trusted: [String: [UInt8]] = [:]
        var keysRead = true
        do { trusted = try KeyStore.loadTrusted(in: node) } catch {
            keysRead = false
            checks.append(.fail("keys", error.message, fix: "chmod 700 \(node.keysDir.path) (and make it yours)"))
        }
        let others = trusted.keys.filter { $0 != config.name }.sorted()
        if keysRead, others.isEmpty {
            checks.append(.pass("keys", "no other device is trusted yet (this node runs alone): add one with `rolemesh invite NAME` here and `rolemesh join CODE` on it, or copy its keys/NAME.pub into \(node.keysDir.path)"))
        }
        // Revoked: say so, and every refusal below is that, not a key to copy back.
        let revoked = agent.status?.revoked ?? keyPair.flatMap { Self.revocation(of: $0.publicKey, in: node) }
        if let revoked {
            checks.append(.fail("trust", "\(config.name) was revoked by \(revoked.by) at \(revoked.at): the other devices no longer trust it",
                                fix: MeshChecks.readmit(config.name)))
        }
        let me = MeshChecks.Identity(name: config.name, keyPair: keyPair, trusted: trusted, local: local,
                                     publicKeyPath: node.publicKey(config.name).path, revoked: revoked)
        // Seeds, and every trusted node the view has up: one round of probes for all of them.
        // The handshake is encrypted to the key of the node meant, so each address is tried with
        // the names that may answer there: a member's own; for a seed, the members the view has
        // at that address first, then every other trusted node.
        let members = (agent.status?.members ?? []).filter { others.contains($0.name) }
        var targets: [WireAddress: [String]] = [:]
        for m in members where m.state == "alive" || m.state == "suspect" {
            if let a = MeshChecks.memberAddress(m) { targets[a, default: []].append(m.name) }
        }
        for a in config.seeds.compactMap(MeshChecks.seedAddress) where a != local {
            let there = members.filter { MeshChecks.memberAddress($0) == a }.map(\.name)
            var names = targets[a] ?? []
            for n in there + others where !names.contains(n) { names.append(n) }
            targets[a] = names
        }
        let probes = await MeshChecks.probeAll(targets, me)

        checks += config.seeds.map { MeshChecks.seed($0, config, me, probes) }
        if let status = agent.status {
            checks += others.map { MeshChecks.trustedNode($0, status, me, probes) }
            // node.toml's `forward` listeners that are not open (a taken port): retried by the agent.
            checks += status.forwards.filter { $0.error != nil }.map {
                .fail("forward \($0.service)", $0.error!, fix: "free \($0.listen) (see `ss -ltnp`), or give the entry another port in \(node.configFile.path): \"\($0.service)=PORT\"")
            }
        }
        checks.append(LocalChecks.clock(node))
        return DoctorReport(checks: checks)
    }

    /// The revocation of this node's key that its agent held last (`state/trust.json`).
    static func revocation(of key: [UInt8], in node: NodeDirectory) -> StatusReply.Revoked? {
        TrustLedger(TrustStore.load(node)).revocation(of: key).map { .init(by: Agent.signerText($0), at: Agent.rfc3339(ms: $0.time)) }
    }
}
