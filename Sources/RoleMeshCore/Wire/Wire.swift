/// The gossip wire format, version 1. `protocol.md` describes it byte by byte; keep the two in step.
public enum Wire {
    public static let magic: [UInt8] = [0x52, 0x4D]        // "RM"
    public static let version: UInt8 = 1
    /// Every datagram fits a 1280-byte IPv6 MTU (WireGuard) after IP and UDP headers.
    public static let maxDatagramSize = 1200
    public static let headerSize = 5                      // magic, version, kind, entry count
    public static let signatureSize = 64
    static let heartbeatType: UInt8 = 1
    static let accusationType: UInt8 = 2
    static let maxListCount = 32
    /// The largest incarnation a datagram may carry (2^48 − 1): far above any real restart count,
    /// far below anything that could overflow when a node refutes above it.
    public static let maxIncarnation: UInt64 = (1 << 48) - 1
    /// The largest heartbeat seq a datagram may carry (2^62).
    public static let maxSeq: UInt64 = 1 << 62
    /// Heartbeat flags.
    static let drainingFlag: UInt8 = 0x01
    static let syncRequestFlag: UInt8 = 0x02

    /// Domain tags make a heartbeat signature useless as an accusation signature and vice versa.
    static let heartbeatTag = Array("rolemesh/1 heartbeat\0".utf8)
    static let accusationTag = Array("rolemesh/1 accusation\0".utf8)

    /// The largest heartbeat body that still fits a datagram alone: header, entry framing, signature.
    public static let maxHeartbeatBody = maxDatagramSize - headerSize - 3 - signatureSize

    /// Whether a node's own heartbeat (its roles and backups) fits on the wire.
    public static func fits(_ h: Heartbeat) -> Bool {
        h.roles.count <= maxListCount && h.backup.count <= maxListCount
            && encodeBody(.heartbeat(h)).count <= maxHeartbeatBody
    }

    public static func signedMessage(for statement: Statement, body: [UInt8]) -> [UInt8] {
        switch statement {
        case .heartbeat: return heartbeatTag + body
        case .accusation: return accusationTag + body
        }
    }

    // MARK: - Bodies

    public static func encodeBody(_ s: Statement) -> [UInt8] {
        var w = ByteWriter()
        switch s {
        case .heartbeat(let h):
            w.shortString(h.name)
            w.u64(h.incarnation)
            w.u64(h.seq)
            w.u8(h.status.rawValue)
            w.u8((h.draining ? drainingFlag : 0) | (h.syncRequest ? syncRequestFlag : 0))
            w.u8(h.address.ip.isEmpty ? 0 : (h.address.ip.count == 4 ? 4 : 6))
            w.raw(h.address.ip)
            w.u16(h.address.port)
            let roles = h.roles.prefix(maxListCount)
            w.u8(UInt8(roles.count))
            for r in roles { w.shortString(r) }
            let backups = h.backup.sorted { $0.key < $1.key }.prefix(maxListCount)
            w.u8(UInt8(backups.count))
            for (r, p) in backups { w.shortString(r); w.u8(UInt8(clamping: p)) }
            encodeSignals(h.signals, into: &w)
        case .accusation(let a):
            w.shortString(a.accuser)
            w.u8(a.kind.rawValue)
            w.shortString(a.target)
            w.u64(a.incarnation)
        }
        return w.bytes
    }

    static func encodeSignals(_ s: Signals, into w: inout ByteWriter) {
        let q = s.quantized
        var mask: UInt8 = 0
        var flags: UInt8 = 0
        if q.load != nil { mask |= 1 }
        if q.cpus != nil { mask |= 2 }
        if q.memFree != nil { mask |= 4 }
        if q.battery != nil { mask |= 8 }
        if let b = q.onBattery { mask |= 16; if b { flags |= 1 } }
        if let t = q.throttled { mask |= 32; if t { flags |= 2 } }
        if let i = q.idle { mask |= 64; if i { flags |= 4 } }
        if q.idleSeconds != nil { mask |= 128 }
        w.u8(mask); w.u8(flags)
        // `quantized` has clamped every value and mapped non-finite ones to nil; `clamping` keeps
        // these conversions total anyway.
        func fixed(_ v: Double, _ scale: Double) -> UInt16 {
            let x = (v * scale).rounded()
            return x.isFinite ? UInt16(clamping: Int(max(0, min(x, 65535)))) : 0
        }
        if let v = q.load { w.u16(fixed(v, 1000)) }
        if let v = q.cpus { w.u16(UInt16(clamping: v)) }
        if let v = q.memFree { w.u16(fixed(v, 10000)) }
        if let v = q.battery { w.u16(fixed(v, 10000)) }
        if let v = q.idleSeconds { w.u16(UInt16(clamping: v / 60)) }
    }

