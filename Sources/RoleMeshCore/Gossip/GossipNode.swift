/// The pure gossip node at the centre of an agent: bytes, addresses and time in; sealed datagrams
/// and events out. It owns what the agent used to glue together itself — the key ring the core
/// signs and checks with, private gossip (`SecureGossip`: sealing, opening, proof of key per
/// address), the membership core, and the route watcher that turns views into `role-moved` — so
/// the agent (real sockets and clocks) and the simulator (a network in virtual time, real Ed25519
/// and real sealing) drive exactly the same code (issue 22: simulate what runs).
///
/// Like `Membership`, it never touches a socket, a clock or a file; every call returns an
/// `Output` for the shell to carry out.
public final class GossipNode {
    public let membership: Membership
    public let envelopes: SecureGossip
    public let keyRing: KeyRing
    var routes = RouteWatcher()

    /// What one input asks of the shell.
    public struct Output {
        /// Sealed envelopes (or hellos) to send from the node's socket.
        public var datagrams: [SecureGossip.Outgoing] = []
        /// Membership events and `role-moved`, in order.
        public var events: [MeshEvent] = []
        /// An incarnation to persist before the next start.
        public var incarnation: UInt64?
        public var logs: [String] = []
        /// Something routing reads changed (queued submissions may now have a node).
        public var viewChanged = false
        /// What this input says about strangers, for the log that names them (`UnknownKeyLog`).
        public var stranger: Stranger = .none

        public enum Stranger: Equatable {
            case none
            /// Sealed for a pair that is none of ours.
            case sealedByStranger
            /// Opened with a trusted device's pair key.
            case authenticated
            /// Opened, but an entry's origin has no trusted key: the plaintext, to name it.
            case unknownKeyIn([UInt8])
        }
        public init() {}
    }

    public init(config: Membership.Config, keyPair: Ed25519.KeyPair, trusted: [String: [UInt8]], seed: UInt64,
                now: Millis, random: @escaping (Int) -> [UInt8] = Ed25519.randomBytes, ringCache: RingCache = RingCache()) {
        var trusted = trusted
        trusted[config.name] = keyPair.publicKey   // a node always trusts itself
        keyRing = KeyRing(keyPair: keyPair, trusted: trusted)
        envelopes = SecureGossip(myName: config.name, keyPair: keyPair, trusted: trusted, random: random)
        membership = Membership(config: config, crypto: keyRing, seed: seed, now: now, ringCache: ringCache)
    }

    public var name: String { membership.name }

    // MARK: - Inputs

    public func start(now: Millis) -> Output { carryOut(membership.start(now: now), now: now) }

    public func tick(now: Millis) -> Output { carryOut(membership.tick(now: now), now: now) }

    /// A datagram off the socket: opened (or answered, for a hello), then to the core.
    public func receive(_ bytes: [UInt8], from: WireAddress, now: Millis) -> Output {
        let strangers = envelopes.counters.unknownPair
        let (received, replies) = envelopes.receive(bytes, from: from, now: now)
        var out: Output
        switch received {
        case .gossip(let plain, let peer):
            let unknownKeys = membership.dropped.unknownKey
            out = carryOut(membership.receive(bytes: plain, from: from, sender: peer, now: now), now: now)
            out.stranger = membership.dropped.unknownKey != unknownKeys ? .unknownKeyIn(plain) : .authenticated
        case .beat(let plain, let peer):
            out = carryOut(membership.receive(beatBytes: plain, sender: peer, now: now), now: now)
            out.stranger = .authenticated
        case .nothing:
            out = Output()
            if envelopes.counters.unknownPair != strangers { out.stranger = .sealedByStranger }
        }
        out.datagrams.insert(contentsOf: replies, at: 0)
        return out
    }

    public func leave(now: Millis) -> Output { carryOut(membership.leave(now: now), now: now) }

    /// Roles, backups, draining, signals or address changed here (`Membership.updateSelf`).
    public func updateSelf(now: Millis, announce: Bool = false, _ change: (inout Heartbeat) -> Void) -> Output {
        carryOut(membership.updateSelf(now: now, announce: announce, change), now: now)
    }

    /// Follows `keys/`: keys that went away or changed are revoked in the core (returned, in name
    /// order); every key's pair key and proofs follow the new set.
    @discardableResult
    public func replaceTrusted(_ trusted: [String: [UInt8]]) -> [String] {
        var trusted = trusted
        trusted[name] = keyRing.keyPair.publicKey
        let revoked = keyRing.trusted.filter { trusted[$0.key] != $0.value }.keys.sorted()
        for peer in revoked { membership.revoke(peer) }
        keyRing.replaceTrusted(trusted)
        envelopes.replaceTrusted(trusted)
        return revoked
    }

    public var trusted: [String: [UInt8]] { keyRing.trusted }

    /// A new network may put a stranger at a remembered address: prove every peer's key again.
    public func forgetProofs() { envelopes.forgetProofs() }

    /// The roles each key was granted (`keys/NAME.pub`'s `# granted:` lines): routing skips a
    /// member for a role it was not granted.
    public var grants: GrantTable { routes.grants }

    /// New grants move routes as a view change does: the `role-moved` events they cause.
    public func replaceGrants(_ grants: GrantTable, now: Millis) -> [MeshEvent] {
        guard grants != routes.grants else { return [] }
        routes.grants = grants
        return routes.observe(membership.snapshot(now: now))
    }

    // MARK: - Outputs

    /// The core's actions, as the shell carries them out: frames sealed for the device at each
    /// address (or parked behind a hello), events with `role-moved` added from each changed view.
    func carryOut(_ actions: [MembershipAction], now: Millis) -> Output {
        var out = Output()
        for a in actions {
            switch a {
            case .send(let d, let to):
                out.datagrams += envelopes.send(Wire.encode(d), frame: .gossip, to: to, expected: self.membership.member(at: to), now: now)
            case .beat(let b, let to):
                out.datagrams += envelopes.send(Beat.encode(b), frame: .beat, to: to, expected: self.membership.member(at: to), now: now)
            case .event(let e):
                out.events.append(e)
            case .viewChanged:
                out.events += routes.observe(membership.snapshot(now: now))
                out.viewChanged = true
            case .persistIncarnation(let i):
                out.incarnation = i
            case .log(let s):
                out.logs.append(s)
            }
        }
        return out
    }
}
