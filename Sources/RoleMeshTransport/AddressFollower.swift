import RoleMeshPlatform
import RoleMeshCore

/// Moving between networks (README, "Travelling"): what this device's addresses say now against
/// what the agent last acted on, and which members were reached at another address since the last
/// view. A value the agent owns; each look says what changed, and the agent acts on it.
///
/// - Listening on 0.0.0.0 or [::] (what a laptop should use): a change of the address the mesh
///   reaches it at is announced, and every peer proves its key again (on a new network a stranger
///   may sit at a remembered address).
/// - Listening on a fixed address that vanished: said once; the node waits for it to return.
/// - Cut off (no route to any member or seed, or the fixed address gone): the failure detector is
///   held instead of declaring the whole mesh dead (protocol.md 7.2).
public struct AddressFollower: Sendable {
    public let listen: WireAddress
    /// Seeds as resolved at start (where to look for a route when the device's addresses change).
    public let seeds: [WireAddress]
    /// No route to the mesh now: the failure detector is held.
    public private(set) var cutOff = false
    /// Where each member was reached at the last view change.
    private var members: [String: WireAddress] = [:]

    public init(listen: WireAddress, seeds: [WireAddress]) { self.listen = listen; self.seeds = seeds }

    /// What one look found.
    public struct Look: Equatable, Sendable {
        /// The address to announce now (listening on a wildcard).
        public var movedTo: WireAddress?
        /// Every peer proves its key again (a new network, or the fixed address back).
        public var forgetProofs = false
        /// True: just cut off; false: just back; nil: no change.
        public var cutOffChanged: Bool?
        /// What to tell the person (the log): warnings and news.
        public var notes: [Note] = []

        /// Nothing changed.
        public init() {}
    }
    public struct Note: Equatable, Sendable {
        public var warning: Bool
        public var text: String
    }

    /// `announced`: the address the heartbeat carries now; `remembered`: the peers' addresses.
    /// `route(targets)` finds the local address toward them (`OwnAddress.toward`), `isLocal` whether
    /// an address is this device's: injected, so the decision is tested without a network.
    public mutating func look(announced: WireAddress, remembered: [WireAddress],
                              route: (([WireAddress]) -> WireAddress?)? = nil,
                              isLocal: (WireAddress) -> Bool = OwnAddress.isLocal) -> Look {
        var out = Look()
        let reachable: Bool
        if listen.isUnspecified {
            let targets = remembered + seeds
            if let here = route.map({ $0(targets) }) ?? OwnAddress.toward(targets, listen: listen) {
                reachable = true
                if here != announced {
                    out.movedTo = here
                    out.forgetProofs = true
                    out.notes.append(Note(warning: false, text: "this device's address changed from \(announced) to \(here): telling the mesh"))
                }
            } else {
                reachable = targets.isEmpty      // alone: there is nobody to be cut off from
            }
        } else {
            reachable = isLocal(listen)
            if reachable, cutOff { out.forgetProofs = true }
        }
        if !reachable, !cutOff {
            cutOff = true
            out.cutOffChanged = true
            out.notes.append(Note(warning: true, text: listen.isUnspecified
                ? "this device has no route to any member or seed now: holding failure detection until it has one"
                : "the listen address \(listen) is no longer on this device: this node is cut off from the mesh until it returns (listen = \"0.0.0.0:\(listen.port)\" in node.toml follows the device's addresses instead)"))
        } else if reachable, cutOff {
            cutOff = false
            out.cutOffChanged = false
            out.notes.append(Note(warning: false, text: listen.isUnspecified ? "a route to the mesh is back" : "the listen address \(listen) is back"))
        }
        return out
    }

    /// After a view change, with where each up member is reached now: the members reached at
    /// another address than at the last view change (they moved; connections to the old one are dead).
    public mutating func moves(_ now: [String: WireAddress]) -> [(name: String, from: WireAddress, to: WireAddress)] {
        var out: [(name: String, from: WireAddress, to: WireAddress)] = []
        for (name, address) in now.sorted(by: { $0.key < $1.key }) {
            if let old = members[name], old != address { out.append((name, old, address)) }
        }
        members = now
        return out
    }
}
