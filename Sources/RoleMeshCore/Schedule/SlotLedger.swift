/// What the mesh knows about scheduled runs: one record per attempt (a task id), kept by every
/// node and exchanged between them (protocol.md, "Slot records"). Merging is order-free: a
/// record only moves forward (running → lost → done/failed), so any two nodes that have seen the
/// same records agree, whatever order they came in — which is what makes a slot's completion
/// known mesh-wide, and both runs of a partitioned slot recorded.
public struct SlotRun: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable {
        case running, lost, done, failed
        /// How far along a record is; a merge keeps the furthest.
        var rank: Int { switch self { case .running: 0; case .lost: 1; case .done, .failed: 2 } }
        /// The slot ran (whatever its exit code): it does not run again.
        public var completed: Bool { self == .done || self == .failed }
    }
    public var role: String
    public var task: String
    /// The slot's start, in seconds since the Unix epoch.
    public var slot: Int64
    /// This attempt's task id.
    public var id: String
    public var runID: String
    public var node: String
    public var state: State
    public var exitCode: Int?
    /// Seconds since the epoch.
    public var started: Int64
    public var finished: Int64?
    /// Ed25519 signature of `node` (the node that ran it) over `signedBytes`; nil on a record a
    /// node keeps about another's run (a `schedules run` it sent there), which it never passes on.
    public var signature: [UInt8]?

    public init(role: String, task: String, slot: Int64, id: String, runID: String, node: String, state: State,
                exitCode: Int? = nil, started: Int64, finished: Int64? = nil) {
        self.role = role; self.task = task; self.slot = slot; self.id = id; self.runID = runID; self.node = node
        self.state = state; self.exitCode = exitCode; self.started = started; self.finished = finished
    }

    public var schedule: String { "\(role)/\(task)" }

    enum CodingKeys: String, CodingKey {
        case role, task, slot, id, runID = "run_id", node, state, exitCode = "exit_code", started, finished, signature = "sig"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        task = try c.decode(String.self, forKey: .task)
        slot = try c.decode(Int64.self, forKey: .slot)
        id = try c.decode(String.self, forKey: .id)
        runID = try c.decode(String.self, forKey: .runID)
        node = try c.decode(String.self, forKey: .node)
        state = try c.decode(State.self, forKey: .state)
        exitCode = try c.decodeIfPresent(Int.self, forKey: .exitCode)
        started = try c.decode(Int64.self, forKey: .started)
        finished = try c.decodeIfPresent(Int64.self, forKey: .finished)
        signature = try c.decodeIfPresent(String.self, forKey: .signature).flatMap(Hex.decode)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(role, forKey: .role); try c.encode(task, forKey: .task); try c.encode(slot, forKey: .slot)
        try c.encode(id, forKey: .id); try c.encode(runID, forKey: .runID); try c.encode(node, forKey: .node)
        try c.encode(state, forKey: .state); try c.encodeIfPresent(exitCode, forKey: .exitCode)
        try c.encode(started, forKey: .started); try c.encodeIfPresent(finished, forKey: .finished)
        try c.encodeIfPresent(signature.map(Hex.encode), forKey: .signature)
    }

    static let tag = Array("rolemesh/1 slot\0".utf8)

    /// `"rolemesh/1 slot\0" | role | task | slot u64 | id | run_id | node | state u8 (0 running,
    /// 1 lost, 2 done, 3 failed) | exit_code (u8 0 absent, or 1 and i64) | started u64 |
    /// finished (u8 0 absent, or 1 and u64)`, strings as u8 length + UTF-8.
    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.raw(Self.tag)
        w.shortString(role); w.shortString(task); w.u64(UInt64(max(0, slot)))
        w.shortString(id); w.shortString(runID); w.shortString(node)
        let code: UInt8 = switch state { case .running: 0; case .lost: 1; case .done: 2; case .failed: 3 }
        w.u8(code)
        if let exitCode { w.u8(1); w.u64(UInt64(bitPattern: Int64(exitCode))) } else { w.u8(0) }
        w.u64(UInt64(max(0, started)))
        if let finished { w.u8(1); w.u64(UInt64(max(0, finished))) } else { w.u8(0) }
        return w.bytes
    }

    /// This record signed by the node that runs it (`sign` is that node's key).
    public func signed(_ sign: ([UInt8]) -> [UInt8]) -> SlotRun {
        var r = self
        r.signature = sign(r.signedBytes)
        return r
    }

    public func isSigned(by key: [UInt8]) -> Bool {
        guard let signature, signature.count == Ed25519.signatureSize, key.count == Ed25519.publicKeySize else { return false }
        return Ed25519.verify(signature: signature, message: signedBytes, publicKey: key)
    }

    /// Whether a record `sender` handed over counts (protocol.md, "Slot records"): it is about a
    /// run on the sender itself (the channel authenticated the sender), or it carries the
    /// signature of the node that ran it. Anything else is a forgery: dropped and counted.
    public func counts(from sender: String, keys: [String: [UInt8]]) -> Bool {
        guard isValid else { return false }
        if node == sender { return true }
        guard let key = keys[node] else { return false }
        return isSigned(by: key)
    }

    /// A record from a peer is believed only if its names and numbers are sane.
    public var isValid: Bool {
        NodeName.isValid(role) && NodeName.isValid(task, maxLength: 255) && NodeName.isValid(node)
            && NodeName.isValid(id, maxLength: 64) && NodeName.isValid(runID, maxLength: 64)
            && slot >= 0 && started >= 0 && (finished ?? 0) >= 0
    }
}

