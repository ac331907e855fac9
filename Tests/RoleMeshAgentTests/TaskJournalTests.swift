import XCTest
import Foundation
import RoleMeshAgent
import RoleMeshStorage
import RoleMeshPlatform

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

/// `max_log`: what is kept of a task's output, and of all tasks' output together.
final class OutputCapTests: XCTestCase {
    func testATaskKeepsItsFirstMaxLogBytesThenSaysTheRestWasCut() throws {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("out-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: url) }
        let log = OutputLog(url: url, limit: 1 << 20)
        for _ in 0..<5 { log.append(.stdout, [UInt8](repeating: 0x78, count: 300_000)) }
        log.append(.stderr, Array("late\n".utf8))
        log.close()
        let reader = OutputLog.Reader(url: url)
        var out = 0, err = ""
        while let (type, bytes) = reader.next() {
            if type == .stdout { out += bytes.count } else { err += String(decoding: bytes, as: UTF8.self) }
        }
        XCTAssertEqual(out, 1 << 20)
        XCTAssertEqual(err, OutputLog.cutNote(limit: 1 << 20), "nothing after the cut, and the cut said once")
    }

    func testAllTasksOutputIsKeptUnderTheCapOldestRemovedFirst() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let journal = TaskJournal(dir: NodeDirectory(root: root))
        let ids = (0..<4).map { String(repeating: "\($0)", count: 8) }
        for (i, id) in ids.enumerated() {
            journal.save(TaskRecord(id: id, role: "r", task: "t", node: "n", from: "n", state: .done,
                                    submitted: Clock.rfc3339(Date().addingTimeInterval(Double(i)))))
            let log = OutputLog(url: journal.outputFile(id))
            log.append(.stdout, [UInt8](repeating: 0x78, count: 1000))
            log.close()
            journal.noteOutput(id)
        }
        // Room for two and a half: the two oldest go, except one still running.
        journal.trimOutputs(toAtMost: 2500, keeping: [ids[0]])
        journal.flush()     // outputs are replaced on the disk queue
        func stored(_ id: String) -> String {
            let r = OutputLog.Reader(url: journal.outputFile(id))
            var s = ""
            while let (_, b) = r.next() { s += String(decoding: b, as: UTF8.self) }
            return s
        }
        XCTAssertEqual(stored(ids[0]).count, 1000, "a running task's output is spared")
        XCTAssertTrue(stored(ids[1]).hasPrefix("rolemesh: this task's output was removed"), stored(ids[1]))
        XCTAssertTrue(stored(ids[2]).hasPrefix("rolemesh: this task's output was removed"))
        XCTAssertEqual(stored(ids[3]).count, 1000, "the newest is kept")
    }
}

