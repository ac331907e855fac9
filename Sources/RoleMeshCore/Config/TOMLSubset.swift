/// A TOML value of the subset `node.toml` uses.
public enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    /// An inline table; pairs keep the order they were written in, keys are unique.
    case table([(String, TOMLValue)])

    /// "a string", "an integer", ... for error messages.
    public var typeDescription: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .float: "a float"
        case .bool: "a boolean"
        case .array: "an array"
        case .table: "a table"
        }
    }

    /// Tables compare as TOML means them: same keys with equal values, in any order.
    public static func == (lhs: TOMLValue, rhs: TOMLValue) -> Bool {
        switch (lhs, rhs) {
        case let (.string(a), .string(b)): a == b
        case let (.integer(a), .integer(b)): a == b
        case let (.float(a), .float(b)): a == b
        case let (.bool(a), .bool(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.table(a), .table(b)):
            a.count == b.count && a.allSatisfy { pair in b.contains { $0.0 == pair.0 && $0.1 == pair.1 } }
        default: false
        }
    }
}

/// One `key = value` line (or lines, for a multi-line array) of a document.
public struct TOMLEntry: Equatable, Sendable {
    public var key: String
    public var value: TOMLValue
    /// 1-based line of the key.
    public var line: Int
    /// The `[table]` the key is under, in a document parsed with `tables: true`; nil at the top level.
    public var table: String?
    /// Where the value's text sits, in unicode scalars of the parsed text; used by `setting`.
    var valueRange: Range<Int>

    public init(key: String, value: TOMLValue, line: Int) {
        self.init(key: key, value: value, line: line, valueRange: 0..<0)
    }

    init(key: String, value: TOMLValue, line: Int, valueRange: Range<Int>) {
        self.key = key
        self.value = value
        self.line = line
        self.valueRange = valueRange
    }

    public static func == (lhs: TOMLEntry, rhs: TOMLEntry) -> Bool {
        lhs.key == rhs.key && lhs.value == rhs.value && lhs.line == rhs.line
    }
}

/// Parser, renderer and comment-preserving editor for the TOML subset of `node.toml`:
/// top-level `key = value` lines, strings, integers, floats, booleans, arrays (may span
/// lines) and one-line inline tables. No dotted keys, dates or multi-line strings; `[table]`
/// headers only when asked for (`schedule.toml`: one table per task).
public enum TOMLSubset {
    /// A per-role file of tables (`schedule.toml`, `service.toml`): its entries grouped by `[table]`,
    /// tables in file order. Every key belongs in a table (`example` shows one) whose name passes
    /// `isValid`.
    static func tables(_ entries: [TOMLEntry], what: String, example: String, isValid: (String) -> Bool,
                       rule: String) throws(ConfigError) -> [(name: String, entries: [TOMLEntry])] {
        var order: [String] = []
        var byName: [String: [TOMLEntry]] = [:]
        for e in entries {
            guard let name = e.table else {
                throw e.error("keys belong in a table named after the \(what), e.g. [\(example)] above \"\(e.key) = ...\"")
            }
            if byName[name] == nil {
                guard isValid(name) else { throw e.error("invalid \(what) name \"\(name)\" in its [table]; \(rule)") }
                order.append(name)
            }
            byName[name, default: []].append(e)
        }
        return order.map { ($0, byName[$0]!) }
    }

    public static func parse(_ text: String, tables: Bool = false) throws(ConfigError) -> [TOMLEntry] {
        var parser = Parser(text)
        parser.allowTables = tables
        return try parser.document()
    }

    /// Valid TOML for `value`: `"a\"b"`, `["a", "b"]`, `{ transcode = 1 }`, `{}`.
    public static func render(_ value: TOMLValue) -> String {
        switch value {
        case let .string(s): return quoted(s)
        case let .integer(n): return String(n)
        case let .float(x): return renderFloat(x)
        case let .bool(b): return b ? "true" : "false"
        case let .array(items): return "[" + items.map(render).joined(separator: ", ") + "]"
        case let .table(pairs):
            if pairs.isEmpty { return "{}" }
            return "{ " + pairs.map { renderKey($0.0) + " = " + render($0.1) }.joined(separator: ", ") + " }"
        }
    }

