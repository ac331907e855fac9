import Foundation
import RoleMeshAgent
import XCTest

/// The idle definition: CPU busy (niced time left out) below 0.3 of the machine, and where there
/// is a seat, no input on its active sessions.
final class IdleProbeTests: XCTestCase {
    func testNicedTimeDoesNotCountAsBusy() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let t = IdleProbe.cpuTimes("cpu  100 5000 50 800 10 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
        XCTAssertEqual(t, IdleProbe.CPUTimes(busy: 156, total: 5966))
        XCTAssertNil(IdleProbe.cpuTimes("cpu 1 2\n"))
    }

    func testQuietForAsLongAsTheLoadStaysLowAndBusyAtOnce() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("idleprobe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("proc"), withIntermediateDirectories: true)
        func stat(busy: Int, nice: Int, idle: Int) throws {
            try "cpu  \(busy) \(nice) 0 \(idle) 0 0 0 0 0 0\n".write(to: root.appendingPathComponent("proc/stat"), atomically: true, encoding: .utf8)
        }
        let probe = IdleProbe(root: root.path)
        try stat(busy: 0, nice: 0, idle: 0)
        XCTAssertTrue(probe.read(now: 0) == (nil, nil), "one reading is no rate")
        try stat(busy: 10, nice: 80, idle: 100)           // 10 % busy; a niced background run took 80 %
        XCTAssertTrue(probe.read(now: 1_000) == (true, 0))
        try stat(busy: 20, nice: 160, idle: 200)
        XCTAssertTrue(probe.read(now: 61_000) == (true, 60))
        try stat(busy: 120, nice: 160, idle: 300)          // 50 % busy: not idle, and the count starts over
        XCTAssertTrue(probe.read(now: 62_000) == (false, 0))
        try stat(busy: 121, nice: 160, idle: 400)
        XCTAssertTrue(probe.read(now: 63_000) == (true, 0))
    }

    func testSeatSessionsAreIdleWhenAllActiveOnesAre() {
        let now: UInt64 = 1_000_000_000_000_000
        let text = """
        Seat=seat0
        Active=yes
        IdleHint=yes
        IdleSinceHint=\(now - 600_000_000)

        Seat=
        Active=yes
        IdleHint=no
        IdleSinceHint=0

        Seat=seat0
        Active=no
        IdleHint=no
        IdleSinceHint=0
        """
        let r = IdleProbe.seatIdle(text, nowMicros: now)
        XCTAssertEqual(r?.idle, true, "an ssh session (no seat) and an inactive one do not count")
        XCTAssertEqual(r?.seconds, 600)
        XCTAssertEqual(IdleProbe.seatIdle(text.replacingOccurrences(of: "IdleHint=yes", with: "IdleHint=no"), nowMicros: now)?.idle, false)
        XCTAssertNil(IdleProbe.seatIdle("Seat=\nActive=yes\nIdleHint=yes\n", nowMicros: now), "no seat: headless")
    }
}
