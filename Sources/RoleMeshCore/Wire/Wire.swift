/// The gossip wire format, version 2: what travels inside the encrypted envelope (`Privacy/`).
/// `protocol.md` sections 2–5 describe it byte by byte; keep the two in step.
///
/// Entries and the fields of statement bodies are type-length-value, so a reader skips what it
/// does not know: a later version adds entry types and fields, and old and new devices share a mesh.
public enum Wire {
    public static let version: UInt8 = 2
    /// A gossip datagram's plaintext limit: the envelope (`Envelope.overhead` = 49 bytes) brings the
    /// UDP payload to at most 1200 bytes, which fits a 1280-byte IPv6 MTU (WireGuard) after IP and UDP headers.
    public static let maxDatagramSize = Envelope.maxSize - Envelope.overhead
    public static let headerSize = 2                      // version, kind
    public static let entryHeaderSize = 3                 // type, length
    public static let signatureSize = 64
    static let heartbeatType: UInt8 = 1
    static let accusationType: UInt8 = 2
    static let probeType: UInt8 = 3
    static let maxListCount = 32
    public static let maxEntries = 255
    /// The largest incarnation a datagram may carry (2^48 − 1): far above any real restart count,
    /// far below anything that could overflow when a node refutes above it.
    public static let maxIncarnation: UInt64 = (1 << 48) - 1
    /// The largest heartbeat seq a datagram may carry (2^62).
    public static let maxSeq: UInt64 = 1 << 62
    /// Heartbeat flags (field 5). Bits this version does not know are ignored.
    static let drainingFlag: UInt8 = 0x01
    static let syncRequestFlag: UInt8 = 0x02

    /// Domain tags make a heartbeat signature useless as an accusation signature and vice versa.
    static let heartbeatTag = Array("rolemesh/2 heartbeat\0".utf8)
    static let accusationTag = Array("rolemesh/2 accusation\0".utf8)
    static let probeTag = Array("rolemesh/2 probe\0".utf8)

    /// The largest heartbeat body that still fits a datagram alone: header, entry framing, signature.
    public static let maxHeartbeatBody = maxDatagramSize - headerSize - entryHeaderSize - signatureSize

    /// Whether a node's own heartbeat (its roles and backups) fits on the wire.
    public static func fits(_ h: Heartbeat) -> Bool {
        h.roles.count <= maxListCount && h.backup.count <= maxListCount
            && encodeBody(.heartbeat(h)).count <= maxHeartbeatBody
    }

    public static func signedMessage(for statement: Statement, body: [UInt8]) -> [UInt8] {
        switch statement {
        case .heartbeat: return heartbeatTag + body
        case .accusation: return accusationTag + body
        case .probe: return probeTag + body
        }
    }

    // MARK: - Bodies

    public static func encodeBody(_ s: Statement) -> [UInt8] {
        typealias F = BodyFields
        var w = ByteWriter()
        switch s {
        case .heartbeat(let h):
            w.field(F.name, name: h.name)
            w.field(F.incarnation, counter: h.incarnation)
            w.field(F.seq, counter: h.seq)
            if h.status != .alive { w.field(F.status, u8: h.status.rawValue) }
            let flags = (h.draining ? drainingFlag : 0) | (h.syncRequest ? syncRequestFlag : 0)
            if flags != 0 { w.field(F.flags, u8: flags) }
            if h.address.ip.count == 4 || h.address.ip.count == 16 {
                w.field(F.address, h.address.ip + [UInt8(h.address.port >> 8), UInt8(h.address.port & 0xff)])
            }
            for r in h.roles.prefix(maxListCount) { w.field(F.role, name: r) }
            for (r, p) in h.backup.sorted(by: { $0.key < $1.key }).prefix(maxListCount) {
                w.field(F.backup, [UInt8(clamping: p)] + Array(r.utf8.prefix(254)))
            }
            encodeSignals(h.signals, into: &w)
            if let d = h.digest, d.count == Heartbeat.digestSize { w.field(F.digest, d) }
            if !h.services.isEmpty { w.field(F.services, ServicesField.encode(h.services)) }
        case .accusation(let a):
            w.field(F.accuser, name: a.accuser)
            w.field(F.kind, u8: a.kind.rawValue)
            w.field(F.target, name: a.target)
            w.field(F.claimIncarnation, counter: a.incarnation)
        case .probe(let p):
            w.field(F.accuser, name: p.asker)
            w.field(F.target, name: p.target)
            w.field(F.claimIncarnation, counter: p.incarnation)
        }
        // A copy at its own size: a body is kept for as long as anyone holds its entry (N² of them
        // in a simulated mesh), and the writer reserved 256 bytes for typically 40–120.
        return Array(w.bytes[...])
    }

