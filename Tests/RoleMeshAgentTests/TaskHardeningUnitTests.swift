import XCTest
import Foundation
import Dispatch
import Synchronization
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshCore
import Glibc
import RoleMeshStorage
import RoleMeshTransport
import RoleMeshTaskChannel

/// The task channel's client against a fake server, the escaping helper, and reading keys/.
final class TaskHardeningUnitTests: XCTestCase {
    func testEscapingControlCharacters() {
        XCTAssertEqual("plain text, ünïcödé".escapingControlCharacters, "plain text, ünïcödé")
        XCTAssertEqual("\u{1b}[31mred\u{07}".escapingControlCharacters, "\\u{1b}[31mred\\u{7}")
        XCTAssertEqual("a\nb\rc\td\u{7f}\u{9b}".escapingControlCharacters, "a\\u{a}b\\u{d}c\td\\u{7f}\\u{9b}")
        XCTAssertFalse("\u{1b}]0;title\u{07}".escapingControlCharacters.unicodeScalars.contains { $0.value < 0x20 })
    }

    /// A socket pair: the client's end and the fake server's end, each closed by the test.
    func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        return (fds[0], fds[1])
    }

    /// Reads the client's hello (`ChannelHandshake.helloSize` bytes) on the fake server's end.
    static func readHello(_ fd: Int32) {
        var buf = [UInt8](repeating: 0, count: ChannelHandshake.helloSize)
        var got = 0
        while got < buf.count {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
            if n <= 0 { return }
            got += n
        }
    }

    func testAnUnauthenticatedRefusalNeverPicksTheExitCodeOrWritesEscapes() async throws {
        let (client, server) = socketPair()
        let io = AsyncFD(client)
        defer { io.abort(); close(server) }
        let serverKey = Ed25519.KeyPair.generate()
        let fake = Thread {
            Self.readHello(server)
            let msg = Array("\u{1b}[2J\u{1b}]0;owned\u{07}all good".utf8)
            let bytes = Array("RMTX".utf8) + [0, UInt8(msg.count >> 8), UInt8(msg.count & 0xff)] + msg
            _ = bytes.withUnsafeBytes { write(server, $0.baseAddress, $0.count) }
        }
        fake.start()
        do throws(MeshError) {
            _ = try await SecureChannel.clientHandshake(io: io, expected: "srv01", me: "node1", keyPair: .generate(),
                                                        trusted: ["srv01": serverKey.publicKey])
            XCTFail("a refusal must fail the handshake")
        } catch {
            XCTAssertEqual(error.code, 77)
            XCTAssertEqual(error.message, "srv01 refused the connection: this node is not trusted there")
            XCTAssertFalse(error.message.utf8.contains(0x1b))
        }
    }

    func testTheHandshakeDeadlineIsTotalNotPerRead() async throws {
        let (client, server) = socketPair()
        let io = AsyncFD(client)
        defer { io.abort(); close(server) }
        let stopped = Atomic(false)
        // A server that answers one byte of a valid-looking answer every 200 ms, for at most 10 s.
        let fake = Thread {
            Self.readHello(server)
            let hello = [UInt8](repeating: 7, count: ChannelHandshake.answerSize)
            for b in hello {
                if stopped.load(ordering: .relaxed) { return }
                _ = [b].withUnsafeBytes { write(server, $0.baseAddress, 1) }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        fake.start()
        defer { stopped.store(true, ordering: .relaxed) }
        let t0 = Date()
        do throws(MeshError) {
            _ = try await SecureChannel.clientHandshake(io: io, expected: "srv01", me: "node1", keyPair: .generate(),
                                                        trusted: ["srv01": Ed25519.KeyPair.generate().publicKey], within: 1)
            XCTFail("a trickling server must not complete the handshake")
        } catch {}
        let took = Date().timeIntervalSince(t0)
        XCTAssertLessThan(took, 2.5, "a byte every 200 ms kept the handshake going for \(took) s past a 1 s deadline")
        XCTAssertGreaterThan(took, 0.8)
    }

    func testLoadTrustedReportsFailureWhenKeysCannotBeRead() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("keys-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = NodeDirectory(root: root)
        // keys/ is a file: it cannot be listed (ENOTDIR), which is not "no keys".
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.keysDir.path, contents: Data("x".utf8)))
        XCTAssertThrowsError(try KeyStore.loadTrusted(in: dir))
        try FileManager.default.removeItem(at: dir.keysDir)
        try FileManager.default.createDirectory(at: dir.keysDir, withIntermediateDirectories: true)
        let good = Ed25519.KeyPair.generate()
        try (Data(good.publicKey).base64EncodedString() + "\n").write(to: dir.publicKey("good"), atomically: true, encoding: .utf8)
        // Malformed, or not a regular file: skipped as before.
        try "not a key\n".write(to: dir.publicKey("bad"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: dir.publicKey("folder"), withIntermediateDirectories: true)
        var reports: [String] = []
        XCTAssertEqual(try KeyStore.loadTrusted(in: dir, report: { reports.append($0) }), ["good": good.publicKey])
        XCTAssertEqual(reports.count, 2, "\(reports)")
        // A .pub that cannot be opened (a symlink loop: ELOOP) fails the whole read.
        try FileManager.default.createSymbolicLink(atPath: dir.publicKey("loop").path, withDestinationPath: dir.publicKey("loop").path)
        XCTAssertThrowsError(try KeyStore.loadTrusted(in: dir)) { error in
            XCTAssertTrue((error as? MeshError)?.message.contains("loop.pub") == true, "\(error)")
        }
    }
}

