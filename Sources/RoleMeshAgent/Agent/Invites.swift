import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTransport
import RoleMeshTaskChannel

/// `rolemesh invite NAME`: this node holds a one-time secret for NAME and prints a code; the new
/// device proves the secret in a join handshake (TaskChannel/JoinHandshake.swift), gets the
/// trusted keys and peers (`welcome`), and this node introduces it to the mesh (TrustRelay.swift).
extension Agent {
    static func wallSeconds() -> Int64 { Int64(Date().timeIntervalSince1970) }

    func invite(name invited: String, seconds: Int, grants: [String], _ conn: ControlConnection) {
        guard NodeName.isValid(invited) else { return conn.fail(MeshError(MeshError.usage, "invalid node name \"\(invited)\"")) }
        guard RoleGrants(grants) != nil else { return conn.fail(MeshError(MeshError.usage, "--role and --backup take role names")) }
        if let refusal = mayChangeTrust() { return conn.fail(refusal) }
        guard invited != name else { return conn.fail(MeshError(MeshError.usage, "\(invited) is this node; invite a new device by its own name")) }
        guard keyRing.trusted[invited] == nil else {
            return conn.fail(MeshError(MeshError.usage, "\(invited) is already trusted here (keys/\(invited).pub); pick another name, or `rolemesh revoke \(invited)` first"))
        }
        guard seconds >= 1, seconds <= 7 * 86_400 else {
            return conn.fail(MeshError(MeshError.usage, "--expires must be between 1s and 7d"))
        }
        let addresses = inviteAddresses()
        guard !addresses.isEmpty else {
            return conn.fail(MeshError(MeshError.unavailable,
                                       "this agent listens on \(listenAddress) and does not know an address others reach it at; set `listen` in node.toml to this device's address"))
        }
        var secret = Ed25519.randomBytes(InviteCode.secretSize)
        defer { Ed25519.wipe(&secret) }
        let expires = Self.wallSeconds() + Int64(seconds)
        let code = InviteCode(inviter: name, inviterKey: keyRing.keyPair.publicKey, secret: secret, expires: expires,
                              name: invited, addresses: addresses)
        // An earlier code for the same name keeps working (until it expires, or one of them is
        // used): a second invite does not silently void the first, and the answer says it is there.
        let now = Self.wallSeconds()
        invites.removeAll { $0.expires <= now }
        var others = invites.filter { $0.name == invited }
        if others.count >= Self.maxInvitesPerName, let oldest = others.min(by: { $0.expires < $1.expires }) {
            invites.removeAll { $0 == oldest }
            others.removeAll { $0 == oldest }
        }
        guard invites.count < Self.maxInvites else {
            return conn.fail(MeshError(MeshError.unavailable, "\(Self.maxInvites) invites are pending here already: let some be used or expire"))
        }
        invites.append(PendingInvite(name: invited, secret: Data(secret).base64EncodedString(), expires: expires,
                                     grants: grants.isEmpty ? nil : Array(Set(grants)).sorted()))
        let text = code.text
        Log.info("invite for \(invited) made, valid until \(Self.wallText(expires))" + (others.isEmpty ? "" : " (\(others.count) earlier one(s) for it still pending)"))
        let also = others.sorted { $0.expires < $1.expires }.map { Self.wallText($0.expires) }
        spawn {
            if let failure = await saveInvites() { conn.fail(failure); return }
            conn.reply(InviteReply(name: invited, code: text, expires: Self.wallText(expires), alsoPending: also.isEmpty ? nil : also))
        }
    }

    /// Invites pending for one name, and in all, at most.
    static let maxInvitesPerName = 8
    static let maxInvites = 64

    static func wallText(_ seconds: Int64) -> String { Clock.rfc3339(Date(timeIntervalSince1970: Double(seconds))) }

    /// Where a new device can reach this node's task channel: the address the mesh knows it by,
    /// and the listen address when it is a specific one; listening on 0.0.0.0 with neither (a
    /// first device), this device's own IPv4 addresses.
    func inviteAddresses() -> [String] {
        var out: [String] = []
        if let me = core.snapshot(now: Clock.now()).first(where: \.isSelf), !me.address.isUnspecified { out.append(me.address.description) }
        if !listenAddress.isUnspecified, !out.contains(listenAddress.description) { out.append(listenAddress.description) }
        if out.isEmpty { out = Self.interfaceAddresses(port: listenAddress.port).prefix(4).map(\.description) }
        return out
    }

