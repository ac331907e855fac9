/// Heartbeat field 25 (protocol.md 4.1): the services a node offers, with their health. One
/// field for all of them, since a node of an earlier version refuses a repeated tag it does not
/// know as out of order; within its 255 bytes, entries of `health u8 · where u8 · port u16 · n u8 ·
/// ROLE/NAME (n bytes) · m u8 · detail (m bytes)`, sorted by name. Details are cut, then services
/// left out, to fit.
enum ServicesField {
    static let maxBytes = 255
    /// Entries this version reads at most (a list longer than that is malformed).
    static let maxCount = 64

    static func encode(_ services: [OfferedService]) -> [UInt8] {
        var out: [UInt8] = []
        for s in services.sorted(by: { $0.service < $1.service }) {
            let name = Array(s.service.utf8.prefix(255))
            let port = UInt16(clamping: s.port)
            let head = [s.health.rawValue, s.placement == .route ? 1 : 0, UInt8(port >> 8), UInt8(port & 0xff), UInt8(name.count)] + name
            guard out.count + head.count + 1 <= maxBytes else { break }
            let room = maxBytes - out.count - head.count - 1
            let detail = Array((s.detail ?? "").utf8.prefix(min(room, 64)))
            out += head + [UInt8(detail.count)] + detail
        }
        return out
    }

    static func decode(_ v: inout ByteReader) throws(WireError) -> [OfferedService] {
        var out: [OfferedService] = []
        while !v.isAtEnd {
            guard out.count < maxCount, let health = ServiceHealth(rawValue: try v.u8()) else {
                throw .invalid("bad service entry")
            }
            let w = try v.u8()
            guard w <= 1 else { throw .invalid("bad service placement") }
            let port = Int(try v.u16())
            let n = Int(try v.u8())
            let name = String(decoding: try v.raw(n), as: UTF8.self)
            guard ServiceName.split(name) != nil else { throw .invalid("invalid service name") }
            let m = Int(try v.u8())
            let detail = String(decoding: try v.raw(m), as: UTF8.self)
            out.append(OfferedService(service: name, health: health, detail: m == 0 ? nil : detail, port: port,
                                      placement: w == 1 ? .route : .holders))
        }
        return out
    }
}
