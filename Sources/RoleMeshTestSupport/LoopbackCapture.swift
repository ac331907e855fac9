import RoleMeshPlatform
import RoleMeshCore

/// A passive capture of UDP and TCP to or from one port on given IPv4 hosts, as a tcpdump on the
/// machine would see it (an AF_PACKET socket; needs CAP_NET_RAW). The agent never uses it: the
/// privacy test and `rolemesh-bench capture` do, to show that gossip and the task channel on the
/// wire hold nothing readable.
public final class LoopbackCapture: Sendable {
    /// Unchecked: a Dispatch source, which Dispatch makes safe to cancel from any thread.
    private struct Source: @unchecked Sendable { var read: DispatchSourceRead? }
    private let source: Locked<Source>
    private let packets = Locked<[[UInt8]]>([])
    private let segments = Locked<[[UInt8]]>([])
    public static let maxPackets = 500_000

    /// Nil when the process may not open a packet socket.
    public init?(port: UInt16, hosts: Set<String>) {
        let fd = socket(AF_PACKET, Int32(SOCK_DGRAM.rawValue), Int32(UInt16(0x0003).bigEndian))    // ETH_P_ALL
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let ips = Set(hosts.map { $0.split(separator: ".").compactMap { UInt8($0) } })
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: DispatchQueue(label: "rolemesh.capture"))
        let packets = self.packets, segments = self.segments
        s.setEventHandler {
            var buf = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 { break }        // EAGAIN: drained
                if let payload = LoopbackCapture.udpPayload(buf, n, port: port, ips: ips) {
                    packets.withLock { if $0.count < Self.maxPackets { $0.append(payload) } }
                } else if let payload = LoopbackCapture.tcpPayload(buf, n, port: port, ips: ips), !payload.isEmpty {
                    segments.withLock { if $0.count < Self.maxPackets { $0.append(payload) } }
                }
            }
        }
        s.setCancelHandler { _ = close(fd) }
        source = Locked(Source(read: s))
        s.resume()
    }

    /// An IPv4/UDP packet's payload if it is to or from `port` on one of `ips`.
    public static func udpPayload(_ b: [UInt8], _ n: Int, port: UInt16, ips: Set<[UInt8]>) -> [UInt8]? {
        guard n >= 28, b[0] >> 4 == 4, b[9] == 17 else { return nil }
        let ihl = Int(b[0] & 0x0f) * 4
        guard n >= ihl + 8 else { return nil }
        let sport = UInt16(b[ihl]) << 8 | UInt16(b[ihl + 1]), dport = UInt16(b[ihl + 2]) << 8 | UInt16(b[ihl + 3])
        guard sport == port || dport == port, ips.contains(Array(b[12..<16])) || ips.contains(Array(b[16..<20])) else { return nil }
        return Array(b[(ihl + 8)..<n])
    }

    /// An IPv4/TCP segment's payload (possibly empty) if it is to or from `port` on one of `ips`.
    public static func tcpPayload(_ b: [UInt8], _ n: Int, port: UInt16, ips: Set<[UInt8]>) -> [UInt8]? {
        guard n >= 40, b[0] >> 4 == 4, b[9] == 6 else { return nil }
        let ihl = Int(b[0] & 0x0f) * 4
        let total = min(n, Int(UInt16(b[2]) << 8 | UInt16(b[3])))
        guard total >= ihl + 20 else { return nil }
        let sport = UInt16(b[ihl]) << 8 | UInt16(b[ihl + 1]), dport = UInt16(b[ihl + 2]) << 8 | UInt16(b[ihl + 3])
        guard sport == port || dport == port, ips.contains(Array(b[12..<16])) || ips.contains(Array(b[16..<20])) else { return nil }
        let start = ihl + Int(b[ihl + 12] >> 4) * 4
        return start <= total ? Array(b[start..<total]) : nil
    }

    /// Stops capturing; the UDP datagrams captured so far (the TCP payloads: `tcpSegments`).
    public func stop() -> [[UInt8]] {
        source.withLock { $0.read?.cancel(); $0.read = nil }
        return packets.withLock { $0 }
    }

    /// The payloads of the TCP segments captured (each non-empty one; the task channel).
    public var tcpSegments: [[UInt8]] { segments.withLock { $0 } }

    /// What must never be seen in clear: each name and role as UTF-8, and the signals as a gossip
    /// plaintext carries them (wire v2, protocol.md section 4): the run of all their fields, and each
    /// two neighbouring fields (at least 7 bytes: a lone 3-byte field turns up by chance in megabytes
    /// of ciphertext).
    public static func secrets(names: [String], roles: [String], signals: Signals) -> [(what: String, bytes: [UInt8])] {
        var out = (names + roles).map { ($0, Array($0.utf8)) }
        let bare = Wire.encodeBody(.heartbeat(Heartbeat(name: "x", incarnation: 0, seq: 0, address: WireAddress(ip: [], port: 0))))
        let body = Wire.encodeBody(.heartbeat(Heartbeat(name: "x", incarnation: 0, seq: 0, address: WireAddress(ip: [], port: 0), signals: signals)))
        var fields: [[UInt8]] = []
        var i = bare.count
        while i + 2 <= body.count {
            let end = min(body.count, i + 2 + Int(body[i + 1]))
            fields.append(Array(body[i..<end]))
            i = end
        }
        if fields.count > 1 {
            out.append(("signals", fields.flatMap { $0 }))
            for j in 1..<fields.count { out.append(("signal fields \(fields[j - 1][0]) and \(fields[j][0])", fields[j - 1] + fields[j])) }
        } else if let only = fields.first {
            out.append(("signal field \(only[0])", only))
        }
        return out
    }

    /// Which secrets appear in which captured datagrams ("what in an N-byte datagram"), deduplicated.
    public static func leaks(of secrets: [(what: String, bytes: [UInt8])], in packets: [[UInt8]], unit: String = "datagram") -> [String] {
        var hits: Set<String> = []
        for p in packets {
            for (what, needle) in secrets where contains(p, needle) { hits.insert("\(what) in a \(p.count)-byte \(unit)") }
        }
        return hits.sorted()
    }

    /// The same over a TCP stream's bytes: segments joined in capture order, so a name split
    /// across two segments is still found (each connection's segments interleave with others', so
    /// this over-reports at worst).
    public static func streamLeaks(of secrets: [(what: String, bytes: [UInt8])], in segments: [[UInt8]]) -> [String] {
        let joined = segments.flatMap { $0 }
        return secrets.filter { contains(joined, $0.bytes) }.map { "\($0.what) in the task channel's TCP bytes" }
    }

    public static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= hay.count else { return false }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if hay[i..<i + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }
}