    /// The IPv4 addresses of interfaces that are up, loopback ones only when there is no other.
    static func interfaceAddresses(port: UInt16) -> [WireAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        let up: UInt32 = 0x1, loopback: UInt32 = 0x8       // IFF_UP, IFF_LOOPBACK (net/if.h)
        var out: [WireAddress] = [], loops: [WireAddress] = []
        for p in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let sa = p.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET), p.pointee.ifa_flags & up != 0 else { continue }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: MemoryLayout<sockaddr_in>.size)) }
            guard let a = SocketAddress.from(storage) else { continue }
            let w = WireAddress(ip: a.ip, port: port)
            if p.pointee.ifa_flags & loopback != 0 { loops.append(w) } else if !out.contains(w) { out.append(w) }
        }
        return out.isEmpty ? loops : out
    }

    /// NAME's pending, unexpired invite whose id (`ChannelHandshake.inviteID`) is `id`.
    func pendingInvite(_ invited: String, id: [UInt8]) -> PendingInvite? {
        let now = Self.wallSeconds()
        return invites.first { p in
            guard p.name == invited, p.expires > now, let s = Data(base64Encoded: p.secret) else { return false }
            return ChannelHandshake.inviteID(secret: [UInt8](s)) == id
        }
    }

    /// The secret of that invite, for the join handshake.
    func inviteSecret(_ invited: String, id: [UInt8]) -> [UInt8]? {
        pendingInvite(invited, id: id).flatMap { Data(base64Encoded: $0.secret) }.map { [UInt8]($0) }
    }

    /// Uses NAME's invites up (every code for NAME, once one is proved): true for the first proof
    /// only. What the proved one granted waits for the `welcome`.
    func claimInvite(_ invited: String, id: [UInt8], key: [UInt8]) -> Bool {
        guard let p = pendingInvite(invited, id: id) else { return false }
        claimedGrants[invited] = p.grants ?? []
        invites.removeAll { $0.name == invited }
        spawn { _ = await saveInvites() }
        Log.info("\(invited) proved its invite; admitting it")
        return true
    }

    /// Expired invites go whenever the file is written.
    func saveInvites() async -> MeshError? {
        let now = Self.wallSeconds()
        invites = invites.filter { $0.expires > now }
        let list = invites.sorted { ($0.name, $0.expires) < ($1.name, $1.expires) }, dir = self.dir
        return await disk.written { () throws(MeshError) in try InviteStore.save(list, dir) }
    }

    /// After a proven join: the device says which roles it will hold (one `request` frame,
    /// `{"op": "join", "roles", "backup"}`, within 3 s, else the join is dropped),
    /// the new key is introduced here (written to keys/, trusted, granted those roles and the
    /// invite's) and to the mesh, then the device gets the keys this node trusts, their grants,
    /// this node's introducers and the mesh's recovery key, and addresses to start from.
    func welcome(_ channel: SecureChannel) async {
        defer { channel.close() }
        guard let key = channel.joinKey else { return }
        channel.io.setDeadline(3)      // lifted once the frame is in
        let asked = (try? await channel.receive()).flatMap { $0.type == .request ? $0.decode(JoinRequest.self) : nil }
        channel.io.setDeadline(nil)
        guard let asked else { claimedGrants[channel.peer] = nil; return Log.warn("\(channel.peer) proved its invite but did not say what it holds; not admitting it") }
        var granted = RoleGrants(claimedGrants.removeValue(forKey: channel.peer) ?? []) ?? RoleGrants()
        let wanted = RoleGrants.needed(roles: asked.roles.filter { NodeName.isValid($0) }.prefix(32).map { $0 },
                                       backup: asked.backup.filter { NodeName.isValid($0) }.prefix(32).map { $0 })
        for w in wanted.words where granted.words.count < RoleGrants.maxWords { granted.insert(w) }
        let s = signed(.introduce, name: channel.peer, key: key, grants: granted.sorted)
        let (outcome, applying) = judge(s)
        if case .refused(let why) = outcome { Log.warn("not admitting \(channel.peer): \(why)"); return }
        _ = await finished(applying)     // the key file is on disk
        reloadKeys()
        var keys: [String: String] = [:], keyGrants: [String: [String]] = [:]
        for (n, k) in keyRing.trusted where n != channel.peer {
            keys[n] = Data(k).base64EncodedString()
            if let g = keyFiles[n]?.grants { keyGrants[n] = g.sorted }
        }
        var peers = inviteAddresses()
        for m in core.snapshot(now: Clock.now()) where !m.isSelf && m.state == .alive && !m.address.isUnspecified {
            if !peers.contains(m.address.description) { peers.append(m.address.description) }
        }
        let payload = WelcomePayload(keys: keys, peers: Array(peers.prefix(8)), grants: keyGrants, granted: granted.sorted,
                                     introducers: config.acceptedIntroducers, recovery: config.recovery)
        try? await channel.send(Frame(.welcome, encoding: payload))
    }
}
