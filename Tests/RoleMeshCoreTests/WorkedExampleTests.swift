import XCTest
import RoleMeshCore

/// protocol.md section 8, byte for byte: if this fails, the page or the code changed.
final class WorkedExampleTests: XCTestCase {
    func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    func testTheWorkedExampleIsTrue() throws {
        let h = Heartbeat(name: "desk", incarnation: 4, seq: 7, address: WireAddress(host: "127.0.0.2", port: 7946)!,
                          roles: ["metabolism"], signals: Signals(load: 0.3, cpus: 8, memFree: 0.61, onBattery: false))
        let body = Wire.encodeBody(.heartbeat(h))
        XCTAssertEqual(hex(body), "01046465736b02010403010706067f0000021f0a070a6d657461626f6c69736d"
                                  + "1002012c11020008120217d4140100")
        let desk = Ed25519.KeyPair(seed: Array(0..<32))
        XCTAssertEqual(hex(desk.publicKey), "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
        let sig = desk.sign(Wire.signedMessage(for: .heartbeat(h), body: body))
        let datagram = Wire.encode(Datagram(kind: .gossip, entries: [SignedEntry(statement: .heartbeat(h), body: body, signature: sig)]))
        XCTAssertEqual(hex(datagram), "020101006f" + hex(body) + "9d332eb368671f674bbaa78b30936acb43253eb11ed3df984ff8d1abe47b935b"
                                      + "a1d84cd023dfeece64c23b5325e50e01cad6eaa15973f509b220fdf74c4ffb07")
        let laptop = Ed25519.KeyPair(seed: Array(32..<64))
        let pk = try XCTUnwrap(PairKey(me: desk, peer: "laptop", peerPublic: laptop.publicKey))
        XCTAssertEqual(hex(laptop.publicKey), "29acbae141bccaf0b22e1a94d34d0bc7361e526d0bfe12c89794bc9322966dd7")
        XCTAssertEqual(hex(pk.key), "3e714e2fff5a98f900eabfd42a6692c4cc5df6f2711f73fcc4d16f696a828d38")
        XCTAssertEqual(hex(pk.tag), "9847d2a10ec20e45")
        let sealed = Envelope.seal(.gossip, datagram, with: pk, nonce: 0xABAB_ABAB_ABAB_ABAB)
        XCTAssertEqual(hex(Array(sealed.prefix(24))), "9847d2a10ec20e45" + "abababababababab" + "8cbae9edf0e39d87")
        XCTAssertEqual(sealed.count, datagram.count + Envelope.overhead)
    }
}
