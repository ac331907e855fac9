import RoleMeshPlatform
import RoleMeshTaskChannel

/// One line of `rolemesh doctor`: what was checked, what was found, and for a failure the
/// command (or the one step) that fixes it.
public struct DoctorCheck: Codable, Equatable, Sendable {
    public var name: String
    public var ok: Bool
    public var detail: String
    public var fix: String?

    public init(name: String, ok: Bool, detail: String, fix: String? = nil) {
        self.name = name; self.ok = ok; self.detail = detail; self.fix = ok ? nil : fix
    }

    static func pass(_ name: String, _ detail: String) -> DoctorCheck { DoctorCheck(name: name, ok: true, detail: detail) }

    static func fail(_ name: String, _ detail: String, fix: String) -> DoctorCheck {
        DoctorCheck(name: name, ok: false, detail: detail, fix: fix)
    }

    /// A failure from an error whose sentence ends in "run `COMMAND`" (the agent's own wording):
    /// the command becomes the fix, the rest the detail, so both say the same thing.
    static func fail(_ name: String, _ error: MeshError, fix fallback: String) -> DoctorCheck {
        let m = error.message
        if let run = m.ranges(of: "run `").last, m.hasSuffix("`") {
            let command = String(m[run.upperBound..<m.index(before: m.endIndex)])
            let detail = m[..<run.lowerBound].trimmed { ";: ".contains($0) }
            return fail(name, detail, fix: command)
        }
        return fail(name, m, fix: fallback)
    }

    /// `fix` is always present in JSON: `null` when the check passed.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name); try c.encode(ok, forKey: .ok)
        try c.encode(detail, forKey: .detail); try c.encode(fix, forKey: .fix)
    }

    /// `ok    NAME  DETAIL` or `FAIL  NAME  DETAIL; fix: FIX`, one line; text from other nodes escaped.
    public func line(nameWidth: Int) -> String {
        let padded = name + String(repeating: " ", count: max(0, nameWidth - name.count))
        var s = (ok ? "ok    " : "FAIL  ") + padded + "  " + detail
        if let fix { s += "; fix: " + fix }
        return s.escapingControlCharacters
    }
}

/// `doctor --json`: every check, and whether all passed.
public struct DoctorReport: Codable, Equatable, Sendable {
    public var ok: Bool
    public var checks: [DoctorCheck]
    public init(checks: [DoctorCheck]) { self.checks = checks; ok = checks.allSatisfy(\.ok) }

    public var text: String {
        let width = checks.map(\.name.count).max() ?? 0
        return checks.map { $0.line(nameWidth: width) }.joined(separator: "\n")
    }
}
