import RoleMeshPlatform
import RoleMeshCore

/// What this device's own addresses say, for an agent whose network can change under it.
public enum OwnAddress {
    /// Whether `address`'s IP is one of this device's now (a UDP socket can be bound to it).
    public static func isLocal(_ address: WireAddress) -> Bool {
        guard !address.isUnspecified else { return true }
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, sockDgram, 0)
        guard fd >= 0 else { return true }            // cannot tell: assume it is still here
        defer { _ = sysClose(fd) }
        let probe = WireAddress(ip: address.ip, port: 0)
        return SocketAddress.with(probe) { bind(fd, $0, $1) } == 0 || errno != EADDRNOTAVAIL
    }

    /// The address this device would be reached at by the mesh now, for an agent listening on
    /// 0.0.0.0 or [::]: the local IP the routing table picks toward the first target that has one
    /// (members first, then seeds), with the listen port. Nil: no route anywhere (between networks).
    public static func toward(_ targets: [WireAddress], listen: WireAddress) -> WireAddress? {
        for t in targets where listen.isIPv6 || !t.isIPv6 {
            if let ip = SocketAddress.localIP(toward: t) { return WireAddress(ip: ip.ip, port: listen.port) }
        }
        return nil
    }
}
