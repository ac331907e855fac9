import FoundationEssentials

/// The one JSON configuration of the control socket and of what the CLI prints: Foundation's
/// coders, keys sorted so output is stable, `/` left alone.
public enum ControlJSON {
    public static func encode<T: Encodable>(_ value: T, userInfo: [CodingUserInfoKey: any Sendable] = [:]) -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.userInfo = userInfo
        // Every type here is plain data: encoding cannot fail short of a bug.
        return (try? e.encode(value)) ?? Data("{}".utf8)
    }

    /// One line of text: the encoded value and a newline.
    public static func line<T: Encodable>(_ value: T) -> Data { encode(value) + Data([10]) }

    public static func string<T: Encodable>(_ value: T) -> String { String(decoding: encode(value), as: UTF8.self) }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) -> T? {
        try? JSONDecoder().decode(type, from: data)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) -> T? { decode(type, from: Data(text.utf8)) }

    /// A number as the agent shows it: at most four decimals, so probe noise does not leak out.
    public static func rounded(_ d: Double?) -> Double? {
        guard let d, d.isFinite else { return nil }
        return (d * 10_000).rounded() / 10_000
    }
}
