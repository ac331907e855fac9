import XCTest
import Foundation
import RoleMeshPlatform
import RoleMeshAgent
import Glibc
import RoleMeshStorage

final class AtomicFileTests: XCTestCase {
    var root: URL!

    override func setUp() {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("atomic-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(at: root) }

    func testReplacesTheFileOwnerOnlyAndLeavesNoTemporary() throws {
        let file = root.appendingPathComponent("peers.json")
        try "old\n".write(to: file, atomically: false, encoding: .utf8)
        chmod(file.path, 0o644)
        try AtomicFile.replace(file, with: "new\n")
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "new\n")
        var st = stat()
        XCTAssertEqual(stat(file.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600, "everything RoleMesh writes is for its owner only")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path), ["peers.json"])
    }

    func testAFailureNamesTheFileAndLeavesNothingBehind() {
        let file = root.appendingPathComponent("missing/incarnation")
        XCTAssertThrowsError(try AtomicFile.replace(file, with: "1\n")) { error in
            XCTAssertTrue((error as? MeshError)?.message.contains(file.path) ?? false, "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root.path), [])
    }

    func testWriteAllWritesEveryByteToAPipe() throws {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&fds), 0)
        let bytes = (0..<200_000).map { UInt8($0 % 251) }
        nonisolated(unsafe) var got: [UInt8] = []
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { [fd = fds[0]] in
            var buf = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                got += buf[0..<n]
            }
            done.signal()
        }
        XCTAssertTrue(FD.writeAll(fds[1], bytes), "a pipe is written with write(2) after send(2) says ENOTSOCK")
        close(fds[1])
        done.wait()
        close(fds[0])
        XCTAssertEqual(got, bytes)
    }
}