/// The journal keeps 30 days of tasks: a task's own work (its updates, the output cap after it,
/// finding it by a prefix) must not read the other tasks' records.
final class TaskJournalIndexTests: XCTestCase {
    func testATasksOwnWorkReadsNoOtherRecordAndTheCapUsesARunningTotal() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = NodeDirectory(root: root)
        let base = Date().addingTimeInterval(-3600)
        do {
            let earlier = TaskJournal(dir: dir)
            for i in 0..<300 {
                var r = TaskRecord(id: String(format: "%016x", i + 1), role: "r", task: "t", node: "n", from: "n", state: .done,
                                   submitted: Clock.rfc3339(base.addingTimeInterval(Double(i))))
                r.finished = r.submitted
                earlier.save(r)
                let log = OutputLog(url: earlier.outputFile(r.id))
                log.append(.stdout, [UInt8](repeating: 0x78, count: 1000))
                log.close()
            }
            earlier.flush()
        }
        let journal = TaskJournal(dir: dir)
        XCTAssertEqual(journal.totalOutputBytes, 300 * 1005, "the first use reads the folder once")
        let afterLoad = journal.recordsRead
        XCTAssertEqual(afterLoad, 300)
        // A new task, as the executor journals it: three updates, its output, the cap.
        let id = "ffffffffffffffff"
        var initial = TaskRecord(id: id, role: "r", task: "t", node: "n", from: "n", state: .queued, submitted: Clock.rfc3339())
        initial.args = ["a"]
        journal.update(id, initial: initial) { $0.state = .queued }
        journal.update(id) { $0.state = .running; $0.started = Clock.rfc3339() }
        let log = OutputLog(url: journal.outputFile(id))
        log.append(.stdout, [UInt8](repeating: 0x79, count: 5000))
        log.close()
        journal.noteOutput(id)
        journal.trimOutputs(toAtMost: 300 * 1005)
        journal.update(id) { $0.state = .done; $0.exitCode = 0; $0.finished = Clock.rfc3339() }
        XCTAssertEqual(journal.resolve("ffffffff"), id)
        XCTAssertEqual(journal.recordsRead, afterLoad, "no record was read from disk for the new task's work")
        XCTAssertLessThanOrEqual(journal.totalOutputBytes, 300 * 1005)
        journal.flush()     // outputs are replaced on the disk queue
        // The oldest outputs went first (5 of them make room for the new 5005 bytes), the newest stayed.
        let note = TaskJournalIndexTests.stored(journal, String(format: "%016x", 1))
        XCTAssertTrue(note.hasPrefix("rolemesh: this task's output was removed"), note)
        XCTAssertEqual(TaskJournalIndexTests.stored(journal, String(format: "%016x", 300)).count, 1000)
        XCTAssertEqual(TaskJournalIndexTests.stored(journal, id).count, 5000)
        XCTAssertEqual(journal.record(id)?.args, ["a"], "the record on disk has everything")
        XCTAssertEqual(journal.all().count, 301)
        // A reopened journal sees the same, once the writes are done.
        journal.flush()
        let again = TaskJournal(dir: dir)
        XCTAssertEqual(again.totalOutputBytes, journal.totalOutputBytes)
        XCTAssertEqual(again.unfinished().count, 0)
    }

    static func stored(_ journal: TaskJournal, _ id: String) -> String {
        let r = OutputLog.Reader(url: journal.outputFile(id))
        var s = ""
        while let (_, b) = r.next() { s += String(decoding: b, as: UTF8.self) }
        return s
    }
}

/// A request's arguments in the journal are capped as its output is (issue 24: 900 kB records kept
/// 30 days, with no cap).
final class JournalArgsCapTests: XCTestCase {
    func testOnlyTheFirstBytesOfTheArgumentsAreKept() {
        XCTAssertEqual(TaskJournal.keptArgs(["a", "b c"]), ["a", "b c"])
        let big = [String(repeating: "x", count: 3000), String(repeating: "é", count: 2000), "tail"]
        let kept = TaskJournal.keptArgs(big)
        XCTAssertEqual(kept.count, 3)
        XCTAssertEqual(kept[0].utf8.count, 3000)
        XCTAssertLessThanOrEqual(kept[0].utf8.count + kept[1].utf8.count, TaskJournal.argsKept)
        XCTAssertTrue(kept[1].allSatisfy { $0 == "é" }, "cut on a character")
        XCTAssertTrue(kept[2].contains("were not kept"), kept[2])
    }

    func testASavedRecordKeepsAtMostTheCapAndTrimmingDropsTheOldestArguments() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        let journal = TaskJournal(dir: NodeDirectory(root: root))
        for i in 0..<3 {
            var r = TaskRecord(id: "bbbbbbbb0\(i)", role: "r", task: "t", node: "n", from: "n", state: .done,
                               submitted: "2026-01-0\(i + 1)T00:00:00Z")
            r.args = [String(repeating: "a", count: 900_000)]
            journal.save(r)
        }
        journal.flush()     // records are written off the caller's path
        let file = root.appendingPathComponent("state/tasks/bbbbbbbb00/task.json")
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int)
        XCTAssertLessThan(size, TaskJournal.argsKept + 1024, "a 900 kB argument was kept whole")
        journal.trimOutputs(toAtMost: 2 * TaskJournal.argsKept + 100)
        XCTAssertEqual(journal.record("bbbbbbbb00")?.args, [], "the oldest task's arguments go first")
        XCTAssertFalse(journal.record("bbbbbbbb02")?.args.isEmpty ?? true)
    }
}

