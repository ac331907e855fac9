import Foundation
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshCore
import XCTest
import RoleMeshProbes

final class SignalProbeTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("signalprobe-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    /// Writes `content` at `rel` under the fake root, creating directories on the way.
    private func put(_ rel: String, _ content: String) throws {
        let url = root.appendingPathComponent(rel)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try (content + "\n").write(to: url, atomically: true, encoding: .utf8)
    }

    private func supply(_ name: String, _ files: [String: String]) throws {
        for (file, value) in files { try put("sys/class/power_supply/\(name)/\(file)", value) }
    }

    private func read() -> Signals { SignalProbe(root: root.path).read() }

    // MARK: power

    func testDesktopWithMainsOnlyIsNotOnBattery() throws {
        try supply("AC", ["type": "Mains", "online": "1"])
        let s = read()
        XCTAssertEqual(s.onBattery, false)
        XCTAssertNil(s.battery)
    }

    func testLaptopDischargingAt42Percent() throws {
        try supply("AC", ["type": "Mains", "online": "0"])
        try supply("BAT0", ["type": "Battery", "status": "Discharging", "capacity": "42"])
        let s = read()
        XCTAssertEqual(s.battery!, 0.42, accuracy: 1e-9)
        XCTAssertEqual(s.onBattery, true)
    }

    /// Folders are listed once a minute, not every second: a battery plugged in (a dock, a
    /// hot-swapped pack) counts from the next listing, while a level change counts at once.
    func testFoldersAreListedAgainOnlyAfterTheirAge() throws {
        try supply("BAT0", ["type": "Battery", "status": "Discharging", "capacity": "40"])
        let kept = SignalProbe(root: root.path), fresh = SignalProbe(root: root.path, relistEvery: 0)
        XCTAssertEqual(kept.read().battery!, 0.4, accuracy: 1e-9)
        XCTAssertEqual(fresh.read().battery!, 0.4, accuracy: 1e-9)
        try supply("BAT0", ["capacity": "30"])
        try supply("BAT1", ["type": "Battery", "status": "Discharging", "capacity": "10"])
        XCTAssertEqual(kept.read().battery!, 0.3, accuracy: 1e-9, "BAT1 is not listed yet")
        XCTAssertEqual(fresh.read().battery!, 0.2, accuracy: 1e-9)
    }

    func testLaptopCharging() throws {
        try supply("ADP1", ["type": "Mains", "online": "1"])
        try supply("BAT0", ["type": "Battery", "status": "Charging", "capacity": "80"])
        let s = read()
        XCTAssertEqual(s.battery!, 0.8, accuracy: 1e-9)
        XCTAssertEqual(s.onBattery, false)
    }

    func testEnergyCountersAndMouseBatteryIgnored() throws {
        try supply("BAT0", ["type": "Battery", "status": "Discharging",
                            "energy_now": "30000000", "energy_full": "60000000"])
        try supply("hidpp_battery_0", ["type": "Battery", "scope": "Device", "status": "Discharging", "capacity": "5"])
        let s = read()
        XCTAssertEqual(s.battery!, 0.5, accuracy: 1e-9)
        XCTAssertEqual(s.onBattery, true)
    }

    func testNoPowerSupplyDirectory() throws {
        try put("proc/loadavg", "0.10 0.20 0.30 1/100 42")
        let s = read()
        XCTAssertNil(s.battery)
        XCTAssertNil(s.onBattery)
    }

    // MARK: procfs

    func testMeminfo() throws {
        try put("proc/meminfo", """
            MemTotal:       16000000 kB
            MemFree:         1000000 kB
            MemAvailable:    4000000 kB
            Buffers:          200000 kB
            """)
        XCTAssertEqual(read().memFree!, 0.25, accuracy: 1e-9)
    }

    func testLoadavgDividedByFourCPUs() throws {
        try put("proc/loadavg", "2.00 1.50 1.00 3/512 9876")
        try put("proc/cpuinfo", (0..<4).map { "processor\t: \($0)\nmodel name\t: Fake CPU\n" }.joined(separator: "\n"))
        let s = read()
        XCTAssertEqual(s.cpus, 4)
        XCTAssertEqual(s.load!, 0.5, accuracy: 1e-9)
    }

    func testLoadWithoutCPUCountIsNil() throws {
        try put("proc/loadavg", "2.00 1.50 1.00 3/512 9876")
        let s = read()
        XCTAssertNil(s.cpus)
        XCTAssertNil(s.load)
    }

    // MARK: throttling

    private func zone(_ n: Int, temp: Int, trips: [(String, Int)]) throws {
        let dir = "sys/class/thermal/thermal_zone\(n)/"
        try put(dir + "temp", "\(temp)")
        for (i, trip) in trips.enumerated() {
            try put(dir + "trip_point_\(i)_type", trip.0)
            try put(dir + "trip_point_\(i)_temp", "\(trip.1)")
        }
    }

    func testThermalZoneOverPassiveTrip() throws {
        try zone(0, temp: 45000, trips: [("critical", 105000), ("passive", 95000)])
        XCTAssertEqual(read().throttled, false)
        try zone(1, temp: 96000, trips: [("critical", 105000), ("passive", 95000), ("active", 60000)])
        XCTAssertEqual(read().throttled, true)
    }

    func testCpufreqCapped() throws {
        let dir = "sys/devices/system/cpu/cpu0/cpufreq/"
        try put(dir + "cpuinfo_max_freq", "3000000")
        try put(dir + "scaling_max_freq", "3000000")
        XCTAssertEqual(read().throttled, false)
        try put(dir + "scaling_max_freq", "1200000")
        XCTAssertEqual(read().throttled, true)
    }

    func testThrottleCountIncreaseBetweenReads() throws {
        let file = "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count"
        try put(file, "7")
        let probe = SignalProbe(root: root.path)
        XCTAssertEqual(probe.read().throttled, false)   // first read only sets the baseline
        XCTAssertEqual(probe.read().throttled, false)
        try put(file, "9")
        XCTAssertEqual(probe.read().throttled, true)
        XCTAssertEqual(probe.read().throttled, false)
    }

    // MARK: nothing / real

    func testEmptyTreeIsAllNil() {
        XCTAssertEqual(read(), Signals())
    }

    func testRealRootDoesNotCrash() {
        let probe = SignalProbe()
        let s = probe.read()
        _ = probe.read()
        #if os(Linux)
        XCTAssertNotNil(s.load)
        XCTAssertNotNil(s.memFree)
        XCTAssertNotNil(s.cpus)
        #endif
        if let m = s.memFree { XCTAssert((0...1).contains(m)) }
        if let b = s.battery { XCTAssert((0...1).contains(b)) }
    }
}
