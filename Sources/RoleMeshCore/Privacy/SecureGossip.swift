/// Private gossip between this device and each other one (protocol.md 2.2–2.4): every datagram is
/// sealed with the pair key of the two devices exchanging it, and nothing about the mesh goes to an
/// address until the device there has proved its key.
///
/// Proof of key is a three-message exchange of fixed-size `hello` frames, each `echo · challenge`
/// (16 random bytes each, zero = none), sealed with the pair key:
///   A → S  hello(0, cA)            to an address S not proven yet (to the device expected there,
///                                  or to every trusted device when nobody is: a seed)
///   B → A  hello(cA, cB)           only B can open A's hello, so only B can echo cA
///   A → B  hello(cB, 0)            A holds S proven for B and sends what waited; B holds A proven
/// A captured hello replayed later echoes an old challenge and proves nothing. Gossip the core
/// wants to send to an unproven address waits (the newest few datagrams per address) until the
/// proof arrives, then goes out sealed; hellos are repeated at most every `helloInterval`.
///
/// Pure state, like the core: the shell passes bytes, source addresses and the time in, and sends
/// what comes out. Randomness (nonces, challenges) is injected.
public final class SecureGossip {
    public struct Counters: Equatable, Sendable {
        /// Datagrams whose tag names a pair of ours but that fail the AEAD check.
        public var badMac = 0
        /// Datagrams whose tag names no pair of ours: an untrusted device, or a hello meant for another.
        public var unknownPair = 0
        /// Too short or too long to be an envelope.
        public var malformed = 0
        public init() {}
    }

    public typealias Outgoing = (bytes: [UInt8], to: WireAddress)

    public let myName: String
    let keyPair: Ed25519.KeyPair
    public private(set) var keys = PairKeyTable()
    public private(set) var counters = Counters()
    /// Address → the device that proved its key there.
    var proven: [WireAddress: String] = [:]
    var challenges: [WireAddress: [UInt8]] = [:]
    var lastHello: [WireAddress: Millis] = [:]
    var lastHelloReply: [WireAddress: Millis] = [:]
    var parked: [WireAddress: [(frame: Envelope.Frame, plain: [UInt8], at: Millis)]] = [:]
    let random: (Int) -> [UInt8]
    /// The envelope nonce: this run's datagram counter, from a random start (`Envelope`).
    var counter: UInt64

    public static let challengeSize = 16
    public static let helloInterval: Millis = 500
    static let helloReplyInterval: Millis = 50
    static let maxParked = 8
    /// Gossip parked longer than this is dropped, not sent, when the proof comes: six hello rounds.
    /// A device that was away for long (crashed, asleep) was sent a dead retry's sample every few
    /// seconds; flushed on its return, the old ones told it, restarted and knowing nothing, that a
    /// member was dead at an incarnation it had long refuted (chaos seed 17307). What is current
    /// comes with the answer to its own sync requests. Not shorter: a loaded device may answer a
    /// hello late, and the answer to its sync request waits behind that hello.
    static let maxParkedAge: Millis = 6 * helloInterval
    static let maxAddresses = 4096
    static let none = [UInt8](repeating: 0, count: challengeSize)

    public init(myName: String, keyPair: Ed25519.KeyPair, trusted: [String: [UInt8]],
                random: @escaping (Int) -> [UInt8] = Ed25519.randomBytes) {
        self.myName = myName; self.keyPair = keyPair; self.random = random
        counter = random(8).reduce(0) { $0 << 8 | UInt64($1) }
        keys.update(me: keyPair, myName: myName, trusted: trusted)
    }

    /// Follows `keys/`: a device whose key went away or changed loses its proofs.
    public func replaceTrusted(_ trusted: [String: [UInt8]]) {
        let gone = Set(keys.update(me: keyPair, myName: myName, trusted: trusted))
        if !gone.isEmpty { proven = proven.filter { !gone.contains($0.value) } }
    }

    /// The device proven at an address, if any.
    public func provenPeer(at address: WireAddress) -> String? { proven[address] }

    /// The addresses `peer` proved its key at (answered a challenge sent there), in address order:
    /// where it was heard from directly, which its own announcements cannot fake.
    public func provenAddresses(of peer: String) -> [WireAddress] {
        proven.filter { $0.value == peer }.map(\.key).sorted { $0.description < $1.description }
    }

    /// Forget every proof (for a network change: issue 11's address watching calls this). The hello
    /// rate limit goes too: the device announces its new address to every member at once, and an
    /// address helloed within `helloInterval` before the move kept that announcement parked until
    /// the core happened to send there again (seconds, for a member it neither watches nor beats to:
    /// chaos seed 18785).
    public func forgetProofs() { proven = [:]; challenges = [:]; lastHello = [:] }

