import Foundation
import RoleMeshPlatform
import RoleMeshAgent
import XCTest

/// What replaced full Foundation in the agent (Process, trimming, escaping): the places where a
/// hand-made version could differ from what it replaced.
final class FoundationFreeTests: XCTestCase {
    func testCaptureKeepsTheChosenOutputAndTheExitCode() {
        let r = Spawn.capture(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], keep: 1, quiet: true)
        XCTAssertEqual(r.status, 3)
        XCTAssertEqual(r.output, "out\n")
        let e = Spawn.capture(["/bin/sh", "-c", "echo out >/dev/null; echo err >&2"], keep: 2)
        XCTAssertEqual(e.status, 0)
        XCTAssertEqual(e.output, "err\n")
    }

    func testCaptureKillsAToolThatHangsAndSaysWhyOneCannotStart() {
        let t0 = Date()
        // The grandchild (sleep) holds the pipe too: the deadline ends the wait, the group kill ends both.
        let r = Spawn.capture(["/bin/sh", "-c", "sleep 20"], keep: 1, within: 0.3)
        XCTAssertNil(r.status)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        let missing = Spawn.capture(["/nonexistent/tool"], keep: 1)
        XCTAssertNil(missing.status)
        XCTAssertEqual(missing.output, "No such file or directory")
    }

    func testTrimmingAndScalarReplacement() {
        XCTAssertEqual(" \t a b \r\n".trimmed, "a b")
        XCTAssertEqual("   ".trimmed, "")
        XCTAssertEqual("\u{00A0} x\u{2003}\n".trimmed, "x", "Unicode spaces at the ends too")
        XCTAssertEqual(" é\u{301} ".trimmed, "é\u{301}", "a combining mark stays with its letter")
        XCTAssertEqual("42\n"[...].trimmed, "42", "a Substring")
        XCTAssertEqual(": ;x: ;".trimmed { ";: ".contains($0) }, "x")
        // A quote followed by a combining mark is one Character but still a quote to a shell.
        XCTAssertEqual("a'\u{301}b".replacingScalar("'", with: "'\\''"), "a'\\''\u{301}b")
        XCTAssertEqual([0x00, 0x0f, 0xa5, 0xff].hex, "000fa5ff")
    }
}