/// The journal's files are written on the disk queue (issue 25), never by the caller: what the
/// journal answers meanwhile comes from memory, so a reader sees every change at once.
final class JournalDiskQueueTests: XCTestCase {
    /// A disk that takes 300 ms per write: anything written by the caller would be there at once.
    func slowJournal() -> (TaskJournal, URL) {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("journal-\(UUID().uuidString.prefix(8))")
        let writer = DiskWriter(environment: ["ROLEMESH_TEST_WRITE_DELAY_MS": "300"])
        return (TaskJournal(dir: NodeDirectory(root: root), writer: writer), root)
    }

    func testRecordsAreReadableAtOnceAndWrittenOnTheQueue() throws {
        let (journal, root) = slowJournal()
        defer { try? FileManager.default.removeItem(at: root) }
        let id = "cccccccc00000001"
        let folder = root.appendingPathComponent("state/tasks/\(id)")
        journal.update(id, initial: TaskRecord(id: id, role: "r", task: "t", node: "n", from: "n", state: .queued,
                                               submitted: Clock.rfc3339())) { $0.state = .running }
        journal.update(id) { $0.state = .done; $0.exitCode = 0; $0.finished = Clock.rfc3339() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), "the caller made the task's folder")
        // What a reply naming the task prompts (`tasks`, `logs`): the final record, from memory.
        XCTAssertEqual(journal.record(id)?.state, .done)
        XCTAssertEqual(journal.all().map(\.id), [id])
        XCTAssertEqual(journal.recordsRead, 0)
        // The task's output may come before its record's first write: its folder is made for it.
        let log = OutputLog(url: journal.outputFile(id))
        log.append(.stdout, Array("out\n".utf8))
        log.close()
        journal.noteOutput(id)
        XCTAssertEqual(journal.totalOutputBytes, 9)
        journal.flush()
        // Written: the finished record left memory and is read from its file, whole.
        XCTAssertEqual(journal.record(id)?.state, .done)
        XCTAssertEqual(journal.recordsRead, 1)
        XCTAssertEqual(TaskJournal(dir: NodeDirectory(root: root)).record(id)?.exitCode, 0)
    }

    func testPruningAndTheCapWriteOnTheQueueAndCountAtOnce() throws {
        let (journal, root) = slowJournal()
        defer { try? FileManager.default.removeItem(at: root) }
        let old = Clock.rfc3339(Date().addingTimeInterval(-40 * 86_400))
        let ids = ["dddddddd00000001", "dddddddd00000002", "dddddddd00000003"]
        for (i, id) in ids.enumerated() {
            var r = TaskRecord(id: id, role: "r", task: "t", node: "n", from: "n", state: .done,
                               submitted: i == 0 ? old : Clock.rfc3339(Date().addingTimeInterval(Double(i))))
            r.finished = r.submitted
            journal.save(r)
            let log = OutputLog(url: journal.outputFile(id))
            log.append(.stdout, [UInt8](repeating: 0x78, count: 1000))
            log.close()
            journal.noteOutput(id)
        }
        journal.flush()
        let pruned = root.appendingPathComponent("state/tasks/\(ids[0])")
        journal.prune(olderThan: 30)
        XCTAssertTrue(FileManager.default.fileExists(atPath: pruned.path), "the caller removed the folder")
        XCTAssertEqual(journal.all().map(\.id), [ids[1], ids[2]], "a folder about to go is not taken back")
        XCTAssertNil(journal.record(ids[0]))
        journal.trimOutputs(toAtMost: 1500)
        XCTAssertLessThanOrEqual(journal.totalOutputBytes, 1500, "counted at once")
        XCTAssertEqual(TaskJournalIndexTests.stored(journal, ids[1]).count, 1000, "the caller replaced the output")
        journal.flush()
        XCTAssertFalse(FileManager.default.fileExists(atPath: pruned.path))
        XCTAssertTrue(TaskJournalIndexTests.stored(journal, ids[1]).hasPrefix("rolemesh: this task's output was removed"))
        XCTAssertEqual(TaskJournalIndexTests.stored(journal, ids[2]).count, 1000)
        XCTAssertEqual(journal.all().map(\.id), [ids[1], ids[2]])
    }
}
