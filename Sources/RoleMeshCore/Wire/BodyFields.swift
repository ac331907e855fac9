/// Statement bodies in wire v2: a list of fields, each `tag u8 · length u8 · value`, in
/// non-decreasing tag order (protocol.md 4). A tag this version does not know is skipped — its
/// bytes stay in the body, which is signed and relayed verbatim — so a later version can add
/// fields without a flag day. A known field with a wrong length or value rejects the statement.
enum BodyFields {
    // Heartbeat fields.
    static let name: UInt8 = 1
    static let incarnation: UInt8 = 2
    static let seq: UInt8 = 3
    static let status: UInt8 = 4
    static let flags: UInt8 = 5
    static let address: UInt8 = 6
    static let role: UInt8 = 7          // repeated, one per role, in the node's order
    static let backup: UInt8 = 8        // repeated: priority u8 · role name
    static let load: UInt8 = 16
    static let cpus: UInt8 = 17
    static let memFree: UInt8 = 18
    static let battery: UInt8 = 19
    static let onBattery: UInt8 = 20
    static let throttled: UInt8 = 21
    static let idle: UInt8 = 22
    static let idleMinutes: UInt8 = 23
    static let digest: UInt8 = 24
    static let services: UInt8 = 25
    // Accusation fields.
    static let accuser: UInt8 = 1
    static let kind: UInt8 = 2
    static let target: UInt8 = 3
    static let claimIncarnation: UInt8 = 4

    static func isRepeatable(_ tag: UInt8) -> Bool { tag == role || tag == backup }

    /// Walks a body's fields in order, checking the order rule, and hands each known-or-not field
    /// to `visit` as a reader over its value. Unknown tags are simply not matched by `visit`.
    static func walk(_ body: [UInt8], _ visit: (UInt8, inout ByteReader) throws(WireError) -> Void) throws(WireError) {
        var r = ByteReader(body)
        var last = -1
        while !r.isAtEnd {
            let tag = try r.u8()
            let len = Int(try r.u8())
            var value = try r.sub(len)
            guard Int(tag) > last || (Int(tag) == last && isRepeatable(tag)) else {
                throw .invalid("field \(tag) out of order or repeated")
            }
            last = Int(tag)
            try visit(tag, &value)
        }
    }
}

extension ByteWriter {
    mutating func field(_ tag: UInt8, _ value: [UInt8]) {
        u8(tag); u8(UInt8(value.count)); raw(value)
    }
    mutating func field(_ tag: UInt8, u8 v: UInt8) { field(tag, [v]) }
    mutating func field(_ tag: UInt8, u16 v: UInt16) { field(tag, [UInt8(v >> 8), UInt8(v & 0xff)]) }
    /// A counter (incarnation, seq): big-endian in as few bytes as it needs (1 to 8), so the small
    /// numbers every beat carries cost 1–3 bytes rather than 8.
    mutating func field(_ tag: UInt8, counter v: UInt64) {
        let n = max(1, (64 - v.leadingZeroBitCount + 7) / 8)
        field(tag, stride(from: 8 * (n - 1), through: 0, by: -8).map { UInt8((v >> UInt64($0)) & 0xff) })
    }
    mutating func field(_ tag: UInt8, name: String) { field(tag, Array(name.utf8.prefix(255))) }
}

extension ByteReader {
    /// The whole value, which must be exactly `n` bytes long.
    mutating func exactly(_ n: Int) throws(WireError) {
        guard remaining == n else { throw .invalid("field of \(remaining) bytes where \(n) are needed") }
    }
    mutating func fieldU8() throws(WireError) -> UInt8 { try exactly(1); return try u8() }
    mutating func fieldU16() throws(WireError) -> UInt16 { try exactly(2); return try u16() }
    /// A counter of 1 to 8 bytes, big-endian (leading zero bytes are allowed).
    mutating func fieldCounter() throws(WireError) -> UInt64 {
        guard (1...8).contains(remaining) else { throw .invalid("a counter is 1 to 8 bytes") }
        var v: UInt64 = 0
        while !isAtEnd { v = v << 8 | UInt64(try u8()) }
        return v
    }
    mutating func fieldBool() throws(WireError) -> Bool {
        let v = try fieldU8()
        guard v <= 1 else { throw .invalid("a boolean is 0 or 1") }
        return v == 1
    }
    mutating func fieldName() throws(WireError) -> String {
        let s = try restAsString()
        guard NodeName.isValid(s) else { throw .invalid("invalid name") }
        return s
    }
}
