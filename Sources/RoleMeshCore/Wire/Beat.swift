/// A "still here" beat (envelope frame type 3, protocol.md 3.6): what a node sends its watchers
/// between signed heartbeats. It names the signed heartbeat version the sender holds current and
/// counts up from 1 after each new version, so a receiver can take it as fresh without a signature:
///
/// - the pair key proves it came from one of the two devices of the pair, and `name` must be the
///   other one (a datagram reflected back to its sender names the receiver itself);
/// - (version, count) must be newer than every beat accepted from that member, and the version no
///   older than its heartbeat held here, so a replay — from anywhere — is never fresh twice.
///
/// It costs 50-odd bytes on the wire where a signed heartbeat costs 170-odd, and no Ed25519 work at
/// either end. Fields are TLV like statement bodies (`BodyFields`): unknown tags are skipped.
public struct Beat: Equatable, Sendable {
    public var name: String
    public var incarnation: UInt64
    public var seq: UInt64
    /// Beats sent since the sender's heartbeat took this version: 1, 2, 3, …
    public var count: UInt64

    public init(name: String, incarnation: UInt64, seq: UInt64, count: UInt64) {
        self.name = name; self.incarnation = incarnation; self.seq = seq; self.count = count
    }

    public var version: Version { Version(incarnation: incarnation, seq: seq) }

    static let nameField: UInt8 = 1
    static let incarnationField: UInt8 = 2
    static let seqField: UInt8 = 3
    static let countField: UInt8 = 4

    public static func encode(_ b: Beat) -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        w.field(nameField, name: b.name)
        w.field(incarnationField, counter: b.incarnation)
        w.field(seqField, counter: b.seq)
        w.field(countField, counter: b.count)
        return w.bytes
    }

    /// Bounds-checked like `Wire.decode`: anything malformed or out of range throws.
    public static func decode(_ bytes: [UInt8]) throws(WireError) -> Beat {
        guard bytes.count <= Wire.maxDatagramSize else { throw .oversized(bytes.count) }
        var name: String?, inc: UInt64?, seq: UInt64?, count: UInt64?
        try BodyFields.walk(bytes) { (tag, v) throws(WireError) in
            switch tag {
            case nameField: name = try v.fieldName()
            case incarnationField: inc = try v.fieldCounter()
            case seqField: seq = try v.fieldCounter()
            case countField: count = try v.fieldCounter()
            default: break      // a later version's field
            }
        }
        guard let name, let inc, let seq, let count else { throw .invalid("beat lacks a field") }
        guard inc <= Wire.maxIncarnation, seq <= Wire.maxSeq, count >= 1 else { throw .invalid("beat number out of range") }
        return Beat(name: name, incarnation: inc, seq: seq, count: count)
    }
}
