/// When a node's own resource signals are worth telling the mesh (protocol.md 7.2). Every beat
/// would carry fresh figures to the watchers only; everyone else would see stale ones, and routing
/// must read the same numbers on every node. So a node announces its signals — the figures its
/// heartbeat carries from then on — only when they change meaningfully, or at the floor rate.
extension Signals {
    /// Steps below which a change is noise for routing: a quarter of a core of load per core, 5 % of
    /// memory or battery, 5 minutes of idle time. Any change of the CPU count, of a flag (idle
    /// included), or of known/unknown counts.
    static let loadStep = 0.25
    static let fractionStep = 0.05
    static let idleStep = 300.0

    func meaningfullyDifferent(from o: Signals) -> Bool {
        func moved(_ a: Double?, _ b: Double?, _ step: Double) -> Bool {
            switch (a, b) {
            case (nil, nil): return false
            case let (a?, b?): return abs(a - b) >= step
            default: return true
            }
        }
        return cpus != o.cpus || onBattery != o.onBattery || throttled != o.throttled || idle != o.idle
            || moved(load, o.load, Self.loadStep) || moved(memFree, o.memFree, Self.fractionStep)
            || moved(battery, o.battery, Self.fractionStep)
            || moved(idleSeconds.map(Double.init), o.idleSeconds.map(Double.init), Self.idleStep)
    }

    /// A change of a flag or of the CPU count: announced at once, never held back by the rate limit.
    func flagsDiffer(from o: Signals) -> Bool {
        cpus != o.cpus || onBattery != o.onBattery || throttled != o.throttled || idle != o.idle
    }

    /// Whether heavy work could go to both: the flags routing looks at, not the load figures.
    func sameFitness(as o: Signals) -> Bool { onBattery == o.onBattery && throttled == o.throttled }
}
