/// Text that came from another node (refusal sentences, error and info messages, names) is
/// shown with control characters escaped, so a peer can never drive the user's terminal.
extension String {
    /// C0 controls (tab kept), DEL and C1 controls rendered as `\u{1b}`-style escapes; everything else as is.
    public var escapingControlCharacters: String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for scalar in unicodeScalars {
            let v = scalar.value
            if (v < 0x20 && v != 0x09) || v == 0x7f || (0x80...0x9f).contains(v) {
                out += "\\u{" + String(v, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
