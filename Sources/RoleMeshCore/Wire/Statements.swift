/// The kinds of signed statement that travel in gossip.
///
/// A `Heartbeat` is a node's own state, signed by that node; an `Accusation` is one node's
/// claim that another is suspect or dead, signed by the accuser; a `ProbeRequest` asks its receiver
/// to check a member for the asker (never relayed). Because each statement carries its origin's
/// signature, any node can relay it and nobody can forge or alter it.

/// Resource signals. `nil` means the device cannot read it — never a made-up 0.
public struct Signals: Equatable, Hashable, Sendable {
    public var load: Double?        // load average per core
    public var cpus: Int?
    public var memFree: Double?     // 0...1
    public var battery: Double?     // 0...1
    public var onBattery: Bool?
    public var throttled: Bool?
    /// No user input, and little load besides background runs (README, "Background work").
    public var idle: Bool?
    /// For how long; on the wire in whole minutes. Nil with `idle` set: the device does not say.
    public var idleSeconds: Int?

    public init(load: Double? = nil, cpus: Int? = nil, memFree: Double? = nil,
                battery: Double? = nil, onBattery: Bool? = nil, throttled: Bool? = nil,
                idle: Bool? = nil, idleSeconds: Int? = nil) {
        self.load = load; self.cpus = cpus; self.memFree = memFree
        self.battery = battery; self.onBattery = onBattery; self.throttled = throttled
        self.idle = idle; self.idleSeconds = idleSeconds
    }

    /// The longest idle time the wire carries: 65535 minutes.
    public static let maxIdleSeconds = 65_535 * 60

    /// Values as they survive the wire's fixed-point encoding, so a node compares its own
    /// signals with what others will see.
    public var quantized: Signals {
        // A non-finite value (NaN, ±infinity) is not a reading: it becomes "unknown", never a trap
        // in the fixed-point conversion.
        func q(_ v: Double?, _ scale: Double, _ maxv: Double) -> Double? {
            guard let v, v.isFinite else { return nil }
            return (min(max(v, 0), maxv) * scale).rounded() / scale
        }
        return Signals(load: q(load, 1000, 65.535), cpus: cpus.map { min(max($0, 0), 65535) },
                       memFree: q(memFree, 10000, 1), battery: q(battery, 10000, 1),
                       onBattery: onBattery, throttled: throttled, idle: idle,
                       idleSeconds: idleSeconds.map { min(max($0, 0), Self.maxIdleSeconds) / 60 * 60 })
    }
}

public enum HeartbeatStatus: UInt8, Sendable { case alive = 0, left = 1 }

public struct Heartbeat: Equatable, Sendable {
    public var name: String
    public var incarnation: UInt64
    public var seq: UInt64
    public var status: HeartbeatStatus
    public var draining: Bool
    public var address: WireAddress
    public var roles: [String]
    public var backup: [String: Int]
    public var signals: Signals
    /// Flags bit 0x02: this heartbeat leads a sync request (the datagram kind is signed through it).
    /// Not a state change: it is left out of identity comparisons.
    public var syncRequest: Bool
    /// A digest of what the node holds beside membership (slot records, trust statements, its
    /// schedules), 8 bytes: a watcher whose own differs asks for an exchange (protocol.md, "Slot
    /// records"), so an idle mesh opens no task channel. Not a state change either.
    public var digest: [UInt8]?
    /// The services the node offers, with their health (field 25), sorted by name. A change is a
    /// change of identity: routing reads it, so everyone hears it at once.
    public var services: [OfferedService]

    public init(name: String, incarnation: UInt64, seq: UInt64, status: HeartbeatStatus = .alive,
                draining: Bool = false, address: WireAddress, roles: [String] = [],
                backup: [String: Int] = [:], signals: Signals = Signals(), syncRequest: Bool = false,
                digest: [UInt8]? = nil, services: [OfferedService] = []) {
        self.name = name; self.incarnation = incarnation; self.seq = seq; self.status = status
        self.draining = draining; self.address = address; self.roles = roles
        self.backup = backup; self.signals = signals; self.syncRequest = syncRequest; self.digest = digest
        self.services = services
    }

    public static let digestSize = 8

    /// (incarnation, seq) orders a node's heartbeats; incarnation survives restarts.
    public var version: Version { Version(incarnation: incarnation, seq: seq) }
}

public struct Version: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var incarnation: UInt64
    public var seq: UInt64
    public init(incarnation: UInt64, seq: UInt64) { self.incarnation = incarnation; self.seq = seq }
    public static func < (a: Version, b: Version) -> Bool {
        (a.incarnation, a.seq) < (b.incarnation, b.seq)
    }
    public var description: String { "\(incarnation).\(seq)" }
}

