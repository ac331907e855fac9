import XCTest
import Foundation
import RoleMeshAgent

final class TaskJournalTests: XCTestCase {
    func testPruneForgetsOnlyOldFinishedTasks() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let journal = TaskJournal(dir: NodeDirectory(root: root))
        let old = Clock.rfc3339(Date().addingTimeInterval(-40 * 86_400)), recent = Clock.rfc3339()
        func add(_ id: String, state: String, finished: String?) {
            let j = JSON.object([("id", .string(id)), ("role", .string("r")), ("task", .string("t")), ("node", .string("n")),
                                 ("from", .string("n")), ("state", .string(state)), ("submitted", .string(old)),
                                 ("finished", .optional(finished))])
            journal.save(TaskRecordFixture.record(j))
        }
        add("aaaaaaaa01", state: "done", finished: old)
        add("aaaaaaaa02", state: "done", finished: recent)
        add("aaaaaaaa03", state: "queued", finished: nil)
        journal.prune(olderThan: 30)
        XCTAssertEqual(Set(journal.all().map(\.id)), ["aaaaaaaa02", "aaaaaaaa03"])
        XCTAssertNil(journal.record("aaaaaaaa01"))
        XCTAssertNotNil(journal.record("aaaaaaaa02"))
        XCTAssertNotNil(journal.record("aaaaaaaa03"), "a queued task is never pruned")
        XCTAssertEqual(journal.resolve("aaaaaaaa0"), nil, "an ambiguous prefix resolves to nothing")
        XCTAssertEqual(journal.resolve("aaaaaaaa02"), "aaaaaaaa02")
    }
}

enum TaskRecordFixture {
    static func record(_ j: JSON) -> TaskRecord { TaskRecord(json: j)! }
}