    /// A key as TOML needs it written: bare if it can be, quoted otherwise
    /// (a role named `a.b` must be quoted, or TOML would read a dotted key).
    public static func renderKey(_ key: String) -> String {
        !key.isEmpty && key.unicodeScalars.allSatisfy(isBareKeyScalar) ? key : quoted(key)
    }

    /// `text` with `key` set to `value`. An existing value (even a multi-line array) is
    /// replaced where it stands, so every other byte, comments included, is kept (comments
    /// inside an old multi-line array go with it); a missing key is appended as a new last line.
    public static func setting(_ key: String, to value: TOMLValue, in text: String) throws(ConfigError) -> String {
        let entries = try parse(text)
        let rendered = render(value)
        if let entry = entries.first(where: { $0.key == key }) {
            var scalars = Array(text.unicodeScalars)
            scalars.replaceSubrange(entry.valueRange, with: rendered.unicodeScalars)
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            return String(view)
        }
        var result = text
        // Scalar check: as a Character, "\r\n" is not "\n".
        if let last = result.unicodeScalars.last, last != "\n" { result += "\n" }
        return result + renderKey(key) + " = " + rendered + "\n"
    }

    // MARK: Rendering helpers

    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    static func renderFloat(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        // Swift already writes "1.0", "1e-05", "inf", "-inf": all valid TOML floats.
        return x.description
    }

    static func isBareKeyScalar(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "-"
    }
}

// MARK: - Parser

/// A recursive-descent parser over unicode scalars, so value ranges are plain offsets
/// (a `Character` would merge "\r\n" into one and blur line ends).
private struct Parser {
    let s: [Unicode.Scalar]
    var i = 0
    var line = 1
    /// The key being parsed, so errors inside its value can name it.
    var key: String?
    /// `[name]` headers are accepted (they set `table` of the entries below them).
    var allowTables = false
    var table: String?
    var tablesSeen: [String: Int] = [:]

