/// This node's configuration: the contents of `DIR/node.toml`.
public struct NodeConfig: Equatable, Sendable {
    public var name: String
    public var listen: String
    public var seeds: [String]
    public var roles: [String]
    /// Roles this node stands by for, with priority (1 is first).
    public var backup: [String: Int]
    /// Timing profile: "lan", "travel" or "fast".
    public var profile: String
    /// Key `max_tasks`: tasks run at once.
    public var maxTasks: Int
    /// Key `env_passthrough`: names of the agent's environment variables a task also gets.
    public var envPassthrough: [String] = []
    /// Key `max_log`: megabytes of a task's output kept on the node that ran it (the rest is
    /// streamed, not kept); all tasks' output together is kept to `totalLogFactor` times that.
    public var maxLogMB = 10
    public static let totalLogFactor = 10
    public var maxLogBytes: Int { maxLogMB << 20 }
    /// Key `introducers`: the nodes whose introductions, revocations and grants this node accepts,
    /// besides its own (docs/contract.md, "Who may change trust"). Absent means none: `init`
    /// leaves it so (the first device is its own authority), `join` writes the inviter's chain.
    /// Introducer statements the node accepts edit it in place.
    public var introducers: [String]?
    /// Key `recovery`: the mesh's recovery public key (base64, 32 bytes), whose code `init`
    /// printed once; statements signed with it change introducers and revoke on every node.
    public var recovery: String?
    /// Key `forward`: service listeners the agent keeps open, `ROLE/NAME[=[HOST:]PORT]`.
    public var forward: [String] = []
    public var forwards: [ForwardSpec] { forward.compactMap(ForwardSpec.parse) }

    /// The introducers this node accepts (the key absent: none but itself).
    public var acceptedIntroducers: [String] { introducers ?? [] }

    public static let profiles = ["lan", "travel", "fast"]
    public static let keys = ["name", "listen", "seeds", "roles", "backup", "profile", "max_tasks", "env_passthrough", "max_log",
                              "introducers", "recovery", "forward"]

    public init(name: String, listen: String = "0.0.0.0:7946", seeds: [String] = [], roles: [String] = [],
                backup: [String: Int] = [:], profile: String = "lan", maxTasks: Int = 2) {
        self.name = name
        self.listen = listen
        self.seeds = seeds
        self.roles = roles
        self.backup = backup
        self.profile = profile
        self.maxTasks = maxTasks
    }

    /// Parses and validates `node.toml`; every error names the line and key.
    public static func parse(_ text: String) throws(ConfigError) -> NodeConfig {
        var config = NodeConfig(name: "")
        var sawName = false
        for entry in try TOMLSubset.parse(text) {
            switch entry.key {
            case "name":
                config.name = try entry.string()
                guard NodeName.isValid(config.name) else { throw entry.error("invalid node name \(quote(config.name)); \(NodeName.rule)") }
                sawName = true
            case "listen":
                config.listen = try entry.address(entry.string())
            case "seeds":
                config.seeds = try entry.strings()
                for seed in config.seeds { _ = try entry.address(seed) }
            case "roles":
                config.roles = try entry.strings()
                try entry.checkRoleNames(config.roles)
                if let twice = config.roles.firstDuplicate { throw entry.error("role \(quote(twice)) is listed twice") }
            case "backup":
                config.backup = try entry.priorities()
            case "profile":
                config.profile = try entry.string()
                guard profiles.contains(config.profile) else {
                    throw entry.error("expected one of \(profiles.map(quote).joined(separator: ", ")), found \(quote(config.profile))")
                }
            case "max_tasks":
                config.maxTasks = try entry.integer()
                guard config.maxTasks >= 1 else { throw entry.error("must be at least 1, found \(config.maxTasks)") }
            case "max_log":
                config.maxLogMB = try entry.integer()
                guard (1...1_000_000).contains(config.maxLogMB) else {
                    throw entry.error("must be 1 to 1000000 (megabytes of output kept per task), found \(config.maxLogMB)")
                }
            case "env_passthrough":
                config.envPassthrough = try entry.strings()
                for name in config.envPassthrough where !NodeConfig.isValidEnvName(name) {
                    throw entry.error("invalid environment variable name \(quote(name)); use letters, digits and '_', not starting with a digit")
                }
            case "introducers":
                let names = try entry.strings()
                for n in names where !NodeName.isValid(n) { throw entry.error("invalid node name \(quote(n)); \(NodeName.rule)") }
                config.introducers = names
            case "recovery":
                let key = try entry.string()
                guard isBase64Key(key) else {
                    throw entry.error("expected the base64 of a 32-byte public key (44 characters ending in \"=\"), found \(quote(key))")
                }
                config.recovery = key
            case "forward":
                config.forward = try entry.strings()
                for f in config.forward where ForwardSpec.parse(f) == nil {
                    throw entry.error("invalid forward entry \(quote(f)); \(ForwardSpec.rule) (a service name, then a local port)")
                }
                let services = config.forwards.map(\.service)
                if let twice = services.firstDuplicate { throw entry.error("service \(quote(twice)) is forwarded twice") }
            default:
                throw entry.error("unknown key \(quote(entry.key)) (known keys: \(keys.joined(separator: ", ")))")
            }
        }
        guard sawName else { throw ConfigError(key: "name", message: "missing required key \"name\"") }
        return config
    }

