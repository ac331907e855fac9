import RoleMeshPlatform
import RoleMeshCore

/// Reads this device's resource signals for the heartbeat.
///
/// On Linux everything comes from procfs/sysfs under `root`, so tests can point the probe at
/// a fake tree. Whatever cannot be read stays nil: a missing battery is not an empty one.
/// On macOS, with the real root, the Darwin APIs are used instead.
public struct SignalProbe: Sendable {
    private let root: String
    // Throttle counters only mean something as a change between reads, so the probe keeps
    // the previous values; a class box so `read()` needn't be mutating, shared by copies.
    private let counters = ThrottleCounters()
    /// Folder listings and the CPU count change only when hardware comes or goes (a dock, a CPU
    /// taken offline), while the probe runs every second: listing five folders each time was a
    /// fifth of an idle agent's system calls. They are looked at again after `relistEvery`.
    private let listings: Remembered<[String]?>
    private let onlineCPUs: Remembered<Int>

    public init(root: String = "/", relistEvery: Millis = 60_000) {
        self.root = root.hasSuffix("/") ? root : root + "/"
        listings = Remembered(maxAge: relistEvery)
        onlineCPUs = Remembered(maxAge: relistEvery)
    }

    public func read() -> Signals {
        var s = Signals()
        s.cpus = cpuCount()
        if let cpus = s.cpus, let avg = text("proc/loadavg")?.split(separator: " ").first.flatMap({ Double($0) }) {
            s.load = avg / Double(cpus)
        }
        s.memFree = memFree()
        (s.battery, s.onBattery) = power()
        s.throttled = throttled()
        return s
    }

    // MARK: - procfs

    private func cpuCount() -> Int? {
        if root == "/" {
            // sysconf reads /sys/devices/system/cpu/online each time.
            let n = onlineCPUs.value(for: "online") { sysconf(Int32(_SC_NPROCESSORS_ONLN)) }
            return n > 0 ? n : nil
        }
        // Fake trees (tests) describe their CPUs in cpuinfo, one `processor : N` line each.
        guard let info = text("proc/cpuinfo") else { return nil }
        let n = info.split(separator: "\n").filter {
            $0.split(separator: ":").first?.trimmed == "processor"
        }.count
        return n > 0 ? n : nil
    }

