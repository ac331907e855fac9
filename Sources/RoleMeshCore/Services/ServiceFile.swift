/// One service of a role, a `[NAME]` table of `roles/ROLE/service.toml` (docs/contract.md,
/// "Services: the thin client").
public struct ServiceDefinition: Equatable, Sendable {
    public enum Check: Equatable, Sendable {
        /// A TCP connect to `127.0.0.1:port` succeeds.
        case tcp
        /// An executable in `roles/ROLE/`: exit 0 is healthy.
        case executable(String)
    }

    /// Where the service runs: every holder (backups while they are the role's route), or only
    /// on the role's current route (one instance in the mesh).
    public enum Placement: String, Equatable, Sendable { case holders, route }

    public var role: String
    public var name: String
    public var port: Int
    /// An executable in `roles/ROLE/` the agent keeps running while the node offers the service.
    public var run: String?
    public var check: Check = .tcp
    public var placement: Placement = .holders

    public init(role: String, name: String, port: Int, run: String? = nil, check: Check = .tcp, placement: Placement = .holders) {
        self.role = role; self.name = name; self.port = port; self.run = run; self.check = check; self.placement = placement
    }

    /// `ROLE/NAME`, as the mesh names it.
    public var id: String { "\(role)/\(name)" }
}

/// `roles/ROLE/service.toml`: one `[NAME]` table per service, read with the same TOML reader as
/// `node.toml`; every error names the file, line and key.
public enum ServiceFile {
    public static let keys = ["port", "run", "check", "where"]

    /// `file`: how errors name it, e.g. `roles/llm/service.toml`.
    public static func parse(_ text: String, role: String, file: String) throws(ConfigError) -> [ServiceDefinition] {
        do {
            return try parseEntries(TOMLSubset.parse(text, tables: true), role: role)
        } catch {
            var e = error
            e.file = file
            throw e
        }
    }

    static func parseEntries(_ entries: [TOMLEntry], role: String) throws(ConfigError) -> [ServiceDefinition] {
        try TOMLSubset.tables(entries, what: "service", example: "api", isValid: { ServiceName.isValid($0) }, rule: ServiceName.rule)
            .map { t throws(ConfigError) in try definition(role: role, name: t.name, t.entries) }
    }

    static func definition(role: String, name: String, _ entries: [TOMLEntry]) throws(ConfigError) -> ServiceDefinition {
        var d = ServiceDefinition(role: role, name: name, port: 0)
        for e in entries {
            switch e.key {
            case "port":
                let p = try e.integer()
                guard (1...65535).contains(p) else { throw e.error("expected a TCP port 1-65535, found \(p)") }
                d.port = p
            case "run":
                d.run = try executable(e)
            case "check":
                let c = try e.string()
                d.check = c == "tcp" ? .tcp : .executable(try executable(e))
            case "where":
                let w = try e.string()
                guard let p = ServiceDefinition.Placement(rawValue: w) else {
                    throw e.error("expected \"holders\" or \"route\", found \(TOMLSubset.quoted(w))")
                }
                d.placement = p
            default:
                throw e.error("unknown key \"\(e.key)\" (known keys: \(keys.joined(separator: ", ")))")
            }
        }
        guard d.port > 0 else {
            throw ConfigError(line: entries.first?.line, key: "port", message: "table [\(name)] lacks the required key \"port\"")
        }
        return d
    }

    /// A file name in the role's folder: never a path, so a service runs only what the role holds.
    static func executable(_ e: TOMLEntry) throws(ConfigError) -> String {
        let s = try e.string()
        guard NodeName.isValid(s, maxLength: 255) else {
            throw e.error("expected the name of an executable in the role's folder (\(NodeName.rule)), found \(TOMLSubset.quoted(s))")
        }
        return s
    }
}

/// Service names: `[A-Za-z0-9][A-Za-z0-9._-]*`, up to 63 bytes (a role's rule), so that
/// `ROLE/NAME` and its health fit in a heartbeat field.
public enum ServiceName {
    public static let rule = NodeName.rule

    public static func isValid(_ s: String) -> Bool { NodeName.isValid(s) }

    /// `ROLE/NAME` split, or nil when either part breaks its rule.
    public static func split(_ s: String) -> (role: String, name: String)? {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, NodeName.isValid(String(parts[0])), isValid(String(parts[1])) else { return nil }
        return (String(parts[0]), String(parts[1]))
    }
}