    /// A fresh `node.toml` with every key written; `parse(render())` gives back `self`.
    public func render() -> String {
        // Sorted by priority, then name, so the file is stable and reads in standby order.
        let backupPairs = backup.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
            .map { ($0.key, TOMLValue.integer($0.value)) }
        var lines: [(String, TOMLValue, String)] = [
            ("name", .string(name), "this device's name; must match keys/NAME.secret"),
            ("listen", .string(listen), "UDP gossip and TCP tasks, HOST:PORT"),
            ("seeds", .array(seeds.map(TOMLValue.string)), "peers to contact on start"),
            ("roles", .array(roles.map(TOMLValue.string)), "roles this node holds actively"),
            ("backup", .table(backupPairs), "roles this node stands by for, with priority (1 is first)"),
            ("profile", .string(profile), "timing: \"lan\", \"travel\" (battery-friendly) or \"fast\" (tests)"),
            ("max_tasks", .integer(maxTasks), "tasks run at once; more wait in the queue"),
            ("env_passthrough", .array(envPassthrough.map(TOMLValue.string)), "the agent's environment variables tasks also get"),
            ("max_log", .integer(maxLogMB), "MB of output kept per task; all tasks: \(NodeConfig.totalLogFactor)x, oldest removed first"),
        ]
        if let introducers {
            lines.append(("introducers", .array(introducers.map(TOMLValue.string)), "who may change trust here besides this node"))
        }
        if let recovery {
            lines.append(("recovery", .string(recovery), "the mesh's recovery key (its code was printed once by init)"))
        }
        if !forward.isEmpty {
            lines.append(("forward", .array(forward.map(TOMLValue.string)), "services this node keeps a local port open for"))
        }
        let assignments = lines.map { "\($0.0) = \(TOMLSubset.render($0.1))" }
        let width = assignments.map(\.count).max() ?? 0
        var text = "# RoleMesh node configuration.\n# `rolemesh roles|backup add|remove` edit this file in place; comments are kept.\n\n"
        for (assignment, line) in zip(assignments, lines) {
            text += assignment.padding(to: width) + "  # " + line.2 + "\n"
        }
        return text
    }

    /// The base64 text of 32 bytes: 43 characters of the alphabet and one `=`.
    public static func isBase64Key(_ s: String) -> Bool {
        let b = Array(s.utf8)
        func digit(_ c: UInt8) -> Bool {
            (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == 43 || c == 47
        }
        return b.count == 44 && b[43] == 61 && b[..<43].allSatisfy(digit)
    }

    /// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
    public static func isValidEnvName(_ s: String) -> Bool {
        let b = Array(s.utf8)
        func letter(_ c: UInt8) -> Bool { (65...90).contains(c) || (97...122).contains(c) || c == 95 }
        guard let first = b.first, letter(first) else { return false }
        return b.allSatisfy { letter($0) || (48...57).contains($0) }
    }

    /// Splits `HOST:PORT`, where HOST is a host name, an IPv4 address or `[IPv6]`
    /// (returned without brackets), and PORT is 1...65535. Nil if `s` is not of that form.
    public static func splitHostPort(_ s: String) -> (host: String, port: UInt16)? {
        let host: Substring, port: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            port = s[s.index(close, offsetBy: 2)...]
            guard isIPv6(host) else { return nil }
        } else {
            guard let colon = s.lastIndex(of: ":") else { return nil }
            host = s[..<colon]
            port = s[s.index(after: colon)...]
            guard isHostName(host) else { return nil }
        }
        guard port.count <= 5, port.allSatisfy(\.isASCIIDigitChar), let n = UInt16(port), n >= 1 else { return nil }
        return (String(host), n)
    }

