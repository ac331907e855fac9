import RoleMeshCore

/// Datagrams dropped because they are signed by a node this one does not trust: counted in
/// `dropped.unknown_key` by the core, and named in the log here, since that is how a person finds
/// the device they forgot to trust. One line per source address and name per minute, so a
/// flood costs a dictionary lookup, not a log line each.
public struct UnknownKeyLog {
    public static let interval: Millis = 60_000
    /// Pairs remembered at most: beyond it, expired ones are forgotten (spoofed sources cannot grow it without bound).
    public static let capacity = 1024
    private var lastLogged: [String: Millis] = [:]
    public init() {}

    /// Whether a drop from `source` signed as `name` is logged now.
    public mutating func shouldLog(source: String, name: String, now: Millis) -> Bool {
        let key = source + " " + name
        if let last = lastLogged[key], now - last < Self.interval { return false }
        if lastLogged.count >= Self.capacity {
            lastLogged = lastLogged.filter { now - $0.value < Self.interval }
            guard lastLogged.count < Self.capacity else { return false }
        }
        lastLogged[key] = now
        return true
    }

    /// The node names a datagram's heartbeats claim that `isTrusted` does not know; unreadable
    /// datagrams name none (the core counted them as malformed, not here).
    public static func untrustedNames(in bytes: [UInt8], isTrusted: (String) -> Bool) -> [String] {
        guard let d = try? Wire.decode(bytes) else { return [] }
        var names: [String] = []
        for entry in d.entries {
            if case .heartbeat(let hb) = entry.statement, !isTrusted(hb.name), !names.contains(hb.name) { names.append(hb.name) }
        }
        return names
    }
}

extension Agent {
    /// Called when the core counted a drop for an unknown key in the datagram just received.
    func noteUnknownKey(_ bytes: [UInt8], from: WireAddress) {
        let names = UnknownKeyLog.untrustedNames(in: bytes) { keyRing.trusted[$0] != nil }
        let now = Clock.now()
        for name in names.isEmpty ? ["(unnamed)"] : names where unknownKeyLog.shouldLog(source: from.description, name: name, now: now) {
            Log.notice("dropped a datagram from \(from) signed as \"\(name)\", whose key is not trusted here: if it is one of your devices, copy its keys/\(name).pub into keys/ (further drops from it are counted in status, logged again in a minute)",
                       context: ["peer": name])
        }
    }
}
