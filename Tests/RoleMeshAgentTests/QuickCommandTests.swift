import XCTest
import RoleMeshAgent
import RoleMeshControl

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