    static func encodeSignals(_ s: Signals, into w: inout ByteWriter) {
        typealias F = BodyFields
        let q = s.quantized
        // `quantized` has clamped every value and mapped non-finite ones to nil; `clamping` keeps
        // these conversions total anyway.
        func fixed(_ v: Double, _ scale: Double) -> UInt16 {
            let x = (v * scale).rounded()
            return x.isFinite ? UInt16(clamping: Int(max(0, min(x, 65535)))) : 0
        }
        if let v = q.load { w.field(F.load, u16: fixed(v, 1000)) }
        if let v = q.cpus { w.field(F.cpus, u16: UInt16(clamping: v)) }
        if let v = q.memFree { w.field(F.memFree, u16: fixed(v, 10000)) }
        if let v = q.battery { w.field(F.battery, u16: fixed(v, 10000)) }
        if let v = q.onBattery { w.field(F.onBattery, u8: v ? 1 : 0) }
        if let v = q.throttled { w.field(F.throttled, u8: v ? 1 : 0) }
        if let v = q.idle { w.field(F.idle, u8: v ? 1 : 0) }
        if let v = q.idleSeconds { w.field(F.idleMinutes, u16: UInt16(clamping: v / 60)) }
    }

    /// A known statement type's body; `nil` for a type this version does not know (skipped).
    public static func decodeBody(type: UInt8, _ body: [UInt8]) throws(WireError) -> Statement? {
        switch type {
        case heartbeatType: return .heartbeat(try decodeHeartbeat(body))
        case accusationType: return .accusation(try decodeAccusation(body))
        case probeType: return .probe(try decodeProbe(body))
        default: return nil
        }
    }

    static func decodeHeartbeat(_ body: [UInt8]) throws(WireError) -> Heartbeat {
        typealias F = BodyFields
        var name: String?, inc: UInt64?, seq: UInt64?
        var status = HeartbeatStatus.alive, flags: UInt8 = 0
        var address = WireAddress(ip: [], port: 0)
        var roles: [String] = [], backup: [String: Int] = [:]
        var s = Signals()
        var digest: [UInt8]?
        var services: [OfferedService] = []
        try BodyFields.walk(body) { (tag, v) throws(WireError) in
            switch tag {
            case F.name: name = try v.fieldName()
            case F.incarnation:
                inc = try v.fieldCounter()
                guard inc! <= maxIncarnation else { throw .invalid("incarnation out of range") }
            case F.seq:
                seq = try v.fieldCounter()
                guard seq! <= maxSeq else { throw .invalid("seq out of range") }
            case F.status:
                guard let st = HeartbeatStatus(rawValue: try v.fieldU8()) else { throw .invalid("unknown status") }
                status = st
            case F.flags: flags = try v.fieldU8()
            case F.address:
                guard v.remaining == 6 || v.remaining == 18 else { throw .invalid("address of \(v.remaining) bytes") }
                let ip = try v.raw(v.remaining - 2)
                address = WireAddress(ip: ip, port: try v.u16())
            case F.role:
                guard roles.count < maxListCount else { throw .invalid("too many roles") }
                roles.append(try v.fieldName())
            case F.backup:
                guard backup.count < maxListCount else { throw .invalid("too many backups") }
                let p = Int(try v.u8())
                let role = try v.fieldName()
                guard p >= 1, backup[role] == nil else { throw .invalid("bad backup entry") }
                backup[role] = p
            case F.load: s.load = Double(try v.fieldU16()) / 1000
            case F.cpus: s.cpus = Int(try v.fieldU16())
            case F.memFree: s.memFree = min(Double(try v.fieldU16()) / 10000, 1)
            case F.battery: s.battery = min(Double(try v.fieldU16()) / 10000, 1)
            case F.onBattery: s.onBattery = try v.fieldBool()
            case F.throttled: s.throttled = try v.fieldBool()
            case F.idle: s.idle = try v.fieldBool()
            case F.idleMinutes: s.idleSeconds = Int(try v.fieldU16()) * 60
            case F.digest:
                guard v.remaining == Heartbeat.digestSize else { throw .invalid("digest of \(v.remaining) bytes") }
                digest = try v.raw(Heartbeat.digestSize)
            case F.services: services = try ServicesField.decode(&v)
            default: break      // a later version's field: skipped, kept in the signed body
            }
        }
        guard let name, let inc, let seq else { throw .invalid("heartbeat lacks a name, incarnation or seq") }
        return Heartbeat(name: name, incarnation: inc, seq: seq, status: status,
                         draining: flags & drainingFlag != 0, address: address,
                         roles: roles, backup: backup, signals: s, syncRequest: flags & syncRequestFlag != 0, digest: digest,
                         services: services)
    }