    public static func decodeBody(type: UInt8, _ r: inout ByteReader) throws(WireError) -> Statement {
        switch type {
        case heartbeatType:
            let name = try nodeName(&r)
            let inc = try r.u64(), seq = try r.u64()
            guard inc <= maxIncarnation else { throw .invalid("incarnation out of range") }
            guard seq <= maxSeq else { throw .invalid("seq out of range") }
            guard let status = HeartbeatStatus(rawValue: try r.u8()) else { throw .invalid("unknown status") }
            let flags = try r.u8()
            guard flags & ~(drainingFlag | syncRequestFlag) == 0 else { throw .invalid("unknown flags") }
            let family = try r.u8()
            let ip: [UInt8]
            switch family {
            case 0: ip = []
            case 4: ip = try r.raw(4)
            case 6: ip = try r.raw(16)
            default: throw .invalid("unknown address family")
            }
            let port = try r.u16()
            let roleCount = Int(try r.u8())
            guard roleCount <= maxListCount else { throw .invalid("too many roles") }
            var roles: [String] = []
            for _ in 0..<roleCount { roles.append(try nodeName(&r)) }
            let backupCount = Int(try r.u8())
            guard backupCount <= maxListCount else { throw .invalid("too many backups") }
            var backup: [String: Int] = [:]
            for _ in 0..<backupCount {
                let role = try nodeName(&r)
                let p = Int(try r.u8())
                guard p >= 1, backup[role] == nil else { throw .invalid("bad backup entry") }
                backup[role] = p
            }
            let signals = try decodeSignals(&r)
            return .heartbeat(Heartbeat(name: name, incarnation: inc, seq: seq, status: status,
                                        draining: flags & drainingFlag != 0, address: WireAddress(ip: ip, port: port),
                                        roles: roles, backup: backup, signals: signals,
                                        syncRequest: flags & syncRequestFlag != 0))
        case accusationType:
            let accuser = try nodeName(&r)
            guard let kind = AccusationKind(rawValue: try r.u8()) else { throw .invalid("unknown accusation") }
            let target = try nodeName(&r)
            let inc = try r.u64()
            guard inc <= maxIncarnation else { throw .invalid("incarnation out of range") }
            return .accusation(Accusation(accuser: accuser, kind: kind, target: target, incarnation: inc))
        default:
            throw .invalid("unknown entry type \(type)")
        }
    }

    static func decodeSignals(_ r: inout ByteReader) throws(WireError) -> Signals {
        let mask = try r.u8(), flags = try r.u8()
        guard flags & ~7 == 0 else { throw .invalid("unknown signal bits") }
        var s = Signals()
        if mask & 1 != 0 { s.load = Double(try r.u16()) / 1000 }
        if mask & 2 != 0 { s.cpus = Int(try r.u16()) }
        if mask & 4 != 0 { s.memFree = min(Double(try r.u16()) / 10000, 1) }
        if mask & 8 != 0 { s.battery = min(Double(try r.u16()) / 10000, 1) }
        if mask & 16 != 0 { s.onBattery = flags & 1 != 0 }
        if mask & 32 != 0 { s.throttled = flags & 2 != 0 }
        if mask & 64 != 0 { s.idle = flags & 4 != 0 }
        if mask & 128 != 0 { s.idleSeconds = Int(try r.u16()) * 60 }
        return s
    }

    static func nodeName(_ r: inout ByteReader) throws(WireError) -> String {
        let s = try r.shortString()
        guard NodeName.isValid(s) else { throw .invalid("invalid name") }
        return s
    }

    // MARK: - Datagrams

    public static func encode(_ d: Datagram) -> [UInt8] {
        var w = ByteWriter(capacity: d.encodedSize)
        w.raw(magic); w.u8(version); w.u8(d.kind.rawValue); w.u8(UInt8(d.entries.count))
        for e in d.entries {
            switch e.statement {
            case .heartbeat: w.u8(heartbeatType)
            case .accusation: w.u8(accusationType)
            }
            w.u16(UInt16(e.body.count)); w.raw(e.body); w.raw(e.signature)
        }
        return w.bytes
    }

    /// Decodes and structurally validates a datagram. Signatures are not checked here:
    /// the membership core verifies only what is new to it.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Datagram {
        guard bytes.count <= maxDatagramSize else { throw .oversized(bytes.count) }
        var r = ByteReader(bytes)
        guard try r.raw(2) == magic else { throw .badMagic }
        let v = try r.u8()
        guard v == version else { throw .unsupportedVersion(v) }
        guard let kind = DatagramKind(rawValue: try r.u8()) else { throw .invalid("unknown datagram kind") }
        let count = Int(try r.u8())
        guard count >= 1 else { throw .invalid("no entries") }
        var entries: [SignedEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let type = try r.u8()
            let len = Int(try r.u16())
            let body = try r.raw(len)
            var br = ByteReader(body)
            let statement = try decodeBody(type: type, &br)
            guard br.isAtEnd else { throw .invalid("trailing bytes in entry") }
            let sig = try r.raw(signatureSize)
            entries.append(SignedEntry(statement: statement, body: body, signature: sig))
        }
        guard r.isAtEnd else { throw .invalid("trailing bytes after entries") }
        let d = Datagram(kind: kind, entries: entries)
        try check(d)
        return d
    }

    /// The rules a decoded datagram must meet beyond its byte layout: entry 0 is a heartbeat whose
    /// sync-request flag matches the kind, and every number is in range. `decode` applies it; the
    /// membership core applies it again to datagrams handed to it already decoded (the simulation).
    public static func check(_ d: Datagram) throws(WireError) {
        guard (1...255).contains(d.entries.count) else { throw .invalid("entry count out of range") }
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
            }
        }
    }
}