public struct SlotLedger: Equatable, Sendable {
    public private(set) var runs: [String: SlotRun] = [:]
    /// Records kept; older slots are forgotten first.
    public static let capacity = 2_000
    /// Records kept about one node's runs, its older slots forgotten first: a node flooding
    /// records about itself pushes out only its own.
    public static let perNode = 200

    public init(_ runs: [SlotRun] = []) { for r in runs { merge(r) } }

    /// Takes `r` if it is new or further along than what is known; says whether anything changed.
    @discardableResult
    public mutating func merge(_ r: SlotRun) -> Bool {
        guard r.isValid else { return false }
        if let old = runs[r.id] {
            // As far along: the runner's signed copy replaces an unsigned one kept here.
            let upgrade = old.state.rank == r.state.rank && old.signature == nil && r.signature != nil && old.node == r.node
            if old.state.rank > r.state.rank || (old.state.rank == r.state.rank && !upgrade) { return false }
        }
        runs[r.id] = r
        let mine = runs.values.filter { $0.node == r.node }
        if mine.count > Self.perNode, let oldest = mine.min(by: { ($0.slot, $0.id) < ($1.slot, $1.id) }) {
            runs[oldest.id] = nil
        }
        if runs.count > Self.capacity {
            let oldest = runs.values.min { ($0.slot, $0.id) < ($1.slot, $1.id) }!
            runs[oldest.id] = nil
        }
        return true
    }

    public func runs(of schedule: String, slot: Int64) -> [SlotRun] {
        runs.values.filter { $0.schedule == schedule && $0.slot == slot }.sorted { ($0.started, $0.id) < ($1.started, $1.id) }
    }

    /// The schedule's most recent finished run, any slot.
    public func last(of schedule: String) -> SlotRun? {
        runs.values.filter { $0.schedule == schedule && $0.state.completed }
            .max { ($0.finished ?? 0, $0.id) < ($1.finished ?? 0, $1.id) }
    }

    /// After a restart: our own runs that were going on went with the old agent (each record
    /// re-signed with `sign`, our key).
    public mutating func markLost(node: String, except active: Set<String> = [], at now: Int64,
                                  sign: (([UInt8]) -> [UInt8])? = nil) {
        for (id, r) in runs where r.node == node && r.state == .running && !active.contains(id) {
            var lost = r
            lost.state = .lost
            lost.finished = now
            runs[id] = sign.map { lost.signed($0) } ?? { lost.signature = nil; return lost }()
        }
    }

    /// Forgets every record `drop` says yes to (`state/slots.json` cleaned on load).
    public mutating func removeAll(where drop: (SlotRun) -> Bool) {
        runs = runs.filter { !drop($0.value) }
    }

    public mutating func prune(before slot: Int64) {
        runs = runs.filter { $0.value.slot >= slot }
    }
}

/// Slots: periods aligned to UTC midnight (multiples of `every` since 1970-01-01T00:00Z), and
/// the run id every attempt of one slot shares, derived from the slot itself so that every node
/// names it alike without asking anyone.
public enum Slots {
    public static func start(of now: Int64, every: Int64) -> Int64 {
        let q = now / every
        return (now % every < 0 ? q - 1 : q) * every
    }

    /// 16 hex digits of FNV-1a over `ROLE/TASK@SLOT`.
    public static func runID(_ s: Schedule, slot: Int64) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in "\(s.id)@\(slot)".utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// RFC 3339 in UTC, e.g. `2026-01-05T00:00:00Z` (days to civil date, after H. Hinnant).
    public static func rfc3339(_ t: Int64) -> String {
        let days = t >= 0 ? t / 86_400 : (t - 86_399) / 86_400
        let secs = t - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs % 3600 / 60)):\(two(secs % 60))Z"
    }
}