public enum AccusationKind: UInt8, Sendable { case suspect = 1, dead = 2 }

public struct Accusation: Equatable, Hashable, Sendable {
    public var accuser: String
    public var kind: AccusationKind
    public var target: String
    /// The target's incarnation the claim is about; a higher incarnation refutes it.
    public var incarnation: UInt64
    public init(accuser: String, kind: AccusationKind, target: String, incarnation: UInt64) {
        self.accuser = accuser; self.kind = kind; self.target = target; self.incarnation = incarnation
    }
}

/// "Check `target` for me": sent by a node that cannot hear `target` to a member it does hear, which
/// asks `target` directly and passes on its fresh heartbeat if one comes (protocol.md 7.1, checks).
/// Point to point: answered or ignored, never relayed.
public struct ProbeRequest: Equatable, Hashable, Sendable {
    public var asker: String
    public var target: String
    /// The target's incarnation as the asker holds it: a helper holding a newer one answers at once.
    public var incarnation: UInt64
    public init(asker: String, target: String, incarnation: UInt64) {
        self.asker = asker; self.target = target; self.incarnation = incarnation
    }
}

public enum Statement: Equatable, Sendable {
    case heartbeat(Heartbeat)
    case accusation(Accusation)
    case probe(ProbeRequest)

    /// The node whose key must have signed this statement.
    public var origin: String {
        switch self {
        case .heartbeat(let h): return h.name
        case .accusation(let a): return a.accuser
        case .probe(let p): return p.asker
        }
    }
}

/// A statement with its canonical encoding and its origin's signature, exactly as relayed.
///
/// Immutable storage shared by every copy: a relayed record is the same bytes in every datagram
/// and every member table that holds it, so a copy costs a pointer, not the ~180 bytes of a decoded
/// heartbeat with its body and signature (a simulated 10,000-node mesh holds 10⁸ of them).
/// Setting a field copies the storage first (value semantics as before).
public struct SignedEntry: Equatable, Sendable {
    final class Storage: Sendable {
        let statement: Statement
        let body: [UInt8]
        let signature: [UInt8]
        init(_ statement: Statement, _ body: [UInt8], _ signature: [UInt8]) {
            self.statement = statement; self.body = body; self.signature = signature
        }
    }
    private var storage: Storage

    public init(statement: Statement, body: [UInt8], signature: [UInt8]) {
        storage = Storage(statement, body, signature)
    }

    public var statement: Statement {
        get { storage.statement }
        set { storage = Storage(newValue, storage.body, storage.signature) }
    }
    public var body: [UInt8] {
        get { storage.body }
        set { storage = Storage(storage.statement, newValue, storage.signature) }
    }
    public var signature: [UInt8] {
        get { storage.signature }
        set { storage = Storage(storage.statement, storage.body, newValue) }
    }

    /// The heartbeat this entry carries, if it is one.
    public var heartbeat: Heartbeat? {
        if case .heartbeat(let h) = storage.statement { return h }
        return nil
    }

    /// The same bytes: the same storage, or equal signature and body (what the signature covers).
    public func sameBytes(as o: SignedEntry) -> Bool {
        storage === o.storage || (storage.signature == o.storage.signature && storage.body == o.storage.body)
    }

    public static func == (a: SignedEntry, b: SignedEntry) -> Bool {
        a.storage === b.storage
            || (a.storage.statement == b.storage.statement && a.storage.body == b.storage.body && a.storage.signature == b.storage.signature)
    }

    /// The bytes the signature covers: a domain tag, then the body.
    public var signedMessage: [UInt8] { Wire.signedMessage(for: statement, body: body) }

    /// Size on the wire: type, length, body, signature.
    public var encodedSize: Int { Wire.entryHeaderSize + storage.body.count + Wire.signatureSize }
}

public enum DatagramKind: UInt8, Sendable {
    case gossip = 1        // heartbeats and news, the steady stream
    case syncRequest = 2   // full state; please answer with yours
    case syncReply = 3     // full state, in answer
}

/// One UDP datagram. The first entry is always the sender's own heartbeat, so every
/// datagram is attributable to a trusted, current sender.
public struct Datagram: Equatable, Sendable {
    public var kind: DatagramKind
    public var entries: [SignedEntry]
    public init(kind: DatagramKind, entries: [SignedEntry]) { self.kind = kind; self.entries = entries }
    public var encodedSize: Int { Wire.headerSize + entries.reduce(0) { $0 + $1.encodedSize } }
}
