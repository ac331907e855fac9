import XCTest
import Foundation

/// The test harness itself. Every test runs in one process, so a harness fault in one test can end
/// the run at another (a full TSan run once died of SIGPIPE "in" ServiceUnitTests).
final class HarnessTests: XCTestCase {
    /// A child that exits without reading its stdin: the background write meets a closed pipe. It
    /// must cost that write only, not this process (SIGPIPE's default is to end it).
    func testAChildThatExitsWithoutReadingItsStdinEndsOnlyItself() throws {
        for _ in 0..<3 {
            let r = try Cluster.run("/bin/true", [], stdin: Data(count: 1 << 20), timeout: 10)
            XCTAssertEqual(r.status, 0)
        }
        // The writes meet the closed pipe after the child is gone. What is checked is that this
        // process is still here to end the test: there is no condition to wait for, so a bounded
        // pause gives them the time.
        Thread.sleep(forTimeInterval: 0.5)
    }

    /// A cluster a test replaced without `shutdown()` leaves no empty `rm-it-*` folder behind
    /// (issue 24: a whole run left one in the temporary directory).
    func testAClusterDroppedWithoutShutdownRemovesItsFolder() {
        var cluster: Cluster? = Cluster()
        let root = cluster!.root.path
        XCTAssertTrue(FileManager.default.fileExists(atPath: root))
        cluster = nil
        XCTAssertNil(cluster)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root), "\(root) was left behind")
    }
}