    /// A DNS-style name (`desk.local`) or dotted IPv4; all-numeric names must be valid IPv4.
    static func isHostName(_ h: Substring) -> Bool {
        let labels = h.split(separator: ".", omittingEmptySubsequences: false)
        guard !h.isEmpty, h.count <= 253, labels.allSatisfy(isHostLabel) else { return false }
        if h.allSatisfy({ $0.isASCIIDigitChar || $0 == "." }) {
            return labels.count == 4 && labels.allSatisfy { $0.count <= 3 && Int($0)! <= 255 }
        }
        return true
    }

    private static func isHostLabel(_ l: Substring) -> Bool {
        guard let first = l.first, let last = l.last, l.count <= 63, first != "-", last != "-" else { return false }
        return l.allSatisfy { $0.isASCIIDigitChar || $0.isASCIILetter || $0 == "-" || $0 == "_" }
    }

    /// RFC 4291 text form: up to eight hex groups, one `::` at most, an optional
    /// trailing IPv4 (worth two groups) and an optional `%zone`.
    static func isIPv6(_ h: Substring) -> Bool {
        var address = h
        if let percent = h.firstIndex(of: "%") {
            guard h.index(after: percent) < h.endIndex else { return false }
            address = h[..<percent]
        }
        let halves = address.split(separator: "::", omittingEmptySubsequences: false)
        guard halves.count <= 2 else { return false }
        var groups = 0
        for (index, half) in halves.enumerated() where !half.isEmpty {
            let parts = half.split(separator: ":", omittingEmptySubsequences: false)
            for (p, part) in parts.enumerated() {
                let isLast = index == halves.count - 1 && p == parts.count - 1
                if isLast, part.allSatisfy({ $0.isASCIIDigitChar || $0 == "." }), isHostName(part) {  // dotted IPv4
                    groups += 2
                } else if (1...4).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isHexDigit }) {
                    groups += 1
                } else {
                    return false
                }
            }
        }
        return halves.count == 2 ? groups <= 7 : groups == 8
    }
}

/// Node names, also used for role names: both become file or folder names.
public enum NodeName {
    static let rule = "use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"

    /// `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`; task file names use the same pattern up to 255 bytes.
    public static func isValid(_ s: String, maxLength: Int = 63) -> Bool {
        // Byte-wise on purpose: Character comparisons would let combining marks through.
        let b = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) }
        guard let first = b.first, b.count <= maxLength, alnum(first) else { return false }
        return b.allSatisfy { alnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }
    }
}

// MARK: - Typed access to entries, with errors naming key and line

private func quote(_ s: String) -> String { TOMLSubset.quoted(s) }

extension TOMLEntry {
    func error(_ message: String) -> ConfigError { ConfigError(line: line, key: key, message: message) }

    func string() throws(ConfigError) -> String {
        guard case let .string(s) = value else { throw error("expected a string, found \(value.typeDescription)") }
        return s
    }

    func integer() throws(ConfigError) -> Int {
        guard case let .integer(n) = value else { throw error("expected an integer, found \(value.typeDescription)") }
        return n
    }

    func strings() throws(ConfigError) -> [String] {
        guard case let .array(items) = value else { throw error("expected an array of strings, found \(value.typeDescription)") }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard case let .string(s) = item else {
                throw error("expected an array of strings, found \(item.typeDescription) at position \(index + 1)")
            }
            result.append(s)
        }
        return result
    }

    func address(_ s: String) throws(ConfigError) -> String {
        guard NodeConfig.splitHostPort(s) != nil else {
            throw error("expected HOST:PORT (a host name, IPv4 or [IPv6] address, and a port 1-65535), found \(quote(s))")
        }
        return s
    }

    func checkRoleNames(_ names: [String]) throws(ConfigError) {
        for name in names where !NodeName.isValid(name) {
            throw error("invalid role name \(quote(name)); \(NodeName.rule)")
        }
    }

    func priorities() throws(ConfigError) -> [String: Int] {
        guard case let .table(pairs) = value else {
            throw error("expected an inline table like { transcode = 1 }, found \(value.typeDescription)")
        }
        try checkRoleNames(pairs.map(\.0))
        var result: [String: Int] = [:]
        for (role, priority) in pairs {
            guard case let .integer(n) = priority, n >= 1 else {
                let found = if case let .integer(n) = priority { String(n) } else { priority.typeDescription }
                throw error("priority of role \(quote(role)) must be an integer of at least 1, found \(found)")
            }
            result[role] = n
        }
        return result
    }
}

private extension Array where Element: Hashable {
    var firstDuplicate: Element? {
        var seen = Set<Element>()
        return first { !seen.insert($0).inserted }
    }
}

extension Character {
    var isASCIIDigitChar: Bool { ("0"..."9").contains(self) }
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

private extension String {
    func padding(to width: Int) -> String { self + String(repeating: " ", count: Swift.max(0, width - count)) }
}
