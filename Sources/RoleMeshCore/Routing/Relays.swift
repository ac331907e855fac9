/// Which members may carry a task channel to `target` when this node cannot open one directly:
/// the member the gossip reached it through (`via`, protocol.md 7.1) first, then the target's
/// watchers (they receive its heartbeats, so the gossip says they hear it), then any other up
/// member, by name. Never this node, the target, or a member that is not up or not reachable
/// directly itself (`unreachable`, or reached through another in the gossip). The same rule on
/// every node.
public enum Relays {
    public static func candidates(for target: String, members: [MemberSnapshot], watchers k: Int,
                                  unreachable: Set<String>) -> [String] {
        let up = members.filter { $0.state == .alive || $0.state == .suspect }
        let alive = members.filter { $0.state == .alive }.map(\.name)
        let rings = WatchRings(names: alive, k: k, keys: { WatchRings.keys($0, k: k) })
        var out: [String] = []
        func fits(_ name: String) -> Bool {
            guard let m = up.first(where: { $0.name == name }) else { return false }
            return !m.isSelf && name != target && !unreachable.contains(name) && m.via == nil && !out.contains(name)
        }
        if let via = members.first(where: { $0.name == target })?.via, fits(via) { out.append(via) }
        for w in rings.watchers(of: target, keys: { WatchRings.keys($0, k: k) }) where fits(w) { out.append(w) }
        for m in up.sorted(by: { $0.name < $1.name }) where fits(m.name) { out.append(m.name) }
        return out
    }
}
