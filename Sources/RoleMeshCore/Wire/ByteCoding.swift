/// Big-endian byte writer and a bounds-checked reader for the wire format.
/// The reader never traps: every read past the end throws `WireError.truncated`,
/// so a hostile datagram can only ever produce an error.

public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []
    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
    public mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(s)) & 0xff)) } }
    public mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(s)) & 0xff)) } }
    public mutating func raw(_ v: some Collection<UInt8>) { bytes.append(contentsOf: v) }
    /// A string of at most 255 UTF-8 bytes, prefixed by its length.
    public mutating func shortString(_ s: String) {
        let utf8 = Array(s.utf8.prefix(255))
        u8(UInt8(utf8.count)); raw(utf8)
    }
}

public enum WireError: Error, Equatable, Sendable {
    case truncated
    case oversized(Int)
    case badMagic
    case unsupportedVersion(UInt8)
    case invalid(String)
}

public struct ByteReader {
    let bytes: [UInt8]
    public private(set) var offset: Int
    let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes; self.offset = start; self.end = end ?? bytes.count
    }
    public var remaining: Int { end - offset }
    public var isAtEnd: Bool { offset >= end }

    public mutating func u8() throws(WireError) -> UInt8 {
        guard offset < end else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }
    public mutating func u16() throws(WireError) -> UInt16 {
        UInt16(try u8()) << 8 | UInt16(try u8())
    }
    public mutating func u32() throws(WireError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 8 | UInt32(try u8()) }
        return v
    }
    public mutating func u64() throws(WireError) -> UInt64 {
        var v: UInt64 = 0
        for _ in 0..<8 { v = v << 8 | UInt64(try u8()) }
        return v
    }
    public mutating func raw(_ n: Int) throws(WireError) -> [UInt8] {
        guard n >= 0, remaining >= n else { throw .truncated }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }
    /// A reader over the next `n` bytes, which this reader skips.
    public mutating func sub(_ n: Int) throws(WireError) -> ByteReader {
        guard n >= 0, remaining >= n else { throw .truncated }
        defer { offset += n }
        return ByteReader(bytes, from: offset, to: offset + n)
    }
    /// The rest of this reader's bytes, as a UTF-8 string.
    public mutating func restAsString() throws(WireError) -> String {
        let b = try raw(remaining)
        guard let s = String(validating: b, as: UTF8.self) else { throw .invalid("string is not UTF-8") }
        return s
    }
    public mutating func shortString() throws(WireError) -> String {
        let n = Int(try u8())
        let b = try raw(n)
        guard let s = String(validating: b, as: UTF8.self) else { throw .invalid("string is not UTF-8") }
        return s
    }
}