    // MARK: - Sending

    /// Gossip (or a beat) the core wants at `address`: sealed for the device proven there, or parked
    /// behind a hello. `expected` is the member the core believes is there (nil for a seed or
    /// remembered address).
    public func send(_ plain: [UInt8], frame: Envelope.Frame = .gossip, to address: WireAddress,
                     expected: @autoclosure () -> String?, now: Millis) -> [Outgoing] {
        if let peer = proven[address], let pk = keys.byName[peer] {
            return [(Envelope.seal(frame, plain, with: pk, nonce: nonce()), address)]
        }
        proven[address] = nil
        if parked.count >= Self.maxAddresses, parked[address] == nil { parked = [:] }
        var waiting = (parked[address] ?? []).filter { now - $0.at <= Self.maxParkedAge }
        waiting.append((frame, plain, now))
        if waiting.count > Self.maxParked { waiting.removeFirst(waiting.count - Self.maxParked) }
        parked[address] = waiting
        return hello(to: address, expected: expected(), now: now)
    }

    func hello(to address: WireAddress, expected: String?, now: Millis) -> [Outgoing] {
        guard now - (lastHello[address] ?? Millis.min / 2) >= Self.helloInterval else { return [] }
        if lastHello.count >= Self.maxAddresses { lastHello = [:] }
        lastHello[address] = now
        let challenge = challenge(for: address)
        let targets = expected.flatMap { keys.byName[$0] }.map { [$0] }
            ?? keys.byName.values.sorted { $0.peer < $1.peer }
        return targets.map { (Envelope.seal(.hello, Self.none + challenge, with: $0, nonce: nonce()), address) }
    }

    func challenge(for address: WireAddress) -> [UInt8] {
        if let c = challenges[address] { return c }
        if challenges.count >= Self.maxAddresses { challenges = [:] }
        let c = random(Self.challengeSize)
        challenges[address] = c
        return c
    }

    func nonce() -> UInt64 { counter &+= 1; return counter }

    // MARK: - Receiving

    public enum Received {
        /// An authenticated gossip datagram from `peer`, for the core.
        case gossip([UInt8], peer: String)
        /// An authenticated beat (`Beat`) from `peer`, for the core.
        case beat([UInt8], peer: String)
        case nothing
    }

    public func receive(_ bytes: [UInt8], from source: WireAddress, now: Millis) -> (Received, [Outgoing]) {
        switch Envelope.open(bytes, keys: keys) {
        case .malformed: counters.malformed += 1; return (.nothing, [])
        case .unknownPair: counters.unknownPair += 1; return (.nothing, [])
        case .badMac: counters.badMac += 1; return (.nothing, [])
        case .opened(.gossip, let plain, let pk): return (.gossip(plain, peer: pk.peer), [])
        case .opened(.beat, let plain, let pk): return (.beat(plain, peer: pk.peer), [])
        case .opened(.hello, let payload, let pk): return (.nothing, helloArrived(payload, from: pk, at: source, now: now))
        case .opened(nil, _, _): return (.nothing, [])     // a later version's frame
        }
    }

    func helloArrived(_ payload: [UInt8], from pk: PairKey, at source: WireAddress, now: Millis) -> [Outgoing] {
        guard payload.count >= 2 * Self.challengeSize else { counters.malformed += 1; return [] }
        let echo = Array(payload[0..<Self.challengeSize])
        let theirs = Array(payload[Self.challengeSize..<2 * Self.challengeSize])
        var out: [Outgoing] = []
        if echo != Self.none, let mine = challenges[source], echo == mine {
            challenges[source] = nil
            if proven.count >= Self.maxAddresses { proven = [:] }
            proven[source] = pk.peer
            for (frame, plain, at) in parked.removeValue(forKey: source) ?? [] where now - at <= Self.maxParkedAge {
                out.append((Envelope.seal(frame, plain, with: pk, nonce: nonce()), source))
            }
        }
        if theirs != Self.none, now - (lastHelloReply[source] ?? Millis.min / 2) >= Self.helloReplyInterval {
            if lastHelloReply.count >= Self.maxAddresses { lastHelloReply = [:] }
            lastHelloReply[source] = now
            let ask = proven[source] == pk.peer ? Self.none : challenge(for: source)
            out.insert((Envelope.seal(.hello, theirs + ask, with: pk, nonce: nonce()), source), at: 0)
        }
        return out
    }
}
