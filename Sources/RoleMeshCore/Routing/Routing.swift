/// Where a task for a role goes: a pure function of the membership view, so every node
/// that holds the same view makes the same choice. The rules (README "Routing rules"):
///
/// 1. Candidates are the members that are up (`alive`, or only `suspect`: a suspicion does not
///    move a role, confirmed death does), not draining, and hold the role actively. A member that
///    holds (or backs up) a role an introducer did not grant it is skipped: `not granted`.
/// 2. If there are none, the up, non-draining backups, lowest priority number first.
/// 3. A heavy task skips nodes on battery or throttled — a holder unfit for heavy work counts as
///    absent, so heavy work falls to the backups; if nothing fit is left, no node is chosen.
/// 4. Among candidates the highest `Score` wins; ties break by name.
/// 5. (README rule 6.) A connection to a service `ROLE/NAME` (`routeService`): the same rules
///    over the nodes that offer it and report it healthy; the others count as absent, skipped with `service unhealthy`
///    and the check's detail, or `does not offer ROLE/NAME`.
///
/// `grants`: the roles each member's key was granted (`keys/NAME.pub`'s `# granted:` line); a
/// member not in it was granted every role.
///
/// A caller may also exclude nodes, each with a reason (the submitter: nodes a run was lost on,
/// nodes it could not reach, nodes whose address it does not know): they count as absent, like a
/// dead holder, and are listed in `skipped` with that reason.
public struct RouteDecision: Equatable, Sendable {
    public struct Skip: Equatable, Sendable {
        public var node: String
        public var reason: String
    }
    public var role: String
    public var heavy: Bool
    public var node: String?
    public var skipped: [Skip]
    /// `ROLE/NAME` when this is a connection's route to a service (rule 5).
    public var service: String?

    /// One sentence for a person when no node can take the role.
    public var failureSentence: String {
        if let service {
            if skipped.isEmpty { return "no node offers \(service)" }
            return "no node can serve \(service) now (" + skipped.map { "\($0.node): \($0.reason)" }.joined(separator: "; ") + ")"
        }
        if skipped.isEmpty { return "no node holds or backs up role \(role)" }
        let why = skipped.map { "\($0.node): \($0.reason)" }.joined(separator: "; ")
        return "no node can take \(heavy ? "heavy " : "")\(role) now (\(why))"
    }
}

public enum Routing {
    /// `excluding`: node → why it must not get this task (a phrase that reads after the node's name,
    /// e.g. "was lost mid-run"); such a node is skipped with that reason before any other.
    public static func route(_ role: String, heavy: Bool, members: [MemberSnapshot],
                             excluding: [String: String] = [:], grants: GrantTable = [:]) -> RouteDecision {
        route(role, heavy: heavy, members: members, excluding: excluding, unfit: [:], grants: grants)
    }

    /// Rule 5: where a new connection to `service` (`ROLE/NAME`) goes. Skips say why, as for tasks;
    /// a node up and granted but not serving it healthy reads `service unhealthy: DETAIL`.
    public static func routeService(_ service: String, members: [MemberSnapshot],
                                    excluding: [String: String] = [:], grants: GrantTable = [:]) -> RouteDecision {
        guard let (role, _) = ServiceName.split(service) else {
            return RouteDecision(role: service, heavy: false, node: nil, skipped: [], service: service)
        }
        var unfit: [String: String] = [:]
        for m in members where m.roles.contains(role) || m.backup[role] != nil {
            guard let offer = m.services.first(where: { $0.service == service }) else {
                unfit[m.name] = "does not offer \(service)"
                continue
            }
            switch offer.health {
            case .healthy: break
            case .starting: unfit[m.name] = "\(serviceUnhealthy): starting"
            case .unhealthy: unfit[m.name] = "\(serviceUnhealthy): \(offer.detail ?? "its check fails")"
            }
        }
        // Nobody offers it at all: no candidates, so the sentence says so rather than listing holders.
        if !members.contains(where: { m in m.services.contains { $0.service == service } }) {
            return RouteDecision(role: role, heavy: false, node: nil, skipped: [], service: service)
        }
        var d = route(role, heavy: false, members: members, excluding: excluding, unfit: unfit, grants: grants)
        d.service = service
        return d
    }

    /// The reason of a node whose service fails its check (rule 5).
    public static let serviceUnhealthy = "service unhealthy"

