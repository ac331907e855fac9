import RoleMeshPlatform
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

    // Datagrams sealed for no pair of ours (gossip v2): an untrusted device, whose name cannot be
    // read, or a hello of a seed's round meant for another device at this address. Such a source is
    // named only if nothing from it opened within `strangerGrace` either side, so a round of hellos
    // (one per trusted device, one of which opens) is not mistaken for a stranger.
    private var strangers: [String: Millis] = [:]
    private var lastOpened: [String: Millis] = [:]
    public static let strangerGrace: Millis = 2_000

    /// A datagram from `source` was sealed for no pair of ours.
    public mutating func sealedByStranger(source: String, now: Millis) {
        if let opened = lastOpened[source], now - opened < Self.strangerGrace { return }
        guard strangers[source] == nil, strangers.count < Self.capacity else { return }
        strangers[source] = now
    }

    /// A datagram from `source` opened with one of our pair keys.
    public mutating func authenticated(source: String, now: Millis) {
        if let since = strangers[source], now - since < Self.strangerGrace { strangers[source] = nil }
        if lastOpened.count >= Self.capacity, lastOpened[source] == nil {
            lastOpened = lastOpened.filter { now - $0.value < Self.strangerGrace }
            guard lastOpened.count < Self.capacity else { return }
        }
        lastOpened[source] = now
    }

    /// Sources to name in the log now: sealed by a stranger at least `strangerGrace` ago, nothing of
    /// theirs opened within `strangerGrace` either side, not named in the last minute.
    public mutating func strangersToLog(now: Millis) -> [String] {
        guard !strangers.isEmpty else { return [] }
        var out: [String] = []
        for (source, since) in strangers.sorted(by: { $0.key < $1.key }) where now - since >= Self.strangerGrace {
            strangers[source] = nil
            if shouldLog(source: source, name: "", now: now) { out.append(source) }
        }
        return out
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

    /// Names in the log the sources whose datagrams no key of ours opens (on the tick; cheap when none).
    public mutating func logStrangers(now: Millis) {
        for source in strangersToLog(now: now) {
            Log.notice("dropped datagrams from \(source) sealed by a device whose key is not trusted here: if it is one of your devices, copy its keys/NAME.pub into keys/ (further drops from it are counted in status as unknown_key, logged again in a minute)",
                       context: ["peer": source])
        }
    }

    /// The core counted a drop for an unknown key in `bytes`, just received from `from`.
    public mutating func noteUnknownKey(_ bytes: [UInt8], from: WireAddress, now: Millis, isTrusted: (String) -> Bool) {
        let names = Self.untrustedNames(in: bytes, isTrusted: isTrusted)
        for name in names.isEmpty ? ["(unnamed)"] : names where shouldLog(source: from.description, name: name, now: now) {
            Log.notice("dropped a datagram from \(from) signed as \"\(name)\", whose key is not trusted here: if it is one of your devices, copy its keys/\(name).pub into keys/ (further drops from it are counted in status, logged again in a minute)",
                       context: ["peer": name])
        }
    }
}
