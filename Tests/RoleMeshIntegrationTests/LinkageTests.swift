import Foundation
import XCTest

/// The agent links FoundationEssentials only: full Foundation and ICU cost ~6 MiB of RSS on every
/// device (docs/benchmarks.md). One `import Foundation` in the agent or CLI brings them back.
final class LinkageTests: XCTestCase {
    func testTheBinaryDoesNotLinkFullFoundationOrICU() throws {
        let ldd = ["/usr/bin/ldd", "/bin/ldd"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let ldd else { throw XCTSkip("no ldd on this machine") }
        let r = try Cluster.run(ldd, [Cluster.binary], timeout: 30)
        XCTAssertEqual(r.status, 0, r.stderr)
        for lib in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            XCTAssertFalse(r.stdout.contains(lib), "\(Cluster.binary) links \(lib):\n\(r.stdout)")
        }
    }
}
