import XCTest
import Foundation
import RoleMeshPlatform
import RoleMeshAgent

/// Trust follows `keys/` through `FolderWatcher` (inotify): a key file added or moved is reported,
/// a folder created later is watched from the next event on, and a folder moved away as a whole is
/// not watched (the agent polls) until it is back and `rearm` finds it.
final class FolderWatcherTests: XCTestCase {
    func testChangesAreReportedAndAFolderMovedAwayIsFoundAgain() throws {
        #if os(Linux)
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("folderwatcher-\(getpid())-\(UUID().uuidString)").path
        let keys = root + "/keys", revoked = keys + "/revoked"
        try fm.createDirectory(atPath: keys, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        let changes = Locked(0)
        let count = { changes.withLock { $0 } }
        let w = try XCTUnwrap(FolderWatcher([keys, revoked]) { changes.withLock { $0 += 1 } })
        defer { w.stop() }
        XCTAssertTrue(w.watching)

        XCTAssertTrue(fm.createFile(atPath: keys + "/a.pub", contents: Data("x\n".utf8)))
        XCTAssertTrue(waitFor { count() > 0 }, "a new key file must be reported")
        var seen = count()
        try fm.createDirectory(atPath: revoked, withIntermediateDirectories: false)
        XCTAssertTrue(waitFor { count() > seen })
        seen = count()
        try fm.moveItem(atPath: keys + "/a.pub", toPath: revoked + "/a.pub")
        XCTAssertTrue(waitFor { count() > seen }, "a key moving to keys/revoked/ must be reported")

        try fm.moveItem(atPath: keys, toPath: root + "/keys.old")
        XCTAssertTrue(waitFor { !w.watching }, "keys/ moved away: nothing is watched at its path")
        try fm.createDirectory(atPath: keys, withIntermediateDirectories: false)
        w.rearm()
        XCTAssertTrue(w.watching)
        seen = count()
        XCTAssertTrue(fm.createFile(atPath: keys + "/b.pub", contents: Data("y\n".utf8)))
        XCTAssertTrue(waitFor { count() > seen }, "the new keys/ must be watched")
        #endif
    }

    /// Up to 5 s, looking every 10 ms.
    func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