    init(_ text: String) { s = Array(text.unicodeScalars) }

    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }

    func fail(_ message: String) -> ConfigError { ConfigError(line: line, key: key, message: message) }

    mutating func document() throws(ConfigError) -> [TOMLEntry] {
        var entries: [TOMLEntry] = []
        while true {
            key = nil
            skipBlank()
            guard let c = peek else { return entries }
            if c == "[" {
                guard allowTables else { throw fail("tables are not supported; write every key at the top level") }
                try tableHeader()
                continue
            }
            let keyLine = line
            let k = try parseKey()
            key = k
            if let first = entries.first(where: { $0.key == k && $0.table == table }) {
                throw fail("duplicate key \"\(k)\" (first set on line \(first.line))")
            }
            skipSpaces()
            if peek == "." { throw fail("dotted keys are not supported") }
            try expect("=", "expected \"=\" after the key")
            skipSpaces()
            let start = i
            let v = try value()
            var entry = TOMLEntry(key: k, value: v, line: keyLine, valueRange: start..<i)
            entry.table = table
            entries.append(entry)
            try endOfLine()
        }
    }

    /// `[name]`: the keys below belong to table `name`, until the next header.
    mutating func tableHeader() throws(ConfigError) {
        i += 1
        if peek == "[" { throw fail("arrays of tables ([[...]]) are not supported") }
        skipSpaces()
        let name = try parseKey()
        key = name
        skipSpaces()
        if peek == "." { throw fail("dotted table names are not supported") }
        try expect("]", "expected \"]\" after the table name")
        if let first = tablesSeen[name] { throw fail("duplicate table [\(name)] (first on line \(first))") }
        tablesSeen[name] = line
        table = name
        try endOfLine()
    }

    // MARK: Whitespace and comments

    mutating func skipSpaces() {
        while let c = peek, c == " " || c == "\t" { i += 1 }
    }

    mutating func skipComment() {
        if peek == "#" { while let c = peek, c != "\n" { i += 1 } }
    }

    /// Spaces, comments and line breaks: between entries and between array items.
    mutating func skipBlank() {
        while true {
            skipSpaces()
            skipComment()
            switch peek {
            case "\n": i += 1; line += 1
            case "\r": i += 1
            default: return
            }
        }
    }

    mutating func endOfLine() throws(ConfigError) {
        skipSpaces()
        skipComment()
        if peek == "\r" { i += 1 }
        guard peek == nil || peek == "\n" else { throw fail("unexpected text after the value") }
    }

    mutating func expect(_ c: Unicode.Scalar, _ message: String) throws(ConfigError) {
        guard peek == c else { throw fail(message) }
        i += 1
    }

    // MARK: Keys

    mutating func parseKey() throws(ConfigError) -> String {
        switch peek {
        case "\"": return try basicString()
        case "'": return try literalString()
        default:
            let start = i
            while let c = peek, TOMLSubset.isBareKeyScalar(c) { i += 1 }
            guard i > start else { throw fail("expected a key, found \(found())") }
            return text(start..<i)
        }
    }

    // MARK: Values

    mutating func value() throws(ConfigError) -> TOMLValue {
        switch peek {
        case nil, "\n", "\r", "#": throw fail("missing value")
        case "\"": return .string(try basicString())
        case "'": return .string(try literalString())
        case "[": return try array()
        case "{": return try inlineTable()
        default: return try scalar()
        }
    }

    mutating func basicString() throws(ConfigError) -> String {
        i += 1
        if peek == "\"", i + 1 < s.count, s[i + 1] == "\"" { throw fail("multi-line strings are not supported") }
        var out = String.UnicodeScalarView()
        while true {
            guard let c = peek, c != "\n" else { throw fail("unterminated string") }
            i += 1
            switch c {
            case "\"": return String(out)
            case "\\": out.append(try escape())
            default: out.append(c)
            }
        }
    }

    mutating func escape() throws(ConfigError) -> Unicode.Scalar {
        guard let c = peek else { throw fail("unterminated string") }
        i += 1
        switch c {
        case "\"": return "\""
        case "\\": return "\\"
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        case "b": return "\u{08}"
        case "f": return "\u{0C}"
        case "u": return try hexScalar(digits: 4)
        case "U": return try hexScalar(digits: 8)
        default: throw fail("invalid escape \"\\\(c)\" in string")
        }
    }

    mutating func hexScalar(digits: Int) throws(ConfigError) -> Unicode.Scalar {
        guard i + digits <= s.count,
              s[i..<i + digits].allSatisfy(\.properties.isASCIIHexDigit),
              let code = UInt32(text(i..<i + digits), radix: 16),
              let scalar = Unicode.Scalar(code)
        else { throw fail("invalid unicode escape in string") }
        i += digits
        return scalar
    }

    mutating func literalString() throws(ConfigError) -> String {
        i += 1
        if peek == "'", i + 1 < s.count, s[i + 1] == "'" { throw fail("multi-line strings are not supported") }
        let start = i
        while peek != "'" {
            guard let c = peek, c != "\n" else { throw fail("unterminated string") }
            i += 1
        }
        i += 1
        return text(start..<i - 1)
    }

    mutating func array() throws(ConfigError) -> TOMLValue {
        let opened = line
        i += 1
        var items: [TOMLValue] = []
        while true {
            skipBlank()
            if peek == nil { throw unclosed(opened) }
            if peek == "]" { i += 1; return .array(items) }
            let itemLine = line
            items.append(try value())
            let valueEnd = line
            skipBlank()
            if peek == "," { i += 1 } else if peek != "]" {
                // The next line went on with something else (`seeds = []`): the `]` is missing where
                // the array's last item ended, not where the parser noticed.
                if peek == nil || line > valueEnd { throw unclosed(opened, lastItemLine: itemLine) }
                throw fail("expected \",\" or \"]\" in array, found \(found())")
            }
        }
    }

    /// An array whose `]` never came, reported on the line it should have been on.
    func unclosed(_ opened: Int, lastItemLine: Int? = nil) -> ConfigError {
        let at = lastItemLine ?? opened
        return ConfigError(line: at, key: key, message: "missing \"]\": the array opened on line \(opened) is not closed (add \"]\" at the end of line \(at))")
    }

    /// Inline tables stay on one line, as in TOML 1.0, so only spaces are skipped here.
    mutating func inlineTable() throws(ConfigError) -> TOMLValue {
        i += 1
        var pairs: [(String, TOMLValue)] = []
        skipSpaces()
        if peek == "}" { i += 1; return .table(pairs) }
        while true {
            skipSpaces()
            try checkInlineTableOpen()
            if peek == "}" { throw fail("trailing comma in inline table") }
            let k = try parseKey()
            if pairs.contains(where: { $0.0 == k }) { throw fail("duplicate key \"\(k)\" in inline table") }
            skipSpaces()
            try expect("=", "expected \"=\" after \"\(k)\" in inline table")
            skipSpaces()
            pairs.append((k, try value()))
            skipSpaces()
            try checkInlineTableOpen()
            switch peek {
            case ",": i += 1
            case "}": i += 1; return .table(pairs)
            default: throw fail("expected \",\" or \"}\" in inline table, found \(found())")
            }
        }
    }

    func checkInlineTableOpen() throws(ConfigError) {
        if peek == nil || peek == "\n" || peek == "\r" {
            throw fail("unterminated inline table (an inline table must fit on one line)")
        }
    }

    /// Booleans and numbers: read a run of token characters, then classify it.
    mutating func scalar() throws(ConfigError) -> TOMLValue {
        let start = i
        while let c = peek, TOMLSubset.isBareKeyScalar(c) || c == "+" || c == "." { i += 1 }
        let token = text(start..<i)
        guard !token.isEmpty else { throw fail("expected a value, found \(found())") }
        switch token {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        let plain = token.replacingUnderscores()
        if Number.isInteger(token) {
            guard let n = Int(plain) else { throw fail("integer \(token) is out of range") }
            return .integer(n)
        }
        if Number.isFloat(token), let x = Double(plain) { return .float(x) }
        // Text written without quotes (an address, a name): read the rest of the word, so the
        // message shows all of it and says the fix, instead of "invalid number 127.0.0.9".
        while let c = peek, !" \t\r\n,]}#".unicodeScalars.contains(c) { i += 1 }
        let word = text(start..<i)
        let numeric = word.first.map { $0.isASCIIDigit || "+-.".contains($0) } ?? false
        if numeric, !word.contains(":"), word.filter({ $0 == "." }).count < 2 {
            throw fail("invalid number \(word)")
        }
        throw fail("\(word) is not quoted: text (an address, a name) must be in quotes, as in \"\(word)\"")
    }

    // MARK: Helpers

    func text(_ range: Range<Int>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: s[range])
        return String(view)
    }

    /// The offending character, for messages.
    func found() -> String {
        switch peek {
        case nil: "the end of the file"
        case "\n", "\r": "the end of the line"
        case let c?: "\"\(c)\""
        }
    }
}

