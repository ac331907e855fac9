/// A local listener for a service: `ROLE/NAME[=[HOST:]PORT]` (node.toml `forward`), or `connect`'s
/// service with its `--local [HOST:]PORT`. Without a port the service's own port is used, on 127.0.0.1.
public struct ForwardSpec: Equatable, Sendable {
    public var service: String
    public var host: String
    /// nil: the service's own port, known once a node offering it is heard from.
    public var port: UInt16?

    public init(service: String, host: String = "127.0.0.1", port: UInt16? = nil) {
        self.service = service; self.host = host; self.port = port
    }

    /// `ROLE/NAME[=[HOST:]PORT]`, or nil.
    public static func parse(_ s: String) -> ForwardSpec? {
        let parts = s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard ServiceName.split(parts[0]) != nil else { return nil }
        var spec = ForwardSpec(service: parts[0])
        if parts.count == 2 {
            guard let (host, port) = local(parts[1]) else { return nil }
            spec.host = host; spec.port = port
        }
        return spec
    }

    /// `[HOST:]PORT` (a port 1-65535, the host 127.0.0.1 unless given), or nil.
    public static func local(_ s: String) -> (host: String, port: UInt16)? {
        if let p = UInt16(s), p > 0 { return ("127.0.0.1", p) }
        guard let (h, p) = NodeConfig.splitHostPort(s), p > 0 else { return nil }
        return (h, p)
    }

    /// How node.toml's error names the rule.
    public static let rule = "expected \"ROLE/NAME\" or \"ROLE/NAME=[HOST:]PORT\""
}
