import Glibc
import FoundationEssentials

// The few text helpers full Foundation gave through NSString. The agent links only
// FoundationEssentials: full Foundation brings ICU and ~6 MiB of RSS (docs/benchmarks.md).

extension StringProtocol {
    /// Without leading and trailing whitespace or newlines. ASCII blanks are cut on the bytes (the
    /// probes trim a dozen sysfs values a second, and grapheme breaking showed in an idle agent's
    /// profile); other whitespace at either end takes the general path.
    public var trimmed: String {
        let u = utf8
        let blank: (UInt8) -> Bool = { $0 == 32 || ($0 >= 9 && $0 <= 13) }
        guard let start = u.firstIndex(where: { !blank($0) }) else { return "" }
        // One forward pass (a generic UTF-8 view only walks forward): just after the last non-blank byte.
        var end = u.index(after: start), lastByte = u[start]
        var i = end
        while i < u.endIndex {
            let b = u[i]
            i = u.index(after: i)
            if !blank(b) { end = i; lastByte = b }
        }
        if u[start] < 0x80, lastByte < 0x80 { return String(self[start..<end]) }
        return trimmed { $0.isWhitespace }
    }

    /// Without the leading and trailing characters `drop` matches.
    public func trimmed(where drop: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[first...last])
    }
}

extension String {
    /// Every `scalar` replaced, compared scalar by scalar: a quote followed by a combining mark
    /// is still a quote to a shell or a parser, so it is still escaped here.
    public func replacingScalar(_ scalar: Unicode.Scalar, with replacement: String) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for s in unicodeScalars {
            if s == scalar { out += replacement } else { out.unicodeScalars.append(s) }
        }
        return out
    }
}

extension Sequence<UInt8> {
    /// Lowercase hex, two digits a byte.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in self { out += [digits[Int(b >> 4)], digits[Int(b & 0xf)]] }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Error {
    /// A file or system failure as a person reads it: the C library's sentence for the errno
    /// behind it ("Permission denied"), else the error's own description.
    public var sentence: String {
        if let e = self as? CocoaError {
            if let posix = e.userInfo["NSUnderlyingError"] as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
            if e.code == .fileReadInapplicableStringEncoding { return "not UTF-8 text" }
        }
        if let posix = self as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        if let e = self as? MeshError { return e.message }
        return String(describing: self)
    }
}