    private func memFree() -> Double? {
        guard let info = text("proc/meminfo") else { return nil }
        var kb: [String: Double] = [:]
        // "MemAvailable:   123456 kB"; both lines come first, so stop there (the file has ~55).
        for line in info.split(separator: "\n", maxSplits: 8) where kb.count < 2 {
            guard line.hasPrefix("MemTotal:") || line.hasPrefix("MemAvailable:") else { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2 { kb[String(parts[0].dropLast())] = Double(parts[1]) }
        }
        // MemAvailable (not MemFree) because page cache is reclaimable; old kernels lack it → nil.
        guard let total = kb["MemTotal"], total > 0, let avail = kb["MemAvailable"] else { return nil }
        return clamp(avail / total)
    }

    // MARK: - power_supply

    private func power() -> (battery: Double?, onBattery: Bool?) {
        let dir = "sys/class/power_supply/"
        var levels: [(fraction: Double, weight: Double?)] = []   // weight: energy_full in µWh
        var batteries = 0
        var statuses: [String] = []
        var externalKnown = false, externalOnline = false
        for name in list(dir) {
            let dev = dir + name + "/"
            switch text(dev + "type") ?? "" {
            case "Battery":
                // Peripherals (mice, headsets) report scope=Device; they don't power us.
                if text(dev + "scope") == "Device" { continue }
                batteries += 1
                if let status = text(dev + "status") { statuses.append(status) }
                if let cap = number(dev + "capacity") {
                    levels.append((cap / 100, number(dev + "energy_full")))
                } else if let now = number(dev + "energy_now"), let full = number(dev + "energy_full"), full > 0 {
                    levels.append((now / full, full))
                } else if let now = number(dev + "charge_now"), let full = number(dev + "charge_full"), full > 0 {
                    levels.append((now / full, nil))
                }
            case let t where t == "Mains" || t.hasPrefix("USB"):
                if let online = number(dev + "online") {
                    externalKnown = true
                    externalOnline = externalOnline || online == 1
                }
            default: continue
            }
        }
        var battery: Double?
        if !levels.isEmpty {
            // Weight by size when every battery reports energy_full (two packs of different
            // size), else a plain average.
            let weights = levels.compactMap(\.weight).filter { $0 > 0 }
            if weights.count == levels.count {
                battery = zip(levels, weights).map { $0.fraction * $1 }.reduce(0, +) / weights.reduce(0, +)
            } else {
                battery = levels.map(\.fraction).reduce(0, +) / Double(levels.count)
            }
            battery = battery.map(clamp)
        }
        let onBattery: Bool?
        if externalOnline { onBattery = false }
        // No battery registered in an existing power_supply folder: this machine cannot run on one.
        else if batteries == 0 { onBattery = externalKnown || exists(dir) ? false : nil }
        else if statuses.contains("Discharging") { onBattery = true }
        else if statuses.contains(where: { ["Charging", "Full", "Not charging"].contains($0) }) { onBattery = false }
        else { onBattery = externalKnown ? true : nil }   // supply known offline, status unclear
        return (battery, onBattery)
    }

    // MARK: - thermal

    private func throttled() -> Bool? {
        var known = false, hot = false

        // A thermal zone at or above its first cooling trip point is being throttled.
        let zones = "sys/class/thermal/"
        for zone in list(zones) where zone.hasPrefix("thermal_zone") {
            let z = zones + zone + "/"
            guard let temp = number(z + "temp") else { continue }
            let trips = list(z).compactMap { file -> Double? in
                guard file.hasPrefix("trip_point_"), file.hasSuffix("_type"),
                      ["passive", "hot", "critical"].contains(text(z + file) ?? "") else { return nil }
                let t = number(z + String(file.dropLast("_type".count)) + "_temp")
                return t.flatMap { $0 > 0 ? $0 : nil }   // 0 / negative trips are disabled ones
            }
            guard let lowest = trips.min() else { continue }
            known = true
            if temp >= lowest { hot = true }
        }

        let cpuDir = "sys/devices/system/cpu/"
        let cpus = list(cpuDir).filter { $0.hasPrefix("cpu") && $0.dropFirst(3).allSatisfy(\.isNumber) && $0.count > 3 }
        var counts: [String: Double] = [:]
        var capped = false
        for cpu in cpus {
            let c = cpuDir + cpu + "/"
            // A scaling cap well below the hardware max: firmware or a power profile holds it back.
            if let cur = number(c + "cpufreq/scaling_max_freq"), let max = number(c + "cpufreq/cpuinfo_max_freq"), max > 0 {
                known = true
                if cur < max * 0.85 { capped = true }
            }
            // Intel's throttle event counters; only an increase since the last read matters.
            for file in list(c + "thermal_throttle/") where file.hasSuffix("_throttle_count") {
                if let n = number(c + "thermal_throttle/" + file) { counts[c + file] = n }
            }
        }
        if !counts.isEmpty { known = true }
        let rising = counters.update(counts)   // always update, so the baseline stays current
        if hot || capped || rising { return true }
        return known ? false : nil
    }

    // MARK: - helpers

    private func text(_ rel: String) -> String? {
        FD.readText(root + rel)?.trimmed
    }

    private func number(_ rel: String) -> Double? { text(rel).flatMap { Double($0) } }

    /// A folder's entries, sorted; nil when there is no such folder.
    private func listing(_ rel: String) -> [String]? {
        let path = root + rel
        return listings.value(for: path) {
            FileManager.default.isDirectory(atPath: path)
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() : nil
        }
    }

    private func list(_ rel: String) -> [String] { listing(rel) ?? [] }

    private func exists(_ rel: String) -> Bool { listing(rel) != nil }

}

private func clamp(_ v: Double) -> Double { min(max(v, 0), 1) }

/// Values the probe read, each kept `maxAge` ms under its key (a folder's listing, nil for no
/// such folder; the online CPU count), then read again.
private final class Remembered<Value: Sendable>: Sendable {
    private let maxAge: Millis
    private let kept = Locked<[String: (value: Value, at: Millis)]>([:])

    init(maxAge: Millis) { self.maxAge = maxAge }

    func value(for key: String, read: () -> Value) -> Value {
        let now = Clock.now()
        if let k = kept.withLock({ $0[key] }), now - k.at < maxAge { return k.value }
        let value = read()
        kept.withLock { $0[key] = (value, now) }
        return value
    }
}

/// Last seen throttle counters, behind a lock so the probe stays Sendable.
private final class ThrottleCounters: Sendable {
    private let last = Locked<[String: Double]>([:])

    /// Stores `now` and says whether any counter grew since the previous call.
    func update(_ now: [String: Double]) -> Bool {
        last.withLock { last in
            defer { last = now }
            return now.contains { key, value in last[key].map { value > $0 } ?? false }
        }
    }
}
