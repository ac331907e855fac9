import Foundation
import RoleMeshAgent
import XCTest
import RoleMeshProbes

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

/// macOS's idle reading (issue 10), parsed on Linux from output captured on a Mac.
final class MacIdleParsingTests: XCTestCase {
    /// `ioreg -r -d 1 -c IOHIDSystem` on macOS 14, shortened; `HIDParameters` also names the key.
    static let ioreg = """
        +-o IOHIDSystem  <class IOHIDSystem, id 0x100000437, registered, matched, active, busy 0 (0 ms), retain 25>
            {
              "IOClass" = "IOHIDSystem"
              "CFBundleIdentifier" = "com.apple.iokit.IOHIDFamily"
              "IOProviderClass" = "IOResources"
              "HIDParameters" = {"HIDClickTime"=500000000,"HIDIdleTime"=1,"HIDKeyRepeat"=83333333,"HIDClickSpace"={"x"=4,"y"=4}}
              "IOMatchCategory" = "IOHIDSystem"
              "HIDScrollCountMinDeltaToStart" = 30
              "IOUserClientClass" = "IOHIDParamUserClient"
              "HIDIdleTime" = 1234567890123
              "HIDScrollCountMaxTimeDeltaBetween" = 600
              "IOProbeScore" = 0
            }

        """

    /// `pmset -g assertions` while a video plays in a browser.
    static let pmsetMovie = """
        2024-05-14 21:03:11 +0200
        Assertion status system-wide:
           BackgroundTask                 0
           ApplePushServiceTask           0
           UserIsActive                   1
           PreventUserIdleDisplaySleep    1
           PreventSystemSleep             0
           ExternalMedia                  0
           PreventUserIdleSystemSleep     1
           NetworkClientActive            0
        Listed by owning process:
           pid 412(coreaudiod): [0x0000a1b200019e2c] 00:12:40 PreventUserIdleSystemSleep named: "com.apple.audio.AppleUSBAudioEngine:Apple Inc.:Speakers.context.preventuseridlesleep"
           pid 1733(Safari): [0x0000a1b20001a011] 00:12:38 PreventUserIdleDisplaySleep named: "Video Wake Lock"
           pid 152(WindowServer): [0x0000a1c500099ff3] 00:00:00 UserIsActive named: "com.apple.iohideventsystem.queue.tickle serviceID:1000006a4 name:AppleMultitouchDevice product:Apple Internal Keyboard / Trackpad eventType:11"
        \tTimeout will fire in 600 secs Action=TimeoutActionRelease
        Kernel Assertions: 0x4=USB
           id=500  level=255 0x4=USB mod=14/05/2024, 20:49 description=com.apple.usb.externaldevice.14100000 owner=Magic Keyboard
        Idle sleep preventers: IODisplayWrangler

        """

    /// The same Mac with nothing playing.
    static let pmsetQuiet = """
        2024-05-14 21:30:02 +0200
        Assertion status system-wide:
           BackgroundTask                 0
           ApplePushServiceTask           0
           UserIsActive                   0
           PreventUserIdleDisplaySleep    0
           PreventSystemSleep             0
           ExternalMedia                  0
           PreventUserIdleSystemSleep     0
           NetworkClientActive            0
        Listed by owning process:
           pid 95(powerd): [0x0000a1b200019999] 00:30:00 PreventUserIdleDisplaySleep named: "Powerd - Prevent sleep while display is on"
        \tTimeout will fire in 0 secs Action=TimeoutActionTurnOff
        No kernel assertions.

        """

    func testHIDIdleTimeIsNanosecondsSinceTheLastInput() {
        XCTAssertEqual(IdleProbe.hidIdleSeconds(Self.ioreg), 1234, "the property, not the key inside HIDParameters")
        XCTAssertNil(IdleProbe.hidIdleSeconds("+-o IOHIDSystem\n    {\n      \"IOClass\" = \"IOHIDSystem\"\n    }\n"))
    }

    func testAMoviePlayingPreventsDisplaySleepAndSoIdle() {
        XCTAssertEqual(IdleProbe.displaySleepPrevented(Self.pmsetMovie), true)
        // A per-process line naming the assertion does not count: the system-wide count decides.
        XCTAssertEqual(IdleProbe.displaySleepPrevented(Self.pmsetQuiet), false)
        XCTAssertNil(IdleProbe.displaySleepPrevented("pmset: command not found\n"))
    }

    func testTheMacDecision() {
        XCTAssertTrue(IdleProbe.macIdle(inputIdleSeconds: 1234, displaySleepPrevented: false) == (true, 1234))
        XCTAssertTrue(IdleProbe.macIdle(inputIdleSeconds: 1234, displaySleepPrevented: true) == (false, 0), "a movie is not idle")
        XCTAssertTrue(IdleProbe.macIdle(inputIdleSeconds: 5, displaySleepPrevented: false) == (false, 0), "input 5 s ago")
        XCTAssertTrue(IdleProbe.macIdle(inputIdleSeconds: 1234, displaySleepPrevented: nil) == (true, 1234), "no pmset: input decides")
        XCTAssertTrue(IdleProbe.macIdle(inputIdleSeconds: nil, displaySleepPrevented: false) == (nil, nil), "unknown without ioreg")
        // The whole path from captured output.
        let hid = IdleProbe.hidIdleSeconds(Self.ioreg), movie = IdleProbe.displaySleepPrevented(Self.pmsetMovie)
        XCTAssertTrue(IdleProbe.macIdle(inputIdleSeconds: hid, displaySleepPrevented: movie) == (false, 0))
    }
}