/// Small rules of issue 12's first-use fixes.
final class FirstUseUnitTests: XCTestCase {
    func testTheProgramAnEnvShebangAsksFor() {
        XCTAssertEqual(Spawn.envProgram(shebang: ["/usr/bin/env", "python9"]), "python9")
        XCTAssertEqual(Spawn.envProgram(shebang: ["/usr/bin/env", "-S", "python3 -u"]), "python3")
        XCTAssertEqual(Spawn.envProgram(shebang: ["/usr/bin/env", "-S", "-i", "LC_ALL=C", "node"]), "node")
        XCTAssertNil(Spawn.envProgram(shebang: ["/bin/sh"]), "not through env: the exec error names it already")
        XCTAssertNil(Spawn.envProgram(shebang: ["/usr/bin/env"]))
    }

    func testUnknownKeysAreLoggedOncePerSourceAndNamePerMinute() {
        var log = UnknownKeyLog()
        XCTAssertTrue(log.shouldLog(source: "127.0.0.3:7946", name: "laptop", now: 1_000))
        XCTAssertFalse(log.shouldLog(source: "127.0.0.3:7946", name: "laptop", now: 2_000))
        XCTAssertTrue(log.shouldLog(source: "127.0.0.4:7946", name: "laptop", now: 2_000), "another source is named")
        XCTAssertTrue(log.shouldLog(source: "127.0.0.3:7946", name: "phone", now: 2_000), "another name is named")
        XCTAssertTrue(log.shouldLog(source: "127.0.0.3:7946", name: "laptop", now: 1_000 + UnknownKeyLog.interval))
        // A flood of spoofed sources stays bounded: past the capacity nothing new is logged this minute.
        var flood = UnknownKeyLog()
        let logged = (0..<(UnknownKeyLog.capacity + 50)).filter { flood.shouldLog(source: "10.0.0.\($0)", name: "x", now: 5_000) }.count
        XCTAssertEqual(logged, UnknownKeyLog.capacity)
        XCTAssertTrue(flood.shouldLog(source: "10.9.9.9", name: "x", now: 5_000 + UnknownKeyLog.interval), "expired entries make room")
    }

    /// Sealed datagrams no key of ours opens name their source only: unless something from the same
    /// source opened around then (a seed's round of hellos, one per trusted device), once a minute.
    func testStrangersAreNamedByAddressButASeedsRoundOfHellosIsNot() {
        var log = UnknownKeyLog()
        log.sealedByStranger(source: "10.0.0.1:7946", now: 1_000)      // hellos meant for others...
        log.authenticated(source: "10.0.0.1:7946", now: 1_010)          // ...and the one for us
        log.authenticated(source: "10.0.0.3:7946", now: 1_000)          // the other order
        log.sealedByStranger(source: "10.0.0.3:7946", now: 1_020)
        log.sealedByStranger(source: "10.0.0.2:7946", now: 1_000)      // a device we do not trust
        XCTAssertEqual(log.strangersToLog(now: 2_000), [], "not before the grace")
        XCTAssertEqual(log.strangersToLog(now: 1_000 + UnknownKeyLog.strangerGrace), ["10.0.0.2:7946"])
        log.sealedByStranger(source: "10.0.0.2:7946", now: 4_000)
        XCTAssertEqual(log.strangersToLog(now: 4_000 + UnknownKeyLog.strangerGrace), [], "once a minute")
        log.sealedByStranger(source: "10.0.0.2:7946", now: 70_000)
        XCTAssertEqual(log.strangersToLog(now: 70_000 + UnknownKeyLog.strangerGrace), ["10.0.0.2:7946"])
    }
}

/// `AsyncFD.close()` sends what is buffered even when its owner lets go at once, as `logs` and
/// `submit` do when a stream ends: the tail of a task's output used to be lost whenever the reader
/// was behind (deinit dropped the unsent bytes), so `logs` of a large output ended early under load.
final class AsyncFDCloseTests: XCTestCase {
    func testClosingWithABacklogStillDeliversEveryByteAfterTheOwnerLetsGo() async throws {
        var fds: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        let size = 2 << 20      // far more than a socket buffer: most of it is still queued at close()
        do {
            let io = AsyncFD(fds[0])
            XCTAssertTrue(io.enqueue([UInt8](repeating: 7, count: size)))
            io.close()
        }   // the only reference goes here
        var got = 0
        var buf = [UInt8](repeating: 0, count: 65_536)
        let reader = fds[1]
        // Bounded: 10 s at most (the linger), then end of stream.
        while got <= size {
            let n = buf.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        close(reader)
        XCTAssertEqual(got, size, "the buffered tail was dropped when the AsyncFD was released")
    }
}
