import XCTest
import Foundation
import RoleMeshAgent

final class TaskJournalTests: XCTestCase {
    func testPruneForgetsOnlyOldFinishedTasks() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let journal = TaskJournal(dir: NodeDirectory(root: root))
        let old = Clock.rfc3339(Date().addingTimeInterval(-40 * 86_400)), recent = Clock.rfc3339()
        func add(_ id: String, state: TaskRecord.State, finished: String?) {
            var r = TaskRecord(id: id, role: "r", task: "t", node: "n", from: "n", state: state, submitted: old)
            r.finished = finished
            journal.save(r)
        }
        add("aaaaaaaa01", state: .done, finished: old)
        add("aaaaaaaa02", state: .done, finished: recent)
        add("aaaaaaaa03", state: .queued, finished: nil)
        journal.prune(olderThan: 30)
        XCTAssertEqual(Set(journal.all().map(\.id)), ["aaaaaaaa02", "aaaaaaaa03"])
        XCTAssertNil(journal.record("aaaaaaaa01"))
        XCTAssertNotNil(journal.record("aaaaaaaa02"))
        XCTAssertNotNil(journal.record("aaaaaaaa03"), "a queued task is never pruned")
        XCTAssertEqual(journal.resolve("aaaaaaaa0"), nil, "an ambiguous prefix resolves to nothing")
        XCTAssertEqual(journal.resolve("aaaaaaaa02"), "aaaaaaaa02")
    }
}

extension TaskJournalTests {
    /// A `task.json` as the hand-written serializer of earlier versions wrote it still loads,
    /// and a saved record keeps its arguments (the control reply leaves them out).
    func testJournalsWrittenByEarlierVersionsStillLoad() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let journal = TaskJournal(dir: NodeDirectory(root: root))
        let id = "abcdef0123456789"
        let folder = root.appendingPathComponent("state/tasks/\(id)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try #"{"id": "abcdef0123456789", "role": "job", "task": "mark", "node": null, "from": "desk", "state": "queued", "exit_code": null, "submitted": "2026-01-02T03:04:05Z", "started": null, "finished": null, "args": ["a \"b\"", "c"]}"#
            .appending("\n").write(to: folder.appendingPathComponent("task.json"), atomically: false, encoding: .utf8)
        let r = try XCTUnwrap(journal.record(id))
        XCTAssertEqual(r.state, .queued)
        XCTAssertNil(r.node)
        XCTAssertEqual(r.args, ["a \"b\"", "c"])
        journal.update(id) { $0.state = .done; $0.exitCode = 0 }
        let again = try XCTUnwrap(journal.record(id))
        XCTAssertEqual(again.args, ["a \"b\"", "c"])
        XCTAssertEqual(again.exitCode, 0)
    }
}
