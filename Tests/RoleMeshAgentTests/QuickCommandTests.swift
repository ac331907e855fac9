import XCTest
import RoleMeshAgent
import RoleMeshControl
import RoleMeshTaskChannel

/// The requests written without the JSON encoder are byte for byte what it writes.
final class ControlRequestLineTests: XCTestCase {
    func testPlainLinesAreTheEncodersLines() {
        let all: [ControlRequest] = [.status, .watch, .leave, .drain, .undrain, .tasks, .schedules,
                                     .route(role: "r", heavy: true), .cancel(id: "abcd1234"), .logs(id: "abcd1234", follow: false)]
        for r in all {
            if let plain = r.plainLine {
                XCTAssertEqual(String(decoding: plain, as: UTF8.self), String(decoding: ControlJSON.line(r), as: UTF8.self))
            }
        }
        XCTAssertNotNil(ControlRequest.status.plainLine)
        XCTAssertNil(ControlRequest.route(role: "r", heavy: true).plainLine)
        var every = ""
        for i in 0..<0x80 { every.unicodeScalars.append(Unicode.Scalar(UInt8(i))) }
        let argsSets: [[String]] = [[], ["a b", "", "it's \"quoted\"", "--x", "back\\slash", "/path/to", every, "é😀\u{2028}"]]
        for args in argsSets {
            for to in [nil, "node2"] {
                let r = ControlRequest.submit(SubmitRequest(role: "job", task: "t.sh", args: args, heavy: true, to: to, detach: false,
                                                            queue: true, retry: 3, whenIdle: false))
                XCTAssertEqual(r.plainLine.map { String(decoding: $0, as: UTF8.self) }, String(decoding: ControlJSON.line(r), as: UTF8.self))
            }
        }
    }
}

/// The command lines recognized without ArgumentParser, and those left to it.
final class QuickCommandTests: XCTestCase {
    func testOnlyThePlainestSpellingsAreRecognized() {
        XCTAssertEqual(QuickCommand.parse(["--version"]), .version)
        XCTAssertEqual(QuickCommand.parse(["status"]), .status(json: false, dir: nil))
        XCTAssertEqual(QuickCommand.parse(["status", "--json", "--dir", "/x"]), .status(json: true, dir: "/x"))
        XCTAssertEqual(QuickCommand.parse(["status", "--dir=/x"]), .status(json: false, dir: "/x"))
        XCTAssertEqual(QuickCommand.parse(["submit", "r/t", "--dir", "/x", "--", "a", "--b"]),
                       .submit(role: "r", task: "t", args: ["a", "--b"], detach: false, heavy: false, queue: false, dir: "/x"))
        XCTAssertEqual(QuickCommand.parse(["submit", "--detach", "r/t.sh"]),
                       .submit(role: "r", task: "t.sh", args: [], detach: true, heavy: false, queue: false, dir: nil))
        for args in [["--version", "x"], ["-V"], ["status", "--help"], ["status", "-h"], ["status", "--json", "--json"],
                     ["status", "extra"], ["status", "--dir"], ["status", "--dir", "--json"], ["status", "--dir="],
                     ["status", "--dir", "a", "--dir", "b"], ["status", "--", "x"], ["submit"], ["submit", "r/t", "hello"],
                     ["submit", "r"], ["submit", "r/t", "--to", "n"], ["submit", "r/t", "--retry", "2"], ["submit", "../t"],
                     ["submit", "r/t", "--when", "idle"], ["submit", "r/t", "--help"], ["tasks"], ["help"], []] {
            XCTAssertNil(QuickCommand.parse(args), "\(args) is ArgumentParser's")
        }
        XCTAssertNil(QuickCommand.parse(["submit", "r/t", "--", String(repeating: "x", count: Frame.maxArgumentBytes)]),
                     "arguments too large: ArgumentParser's validation says so")
    }
}

/// The exit code read without the decoder is the decoder's, or nil.
final class ExitInfoPlainCodeTests: XCTestCase {
    func testTheCodeOfWhatTheAgentWritesAndNilForAnythingElse() {
        for code in [0, 1, 7, 127, 130, 255, -1] {
            for state in ["done", "failed", "cancelled"] {
                XCTAssertEqual(ExitInfo.plainCode(Frame.exit(code: code, state: state).payload), code)
            }
        }
        for odd in ["{\"state\":\"done\",\"code\":3}", "{\"code\":null}", "{\"code\": 3}", "{\"code\":3x}", "{\"code\":", "", "{\"code\":99999999999}"] {
            XCTAssertNil(ExitInfo.plainCode(Array(odd.utf8)), odd)
        }
    }
}
