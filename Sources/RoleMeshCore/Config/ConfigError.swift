/// A problem in `node.toml` (or another TOML file of the node, `file`), located by line and key where possible.
public struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file as a person names it, e.g. `node.toml` or `roles/metabolism/schedule.toml`.
    public var file = "node.toml"
    /// 1-based line the problem is on; nil when it concerns the whole file (a missing key).
    public var line: Int?
    /// The key the problem concerns, if any.
    public var key: String?
    /// What is wrong, e.g. `expected an integer, found a string`.
    public var message: String

    public init(line: Int? = nil, key: String? = nil, message: String) {
        self.line = line
        self.key = key
        self.message = message
    }

    /// One sentence, e.g. `node.toml line 3: key "max_tasks": expected an integer, found a string`.
    public var description: String {
        var text = file
        if let line { text += " line \(line)" }
        text += ": "
        // Messages about the key itself (`unknown key "lisen"`) already name it;
        // prefixing `key "lisen":` again would only stutter.
        if let key, !message.contains("key \"\(key)\"") { text += "key \"\(key)\": " }
        return text + message
    }
}
