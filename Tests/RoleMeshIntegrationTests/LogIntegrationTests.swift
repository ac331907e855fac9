import Foundation
import XCTest
import RoleMeshAgent

/// The agent's log lines (issue 12, item 5): `TIME LEVEL message key=value...`, `--log-level`,
/// and no time of their own under systemd's journal.
final class LogIntegrationTests: XCTestCase {
    var cluster: Cluster!
    override func setUp() { cluster = Cluster(profile: "fast") }
    override func tearDown() { cluster.shutdown() }

    func lines(_ node: String) -> [String] { cluster.log(node).split(separator: "\n").map(String.init) }

    func testLinesCarryTimeLevelAndContextAndLogLevelWarningKeepsInfoOut() throws {
        let nodes = try cluster.create(2)
        try cluster.startOne("node1")
        // node2 only warns: nothing at info, though it starts, meets node1 and takes roles.
        try cluster.startOne("node2", arguments: ["--log-level", "warning"])
        XCTAssertTrue(waitUntil(timeout: 20) { self.cluster.allAlive(nodes) })
        XCTAssertTrue(waitUntil(timeout: 5) { self.lines("node1").contains { $0.hasSuffix("info member-alive peer=node2") } },
                      cluster.log("node1"))
        let started = lines("node1").first { $0.contains(" info agent started on ") } ?? ""
        XCTAssertTrue(started.hasSuffix(" node=node1"), started)
        XCTAssertNotNil(started.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info "#, options: .regularExpression), started)
        XCTAssertEqual(lines("node2").filter { $0.contains(" info ") }, [], "--log-level warning wrote info lines")
        // Bad levels are refused before anything starts.
        let bad = try cluster.cli(["agent", "--log-level", "loud", "--dir", cluster.dir("node2")])
        XCTAssertEqual(bad.status, 64, bad.stderr)
    }

    func testUnderTheJournalLinesHaveNoTimestamp() throws {
        let nodes = try cluster.create(1)
        try cluster.startOne("node1", environment: ["JOURNAL_STREAM": "8:12345"])
        XCTAssertTrue(waitUntil(timeout: 10) { self.cluster.allAlive(nodes) })
        let all = lines("node1")
        XCTAssertTrue(all.contains { $0.hasPrefix("info agent started on ") && $0.hasSuffix(" node=node1") }, cluster.log("node1"))
        XCTAssertFalse(all.contains { $0.first?.isNumber == true }, "a timestamp under the journal: \(all)")
    }
}
