import RoleMeshPlatform
import CLinux

/// Tells the agent when this device's addresses change (another Wi-Fi, a cable, a VPN coming up
/// or going down): on Linux a netlink socket subscribed to address and link events, waited on by
/// the `Poller`. What changed is not parsed: the agent looks again at what it needs (the address
/// it announces, whether its fixed listen address is still here). Elsewhere nothing is watched
/// yet (macOS would use `NWPathMonitor`): the agent notices at its next periodic look.
public final class AddressWatcher: Sendable {
    private let fd: Int32
    private let registration: Locked<Poller.Registration?>

    /// Nil if the kernel refuses the netlink socket (a sandbox without it): nothing is watched.
    public init?(onChange: @escaping @Sendable () -> Void) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_nl()
        addr.nl_family = sa_family_t(AF_NETLINK)
        addr.nl_groups = UInt32(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_LINK)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard rc == 0 else { close(fd); return nil }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        self.fd = fd
        registration = Locked(nil)
        let reg = Poller.shared.register(fd) { [registration] readable, _ in
            guard let r = registration.withLock({ $0 }) else { return }
            if readable {
                // Drain every queued message (their content does not matter), then look once.
                var buf = [UInt8](repeating: 0, count: 8192)
                for _ in 0..<64 {
                    let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    if n <= 0 { break }
                }
                onChange()
            }
            Poller.shared.arm(r, read: true, write: false)
        }
        guard let reg else { close(fd); return nil }
        registration.withLock { $0 = reg }
        Poller.shared.arm(reg, read: true, write: false)
    }

    public func stop() {
        guard let r = registration.withLock({ r -> Poller.Registration? in defer { r = nil }; return r }) else { return }
        Poller.shared.remove(r)
        close(fd)
    }
}
