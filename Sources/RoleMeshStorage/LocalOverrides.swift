import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// Local choices a person made at runtime that must survive a restart: pinned signals
/// (`rolemesh signal set`) and draining (`rolemesh drain`). Kept in `DIR/state/local.json`.
public struct LocalOverrides: Equatable, Sendable {
    public var pinned = Signals()
    public var draining = false

    public static let keys = ["load", "mem_free", "battery", "on_battery", "throttled", "idle"]

    /// Applies `KEY=VALUE` pins; errors name the bad key or value (exit 64).
    public mutating func pin(_ assignments: [String]) throws(MeshError) {
        for a in assignments {
            let parts = a.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw MeshError(MeshError.usage, "expected KEY=VALUE, got \"\(a)\"") }
            let (k, v) = (parts[0], parts[1].lowercased())
            func number(_ range: ClosedRange<Double>) throws(MeshError) -> Double {
                guard let d = Double(v), range.contains(d) else {
                    throw MeshError(MeshError.usage, "\(k) must be a number in \(range.lowerBound)...\(range.upperBound), got \"\(parts[1])\"")
                }
                return d
            }
            func flag() throws(MeshError) -> Bool {
                switch v {
                case "true", "yes", "1", "on": return true
                case "false", "no", "0", "off": return false
                default: throw MeshError(MeshError.usage, "\(k) must be true or false, got \"\(parts[1])\"")
                }
            }
            switch k {
            case "load": pinned.load = try number(0...65)
            case "mem_free": pinned.memFree = try number(0...1)
            case "battery": pinned.battery = try number(0...1)
            case "on_battery": pinned.onBattery = try flag()
            case "throttled": pinned.throttled = try flag()
            // Pinned idle says nothing of since when: it meets any `idle = ...` of a schedule.
            case "idle": pinned.idle = try flag()
            default: throw MeshError(MeshError.usage, "unknown signal \"\(k)\" (known: \(Self.keys.joined(separator: ", ")))")
            }
        }
    }

    /// Probed values with pins on top.
    public func apply(to probed: Signals) -> Signals {
        var s = probed
        if let v = pinned.load { s.load = v }
        if let v = pinned.memFree { s.memFree = v }
        if let v = pinned.battery { s.battery = v }
        if let v = pinned.onBattery { s.onBattery = v }
        if let v = pinned.throttled { s.throttled = v }
        if let v = pinned.idle { s.idle = v; s.idleSeconds = nil }
        return s
    }

    public static func file(_ dir: NodeDirectory) -> URL { dir.stateDir.appendingPathComponent("local.json") }

    public static func load(_ dir: NodeDirectory) -> LocalOverrides {
        guard let data = try? Data(contentsOf: file(dir)), let f = ControlJSON.decode(Stored.self, from: data) else {
            return LocalOverrides()
        }
        var o = LocalOverrides()
        o.draining = f.draining ?? false
        let p = f.pinned
        o.pinned = Signals(load: p?.load, memFree: p?.memFree, battery: p?.battery, onBattery: p?.onBattery, throttled: p?.throttled,
                           idle: p?.idle)
        return o
    }

    public func save(_ dir: NodeDirectory) throws(MeshError) {
        let p = pinned
        let f = Stored(draining: draining, pinned: SignalsStatus(load: p.load, memFree: p.memFree, battery: p.battery,
                                                                  onBattery: p.onBattery, throttled: p.throttled, idle: p.idle))
        try AtomicFile.replace(Self.file(dir), with: [UInt8](ControlJSON.line(f)))
    }

    /// `local.json`: `{"draining": false, "pinned": {"load": null, "mem_free": 0.5, ...}}`.
    public struct Stored: Codable {
        var draining: Bool?
        var pinned: SignalsStatus?
    }
}
