import Foundation
import RoleMeshCore

/// Local choices a person made at runtime that must survive a restart: pinned signals
/// (`rolemesh signal set`) and draining (`rolemesh drain`). Kept in `DIR/state/local.json`.
public struct LocalOverrides: Equatable, Sendable {
    public var pinned = Signals()
    public var draining = false

    public static let keys = ["load", "mem_free", "battery", "on_battery", "throttled"]

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
        return s
    }

    static func file(_ dir: NodeDirectory) -> URL { dir.stateDir.appendingPathComponent("local.json") }

    public static func load(_ dir: NodeDirectory) -> LocalOverrides {
        guard let text = try? String(contentsOf: file(dir), encoding: .utf8), let j = JSON.parse(text) else { return LocalOverrides() }
        var o = LocalOverrides()
        o.draining = j["draining"]?.bool ?? false
        let p = j["pinned"]
        o.pinned = Signals(load: p?["load"]?.double, memFree: p?["mem_free"]?.double, battery: p?["battery"]?.double,
                           onBattery: p?["on_battery"]?.bool, throttled: p?["throttled"]?.bool)
        return o
    }

    public func save(_ dir: NodeDirectory) throws(MeshError) {
        let j = JSON.object([
            ("draining", .bool(draining)),
            ("pinned", .object([("load", .optional(pinned.load)), ("mem_free", .optional(pinned.memFree)),
                                ("battery", .optional(pinned.battery)), ("on_battery", .optional(pinned.onBattery)),
                                ("throttled", .optional(pinned.throttled))])),
        ])
        try AtomicFile.replace(Self.file(dir), with: j.serialized + "\n")
    }
}