    /// `unfit`: node → why it cannot take this now, checked after its state (a dead node reads
    /// `dead`, not `service unhealthy`).
    static func route(_ role: String, heavy: Bool, members: [MemberSnapshot],
                      excluding: [String: String], unfit: [String: String], grants: GrantTable) -> RouteDecision {
        var skipped: [RouteDecision.Skip] = []
        let holders = members.filter { $0.roles.contains(role) }.sorted { $0.name < $1.name }
        let backups = members.filter { $0.backup[role] != nil && !$0.roles.contains(role) }
            .sorted { ($0.backup[role]!, $0.name) < ($1.backup[role]!, $1.name) }

        // Rules 1 and 3: who among the holders can take it.
        var fitHolders: [MemberSnapshot] = []
        // Only what an introducer granted counts: a member announcing another role is no candidate for it.
        var excluding = excluding
        for m in holders where excluding[m.name] == nil && !grants.allows(m.name, role, backup: false) { excluding[m.name] = notGranted }
        for m in backups where excluding[m.name] == nil && !grants.allows(m.name, role, backup: true) { excluding[m.name] = notGranted }
        for m in holders {
            if let why = unavailable(m, heavy: heavy, excluding: excluding, unfit: unfit) { skipped.append(.init(node: m.name, reason: why)) } else { fitHolders.append(m) }
        }
        var chosen: MemberSnapshot?
        var losers: [MemberSnapshot] = []
        if !fitHolders.isEmpty {
            (chosen, losers) = best(fitHolders)
            for b in backups {
                skipped.append(.init(node: b.name, reason: unavailable(b, heavy: heavy, excluding: excluding, unfit: unfit)
                    ?? "lower priority: backup \(b.backup[role]!), an active holder is available"))
            }
        } else {
            // Rule 2: backups by priority; health breaks ties within a priority.
            var fitBackups: [MemberSnapshot] = []
            for b in backups {
                if let why = unavailable(b, heavy: heavy, excluding: excluding, unfit: unfit) { skipped.append(.init(node: b.name, reason: why)) } else { fitBackups.append(b) }
            }
            if let top = fitBackups.map({ $0.backup[role]! }).min() {
                (chosen, losers) = best(fitBackups.filter { $0.backup[role]! == top })
                for b in fitBackups where b.backup[role]! != top {
                    skipped.append(.init(node: b.name, reason: "lower priority: backup \(b.backup[role]!) after backup \(top)"))
                }
            }
        }
        if let chosen {
            let s = Score.of(chosen.signals)
            for l in losers {
                let ls = Score.of(l.signals)
                let detail = ls == s ? "\(twoDecimals(ls)) = \(twoDecimals(s)), tie broken by name" : "\(twoDecimals(ls)) < \(twoDecimals(s))"
                skipped.append(.init(node: l.name, reason: "lower score \(detail)"))
            }
        }
        // Skips listed in a stable order: the way a person reads the candidates.
        let order = Dictionary(uniqueKeysWithValues: (holders + backups).enumerated().map { ($1.name, $0) })
        skipped.sort { (order[$0.node] ?? 0) < (order[$1.node] ?? 0) }
        return RouteDecision(role: role, heavy: heavy, node: chosen?.name, skipped: skipped)
    }

    /// The reason a member is skipped for a role its key was not granted.
    public static let notGranted = "not granted"

    /// Why a member cannot take work now, or nil if it can. Each reason starts with a contract phrase,
    /// except the caller's own exclusions, which come first and read as the caller wrote them.
    static func unavailable(_ m: MemberSnapshot, heavy: Bool, excluding: [String: String], unfit: [String: String] = [:]) -> String? {
        if let why = excluding[m.name] { return why }
        switch m.state {
        case .dead: return "dead"
        case .left: return "left"
        // Calm under loss: a suspicion may be a few lost datagrams. The role stays; a submitter
        // whose connection to the suspect fails tries the next candidate at once.
        case .alive, .suspect: break
        }
        // Rule 1's "up" means heard from: a record only relayed to us may predate its death.
        if m.secondHand { return "suspect: not heard from yet (known only through other members)" }
        if m.draining { return "draining" }
        if heavy, m.signals.onBattery == true {
            return "on battery" + (m.signals.battery.map { " (\(Int(($0 * 100).rounded()))%)" } ?? "")
        }
        if heavy, m.signals.throttled == true { return "throttled" }
        return unfit[m.name]
    }

    /// Highest score first, then name: the same order on every node.
    static func best(_ ms: [MemberSnapshot]) -> (MemberSnapshot?, [MemberSnapshot]) {
        let sorted = ms.sorted { (-Score.of($0.signals), $0.name) < (-Score.of($1.signals), $1.name) }
        return (sorted.first, Array(sorted.dropFirst()))
    }

    /// `d` with exactly two decimals ("0.50"), as `printf("%.2f")` shows a score already rounded to two.
    public static func twoDecimals(_ d: Double) -> String {
        let v = Int((d * 100).rounded())
        let frac = abs(v % 100)
        return "\(v < 0 ? "-" : "")\(abs(v) / 100).\(frac < 10 ? "0" : "")\(frac)"
    }

    /// Every role that some member holds or backs up.
    public static func roles(in members: [MemberSnapshot]) -> [String] {
        Set(members.flatMap { $0.roles + Array($0.backup.keys) }).sorted()
    }
}
