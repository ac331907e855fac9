import FoundationEssentials

/// Any JSON value, read and written through Foundation's coders: for code that reads the CLI's
/// `--json` output (or another program's) by key, as a script would, without a type for each
/// shape — the tests and the bench. The agent and the CLI themselves use typed `Codable` replies.
public indirect enum JSON: Codable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func optional(_ v: Double?) -> JSON { v.map(JSON.double) ?? .null }
    public static func optional(_ v: Bool?) -> JSON { v.map(JSON.bool) ?? .null }
    public static func optional(_ v: String?) -> JSON { v.map(JSON.string) ?? .null }
    public static func optional(_ v: Int?) -> JSON { v.map(JSON.int) ?? .null }

    public var serialized: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }

    public static func parse(_ text: String) -> JSON? { try? JSONDecoder().decode(JSON.self, from: Data(text.utf8)) }

    public struct Key: CodingKey {
        public var stringValue: String
        public var intValue: Int? { nil }
        public init(stringValue: String) { self.stringValue = stringValue }
        public init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        if let o = try? decoder.container(keyedBy: Key.self) {
            self = .object(try o.allKeys.sorted { $0.stringValue < $1.stringValue }.map { ($0.stringValue, try o.decode(JSON.self, forKey: $0)) })
            return
        }
        if var a = try? decoder.unkeyedContainer() {
            var out: [JSON] = []
            while !a.isAtEnd { out.append(try a.decode(JSON.self)) }
            self = .array(out)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else { self = .string(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .object(let kv):
            var c = encoder.container(keyedBy: Key.self)
            for (k, v) in kv { try c.encode(v, forKey: Key(stringValue: k)) }
        case .array(let a):
            var c = encoder.unkeyedContainer()
            for v in a { try c.encode(v) }
        default:
            var c = encoder.singleValueContainer()
            switch self {
            case .bool(let b): try c.encode(b)
            case .int(let i): try c.encode(i)
            case .double(let d) where d.isFinite: try c.encode((d * 10_000).rounded() / 10_000)
            case .string(let s): try c.encode(s)
            default: try c.encodeNil()
            }
        }
    }

    public subscript(key: String) -> JSON? {
        if case .object(let kv) = self { return kv.first { $0.0 == key }?.1 }
        return nil
    }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int? { switch self { case .int(let i): i; case .double(let d): Int(exactly: d.rounded(.towardZero)); default: nil } }
    public var double: Double? { switch self { case .int(let i): Double(i); case .double(let d): d; default: nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var object: [(String, JSON)]? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }
}
