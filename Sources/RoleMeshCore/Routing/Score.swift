/// The health score that ranks candidates for a role (README: "Routing rules").
///
///     score = 0.5 × (1 − min(load, 1)) + 0.3 × mem_free + 0.2 × power
///
/// `load` is the load average per core, `mem_free` the available fraction of memory, and
/// `power` is 1 on mains (or when unknown) and the battery level when on battery. A load or free
/// memory the device cannot read counts as 0.5, neither good nor bad; so does an unknown level on battery. The result is rounded to two
/// decimals so that every node, computing from the same heartbeat, ranks identically.
public enum Score {
    public static func of(_ s: Signals) -> Double {
        let load = s.load.map { 1 - min(max($0, 0), 1) } ?? 0.5
        let mem = s.memFree.map { min(max($0, 0), 1) } ?? 0.5
        let power: Double = s.onBattery == true ? (s.battery ?? 0.5) : 1
        return ((0.5 * load + 0.3 * mem + 0.2 * power) * 100).rounded() / 100
    }
}
