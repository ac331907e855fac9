import Foundation
import RoleMeshPlatform
import RoleMeshAgent
import XCTest
import RoleMeshTaskChannel

final class ResidentPagesTests: XCTestCase {
    /// Mappings as smaps shows them: only clean, private, read-only file pages may go, and only
    /// where smaps says how much of the mapping is anonymous (none).
    func testOnlyCleanReadOnlyPrivateFilePagesAreDropped() {
        let smaps = """
        7f0000000000-7f0000100000 r-xp 00000000 08:01 1234   /usr/lib/libswiftCore.so
        Size:               1024 kB
        Rss:                 800 kB
        Private_Clean:       100 kB
        Private_Dirty:         0 kB
        Anonymous:             0 kB
        Swap:                  0 kB
        VmFlags: rd ex mr mw me
        7f0000100000-7f0000110000 r--p 00100000 08:01 1234   /usr/lib/libswiftCore.so
        Rss:                  64 kB
        Private_Dirty:        64 kB
        Anonymous:            64 kB
        VmFlags: rd mr mw me ac
        7f0000110000-7f0000120000 rw-p 00110000 08:01 1234   /usr/lib/libswiftCore.so
        Rss:                  64 kB
        Anonymous:             0 kB
        VmFlags: rd wr mr mw me ac
        7f0000200000-7f0000300000 rw-p 00000000 00:00 0
        Rss:                 512 kB
        Anonymous:           512 kB
        VmFlags: rd wr mr mw me ac
        7f0000400000-7f0000410000 r--s 00000000 08:01 99     /var/cache/shared.db
        Rss:                  64 kB
        Anonymous:             0 kB
        VmFlags: rd mr me ms
        7f0000500000-7f0000510000 r-xp 00000000 08:01 77     /usr/lib/locked.so
        Rss:                  64 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me lo
        7f0000600000-7f0000610000 r--p 00000000 08:01 78     /usr/lib/cold.so
        Rss:                   0 kB
        Anonymous:             0 kB
        VmFlags: rd mr mw me
        7f0000700000-7f0000710000 r--p 00000000 08:01 79     /usr/lib/unsaid.so
        Rss:                  64 kB
        VmFlags: rd mr mw me
        7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0      [vdso]
        Rss:                   8 kB
        Anonymous:             0 kB
        """
        XCTAssertEqual(ResidentPages.droppable(smaps: smaps),
                       [ResidentPages.Mapping(start: 0x7f00_0000_0000, end: 0x7f00_0010_0000, rssKB: 800)])
    }

    /// On this very process: the resident set shrinks, and code that ran before runs again (its
    /// pages fault back in from the page cache). A relocated page dropped by mistake would crash here.
    func testReleasingShrinksThisProcessAndItRunsOn() throws {
        #if os(Linux)
        func rssKB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
            return Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") ?? 0
        }
        let json = try JSONEncoder().encode(["a": [1, 2, 3]])
        let before = rssKB()
        let released = ResidentPages.release()
        let after = rssKB()
        XCTAssertGreaterThan(released, 1_000, "an XCTest process maps megabytes of clean code")
        XCTAssertLessThan(after, before - 1_000)
        XCTAssertEqual(try JSONDecoder().decode([String: [Int]].self, from: json), ["a": [1, 2, 3]])
        #else
        throw XCTSkip("smaps is Linux's")
        #endif
    }
}
