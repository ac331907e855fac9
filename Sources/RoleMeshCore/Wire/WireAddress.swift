import Glibc

/// A numeric IP address and port as carried on the wire: family 0 (unspecified), 4 or 6.
/// An unspecified address means "use the address you received my datagram from".
public struct WireAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: [UInt8]      // 0, 4 or 16 bytes
    public var port: UInt16

    public init(ip: [UInt8], port: UInt16) { self.ip = ip; self.port = port }

    /// Parses a numeric host ("127.0.0.2", "::1", "[::1]") and a port.
    public init?(host: String, port: UInt16) {
        var h = host
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, h, &v4) == 1 {
            ip = withUnsafeBytes(of: &v4) { Array($0) }
        } else if inet_pton(AF_INET6, h, &v6) == 1 {
            ip = withUnsafeBytes(of: &v6) { Array($0) }
        } else {
            return nil
        }
        self.port = port
    }

    public var isIPv6: Bool { ip.count == 16 }
    public var isUnspecified: Bool { ip.allSatisfy { $0 == 0 } }

    public var host: String {
        switch ip.count {
        case 4:  return ip.map(String.init).joined(separator: ".")
        case 16:
            var v6 = in6_addr()
            withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: ip) }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            inet_ntop(AF_INET6, &v6, &buf, socklen_t(buf.count))
            return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        default: return "0.0.0.0"
        }
    }

    /// "127.0.0.2:7946" or "[::1]:7946".
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The same host with another address's IP when ours is unspecified.
    public func filling(from observed: WireAddress) -> WireAddress {
        isUnspecified ? WireAddress(ip: observed.ip, port: port) : self
    }
}
