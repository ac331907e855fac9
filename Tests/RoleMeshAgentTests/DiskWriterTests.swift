import XCTest
import Foundation
import RoleMeshAgent

/// The agent's disk queue: writes happen in the order asked for, answers come on the reply queue.
final class DiskWriterTests: XCTestCase {
    func testWritesRunInOrderAndAnswerOnTheReplyQueue() {
        let replies = DispatchQueue(label: "test.replies")
        let key = DispatchSpecificKey<Bool>()
        replies.setSpecific(key: key, value: true)
        let disk = DiskWriter(replyingOn: replies, environment: ["ROLEMESH_TEST_WRITE_DELAY_MS": "20"])
        let lock = NSLock()
        nonisolated(unsafe) var order: [Int] = []
        let answered = expectation(description: "every write answered")
        answered.expectedFulfillmentCount = 5
        let started = Date()
        for i in 1...5 {
            disk.write({ () throws(MeshError) in lock.lock(); order.append(i); lock.unlock() }) { failure in
                XCTAssertNil(failure)
                XCTAssertEqual(DispatchQueue.getSpecific(key: key), true, "answers come on the reply queue")
                answered.fulfill()
            }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.05, "asking to write never waits for the disk")
        wait(for: [answered], timeout: 10)
        XCTAssertEqual(order, [1, 2, 3, 4, 5], "a newer incarnation must never be overwritten by an older one")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.1, "the test hook delays every write")
    }

    func testAFailedWriteIsReported() {
        let disk = DiskWriter(replyingOn: DispatchQueue(label: "test.replies"), environment: [:])
        let failed = expectation(description: "failure answered")
        disk.write({ () throws(MeshError) in throw MeshError(MeshError.other, "disk full") }) { failure in
            XCTAssertEqual(failure?.message, "disk full")
            failed.fulfill()
        }
        wait(for: [failed], timeout: 10)
    }
}