    static func decodeAccusation(_ body: [UInt8]) throws(WireError) -> Accusation {
        typealias F = BodyFields
        var accuser: String?, kind: AccusationKind?, target: String?, inc: UInt64?
        try BodyFields.walk(body) { (tag, v) throws(WireError) in
            switch tag {
            case F.accuser: accuser = try v.fieldName()
            case F.kind:
                guard let k = AccusationKind(rawValue: try v.fieldU8()) else { throw .invalid("unknown accusation") }
                kind = k
            case F.target: target = try v.fieldName()
            case F.claimIncarnation:
                inc = try v.fieldCounter()
                guard inc! <= maxIncarnation else { throw .invalid("incarnation out of range") }
            default: break
            }
        }
        guard let accuser, let kind, let target, let inc else { throw .invalid("accusation lacks a field") }
        return Accusation(accuser: accuser, kind: kind, target: target, incarnation: inc)
    }

    static func decodeProbe(_ body: [UInt8]) throws(WireError) -> ProbeRequest {
        typealias F = BodyFields
        var asker: String?, target: String?, inc: UInt64?
        try BodyFields.walk(body) { (tag, v) throws(WireError) in
            switch tag {
            case F.accuser: asker = try v.fieldName()
            case F.target: target = try v.fieldName()
            case F.claimIncarnation:
                inc = try v.fieldCounter()
                guard inc! <= maxIncarnation else { throw .invalid("incarnation out of range") }
            default: break
            }
        }
        guard let asker, let target, let inc else { throw .invalid("probe request lacks a field") }
        return ProbeRequest(asker: asker, target: target, incarnation: inc)
    }

    // MARK: - Datagrams

    public static func encode(_ d: Datagram) -> [UInt8] {
        var w = ByteWriter(capacity: d.encodedSize)
        w.u8(version); w.u8(d.kind.rawValue)
        for e in d.entries {
            switch e.statement {
            case .heartbeat: w.u8(heartbeatType)
            case .accusation: w.u8(accusationType)
            case .probe: w.u8(probeType)
            }
            w.u16(UInt16(e.body.count + e.signature.count)); w.raw(e.body); w.raw(e.signature)
        }
        return w.bytes
    }

    /// Decodes and structurally validates a datagram's plaintext. Entries of a type this version
    /// does not know are skipped. Signatures are not checked here: the membership core verifies
    /// only what is new to it.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Datagram {
        guard bytes.count <= maxDatagramSize else { throw .oversized(bytes.count) }
        var r = ByteReader(bytes)
        let v = try r.u8()
        guard v == version else { throw .unsupportedVersion(v) }
        guard let kind = DatagramKind(rawValue: try r.u8()) else { throw .invalid("unknown datagram kind") }
        var entries: [SignedEntry] = []
        var count = 0
        while !r.isAtEnd {
            count += 1
            guard count <= maxEntries else { throw .invalid("more than \(maxEntries) entries") }
            let type = try r.u8()
            let len = Int(try r.u16())
            var value = try r.sub(len)
            if count == 1, type != heartbeatType { throw .invalid("first entry is not the sender's heartbeat") }
            guard type == heartbeatType || type == accusationType || type == probeType else { continue }   // a later version's entry
            guard len >= signatureSize else { throw .truncated }
            let body = try value.raw(len - signatureSize)
            let sig = try value.raw(signatureSize)
            guard let statement = try decodeBody(type: type, body) else { continue }
            entries.append(SignedEntry(statement: statement, body: body, signature: sig))
        }
        guard count >= 1 else { throw .invalid("no entries") }
        let d = Datagram(kind: kind, entries: entries)
        try check(d)
        return d
    }

    /// The rules a decoded datagram must meet beyond its byte layout: entry 0 is a heartbeat whose
    /// sync-request flag matches the kind, and every number is in range. `decode` applies it; the
    /// membership core applies it again to datagrams handed to it already decoded (the simulation).
    public static func check(_ d: Datagram) throws(WireError) {
        guard (1...maxEntries).contains(d.entries.count) else { throw .invalid("entry count out of range") }
        guard case .heartbeat(let first) = d.entries[0].statement else {
            throw .invalid("first entry is not the sender's heartbeat")
        }
        guard first.syncRequest == (d.kind == .syncRequest) else {
            throw .invalid("datagram kind does not match the sender's signed sync-request flag")
        }
        for e in d.entries {
            switch e.statement {
            case .heartbeat(let h):
                guard h.incarnation <= maxIncarnation, h.seq <= maxSeq else { throw .invalid("number out of range") }
            case .accusation(let a):
                guard a.incarnation <= maxIncarnation else { throw .invalid("number out of range") }
            case .probe(let p):
                guard p.incarnation <= maxIncarnation else { throw .invalid("number out of range") }
            }
        }
    }
}
