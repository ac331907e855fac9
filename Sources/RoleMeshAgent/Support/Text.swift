#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The few text helpers full Foundation gave through NSString. The agent links only
// FoundationEssentials: full Foundation brings ICU and ~6 MiB of RSS (docs/benchmarks.md).

extension StringProtocol {
    /// Without leading and trailing whitespace or newlines.
    public var trimmed: String { trimmed { $0.isWhitespace } }

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
