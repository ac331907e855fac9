import XCTest
import Foundation
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshStorage

/// The agent's disk queue: writes happen in the order asked for; asking never waits for the disk.
final class DiskWriterTests: XCTestCase {
    func testWritesRunInOrderAndAskingNeverWaits() async {
        let disk = DiskWriter(environment: ["ROLEMESH_TEST_WRITE_DELAY_MS": "20"])
        let order = Locked<[Int]>([])
        let started = Date()
        for i in 1...4 { disk.write { () throws(MeshError) in order.withLock { $0.append(i) } } }
        XCTAssertLessThan(Date().timeIntervalSince(started), 0.05, "asking to write never waits for the disk")
        let failure = await disk.written { () throws(MeshError) in order.withLock { $0.append(5) } }
        XCTAssertNil(failure)
        XCTAssertEqual(order.withLock { $0 }, [1, 2, 3, 4, 5], "a newer incarnation must never be overwritten by an older one")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.1, "the test hook delays every write")
    }

    func testAFailedWriteIsReported() async {
        let disk = DiskWriter(environment: [:])
        let failure = await disk.written { () throws(MeshError) in throw MeshError(MeshError.other, "disk full") }
        XCTAssertEqual(failure?.message, "disk full")
    }
}
