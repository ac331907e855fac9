import XCTest
import RoleMeshAgent
import RoleMeshCore

/// The slow chores ride on the core's ticks (Wakeups.swift): each runs once per period, within its
/// slack of its due time, and never bunches up after a stop.
final class ChoreTests: XCTestCase {
    func chore(every: Millis, due: Millis) -> ChoreTiming { ChoreTiming(every: every, due: due) }

    /// Ticks as on `lan` (every 450 ms, give or take 40: the beat keeps its cadence, the timer has
    /// 10 ms of leeway): a one-second chore runs on them, once per period, and the timer never needs
    /// to wake for it (its window, 500 ms wide, is wider than any gap between two ticks).
    func testAOneSecondChoreRunsOncePerPeriodOnLanTicksWithinItsSlack() {
        var c = chore(every: 1_000, due: 1_000)
        var rng = SystemRandomNumberGenerator()
        var now: Millis = 0, runs: [Millis] = [], wakeupsOfItsOwn = 0
        while now < 100_000 {
            let next = now + 450 + Millis.random(in: -40...40, using: &rng)
            if next > c.latest { wakeupsOfItsOwn += 1 }     // the timer would wake at due + slack
            now = next
            if c.isDue(at: now) {
                XCTAssertLessThanOrEqual(abs(now - c.due), c.slack, "ran \(now - c.due) ms from its due time")
                runs.append(now)
                c.ran(at: now)
            }
        }
        XCTAssertEqual(wakeupsOfItsOwn, 0)
        XCTAssertEqual(Double(runs.count), 100, accuracy: 1)
        for (a, b) in zip(runs, runs.dropFirst()) { XCTAssertGreaterThanOrEqual(b - a, 1_000 - 2 * c.slack) }
    }

    func testSlackIsAQuarterOfThePeriodAtMost250Ms() {
        XCTAssertEqual(chore(every: 1_000, due: 0).slack, 250)
        XCTAssertEqual(chore(every: 300_000, due: 0).slack, 250)
        XCTAssertEqual(chore(every: 400, due: 0).slack, 100)
    }

    /// After 10 s without a tick (a suspended laptop), a chore runs once and next a period later,
    /// not ten times in a row to catch up.
    func testALongStopRunsTheChoreOnceNotOncePerMissedPeriod() {
        var c = chore(every: 1_000, due: 1_000)
        XCTAssertTrue(c.isDue(at: 11_000))
        c.ran(at: 11_000)
        XCTAssertFalse(c.isDue(at: 11_010))
        XCTAssertFalse(c.isDue(at: 11_000 + 1_000 - 2 * c.slack - 1))
        XCTAssertTrue(c.isDue(at: 11_000 + 1_000))
    }
}