/// TOML's number grammar (decimal only): checked here because `Int()` and `Double()`
/// accept forms TOML does not (".5", "1.", "0x1p3", leading zeros).
private enum Number {
    static func isInteger(_ t: String) -> Bool { isDecimal(unsigned(Substring(t))) }

    static func isFloat(_ t: String) -> Bool {
        var mantissa = unsigned(Substring(t))
        var exponent: Substring?
        if let e = mantissa.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = unsigned(mantissa[mantissa.index(after: e)...])
            mantissa = mantissa[..<e]
        }
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard isDecimal(parts[0]) else { return false }
        if parts.count == 2, !isDigitRun(parts[1]) { return false }
        if let exponent, !isDigitRun(exponent) { return false }  // exponents may have leading zeros
        return parts.count == 2 || exponent != nil
    }

    private static func unsigned(_ t: Substring) -> Substring {
        t.hasPrefix("+") || t.hasPrefix("-") ? t.dropFirst() : t
    }

    /// No leading zeros: TOML reserves them (`007` is not a number).
    private static func isDecimal(_ t: Substring) -> Bool {
        isDigitRun(t) && (t == "0" || !t.hasPrefix("0"))
    }

    /// Digits with single underscores only between digits: `1_000`, not `_1`, `1__0`, `1_`.
    private static func isDigitRun(_ t: Substring) -> Bool {
        guard let first = t.first, let last = t.last, first.isASCIIDigit, last.isASCIIDigit else { return false }
        return t.allSatisfy { $0.isASCIIDigit || $0 == "_" } && !t.contains("__")
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

private extension String {
    func replacingUnderscores() -> String { filter { $0 != "_" } }
}
