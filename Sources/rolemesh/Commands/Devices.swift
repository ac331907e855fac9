import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// New devices and revocation (docs/contract.md, "New devices, revocation, and travelling"), and
/// who may change trust ("Who may change trust").
let deviceCommands: [ParsableCommand.Type] = [Invite.self, Join.self, Revoke.self, Introducers.self, Grant.self, Ungrant.self,
                                              TrustAudit.self]

struct Invite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Print a one-line, single-use code that admits one new device called NAME (the agent must run).")
    @Argument(help: "The new device's name.") var name: String
    @Option(help: "How long the code works: a number and s, m, h or d.") var expires: String = "1h"
    @Option(name: .customLong("role"), help: "A role the device may hold, besides those it asks for at join (repeatable).") var roles: [String] = []
    @Option(name: .customLong("backup"), help: "A role the device may stand by for, ROLE[=PRIORITY] (repeatable).") var backups: [String] = []
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
        guard let s = DurationText.seconds(expires), s >= 1 else { throw ValidationError("invalid --expires \"\(expires)\" (e.g. 30m, 1h, 2d)") }
        _ = try grants()
    }

    /// `--role R` grants R, `--backup R[=P]` grants backup:R (the priority is the device's to choose).
    func grants() throws -> [String] {
        for r in roles where !NodeName.isValid(r) { throw ValidationError("invalid role name \"\(r)\"") }
        var out = roles
        for b in backups {
            let role = String(b.split(separator: "=", maxSplits: 1).first ?? "")
            guard NodeName.isValid(role) else { throw ValidationError("invalid --backup \"\(b)\" (expected ROLE or ROLE=PRIORITY)") }
            if !roles.contains(role) { out.append(RoleGrants.word(role: role, backup: true)) }
        }
        return out
    }

    func run() async throws {
        let seconds = Int(DurationText.seconds(expires) ?? 3600)
        let r = try ControlClient.call(dir.node, .invite(name: name, seconds: seconds, grants: (try? grants()) ?? []), as: InviteReply.self)
        printOut(r.code)
        var note = "on the new device, run: rolemesh join CODE  (works once, until \(r.expires))\n"
        if let others = r.alsoPending, !others.isEmpty {
            note += "the \(others.count == 1 ? "earlier code" : "\(others.count) earlier codes") for \(name) (until \(others.joined(separator: ", "))) still \(others.count == 1 ? "works" : "work"): whichever is used first admits \(name), and the others stop working\n"
        }
        _ = FD.writeAll(2, Array(note.utf8))
    }
}

struct Join: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Create this node (as init) and join the mesh with a code from `rolemesh invite NAME`.")
    @Argument(help: "The code `rolemesh invite` printed on a trusted device.") var code: String
    @OptionGroup var node: NodeOptions
    @OptionGroup var dir: DirOption

    static func badCode(_ why: String) -> MeshError {
        MeshError(MeshError.noPermission, "this invite code cannot be used: \(why); ask for a new one with `rolemesh invite NAME` on a trusted device")
    }

    func run() async throws {
        let invite: InviteCode
        do throws(InviteCode.Problem) { invite = try InviteCode.parse(code) } catch { throw Self.badCode(error.phrase) }
        let home = dir.node
        try NodeSetup.refuseExisting(home, name: invite.name)
        if invite.expires <= Int64(Date().timeIntervalSince1970) {
            throw Self.badCode("it expired at \(Clock.rfc3339(Date(timeIntervalSince1970: Double(invite.expires))))")
        }
        let config = try node.config(name: invite.name, seeds: invite.addresses)
        let pair = try NodeSetup.create(home, config)
        let asked = JoinRequest(roles: config.roles, backup: config.backup.keys.sorted())
        let result = await Self.admit(invite, pair, asking: asked)
        let welcome: WelcomePayload
        switch result {
        case .success(let w): welcome = w
        case .failure(let e):
            NodeSetup.remove(home, name: invite.name)    // nothing is left behind: join can run again
            throw e
        }
        let written = try Self.store(welcome, invite: invite, in: home)
        // One write: a reader that takes the first line and closes the pipe (`| head -1`) must
        // not make join fail with SIGPIPE between two writes.
        printOut("joined the mesh as \(invite.name): \(invite.inviter) admitted this device; keys of trusted devices written to \(home.keysDir.path): \(written)\n"
                 + "start the agent: rolemesh agent --dir \(home.root.path)   (or: rolemesh service install --dir \(home.root.path))")
    }

    /// The join handshake, the roles this device asks for, and the inviter's `welcome`, within 15 s in all.
    static func admit(_ invite: InviteCode, _ pair: Ed25519.KeyPair, asking: JoinRequest) async -> Result<WelcomePayload, MeshError> {
        do throws(MeshError) {
            let ch = try await SecureChannel.join(invite, keyPair: pair)
            let limit = Task { try? await Task.sleep(for: .seconds(10)); ch.abort() }
            defer { limit.cancel(); ch.close() }
            try await ch.send(Frame(.request, encoding: asking))
            guard let f = try await ch.receive(), f.type == .welcome, let w = f.decode(WelcomePayload.self) else {
                throw MeshError(MeshError.unavailable, "\(invite.inviter) accepted the code but its answer was lost; run `rolemesh revoke \(invite.name)` and `rolemesh invite \(invite.name)` there, then join again")
            }
            return .success(w)
        } catch {
            return .failure(error)
        }
    }

    /// The keys the inviter trusts go into keys/ with their grants (a file already there is
    /// kept), this device's own key file gets its grant, its peers become the seeds, and the
    /// inviter with its own introducers become this node's introducers.
    static func store(_ w: WelcomePayload, invite: InviteCode, in home: NodeDirectory) throws(MeshError) -> Int {
        var count = 0
        let when = Clock.rfc3339()
        func grantLine(_ words: [String]?) -> String {
            guard let words, RoleGrants(words) != nil else { return "" }
            return "# granted:" + words.sorted().map { " " + $0 }.joined() + "\n"
        }
        for (name, text) in w.keys.sorted(by: { $0.key < $1.key }) where name != invite.name && NodeName.isValid(name) {
            guard let key = Data(base64Encoded: text), key.count == Ed25519.publicKeySize else { continue }
            let file = home.publicKey(name)
            if FileManager.default.fileExists(atPath: file.path) { continue }
            try AtomicFile.replace(file, with: "# received from \(invite.inviter) when joining at \(when)\n" + grantLine(w.grants?[name])
                                   + "\(key.base64EncodedString())\n")
            count += 1
        }
        if let granted = w.granted, let own = try? String(contentsOf: home.publicKey(invite.name), encoding: .utf8) {
            try AtomicFile.replace(home.publicKey(invite.name), with: "# introduced by \(invite.inviter) at \(when)\n" + grantLine(granted) + own)
        }
        var config = try home.loadConfig()
        var seeds = invite.addresses
        for p in w.peers.prefix(8) where NodeConfig.splitHostPort(p) != nil && !seeds.contains(p) { seeds.append(p) }
        config.seeds = seeds
        var introducers = [invite.inviter]
        for n in w.introducers ?? [] where NodeName.isValid(n) && n != invite.name && !introducers.contains(n) { introducers.append(n) }
        config.introducers = introducers
        if let r = w.recovery, NodeConfig.isBase64Key(r) { config.recovery = r }
        try AtomicFile.replace(home.configFile, with: config.render())
        return count
    }
}

struct Revoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Remove NAME's key here and sign a revocation that spreads to the mesh (on an introducer; with the agent stopped it spreads once the agent runs).")
    @Argument(help: "The device to shut out.") var name: String
    @Flag(help: "Revoke the keys NAME introduced too, and what they introduced in turn.") var cascade = false
    @Flag(help: "Sign with the mesh's recovery code, read from stdin (when no introducer is left).") var recovery = false
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
        if cascade && recovery { throw ValidationError("--cascade and --recovery: revoke with the recovery code first, then --cascade from an introducer") }
    }

    func run() async throws {
        if recovery {
            let statement = try Recovery.statement(.revoke, name: name, code: RecoveryInput.read(), in: dir.node)
            return Self.say(try ControlClient.call(dir.node, .recovered(statement: statement), as: RevokeReply.self), recovery: true)
        }
        let client: ControlClient
        do { client = try ControlClient(dir: dir.node) } catch {
            if cascade { throw MeshError(MeshError.unavailable, "--cascade needs this node's agent (`rolemesh agent`); `rolemesh revoke \(name)` alone works without it") }
            try OfflineRevoke.revoke(name, in: dir.node)
            printOut("revoked \(name): keys/\(name).pub moved to keys/revoked/; the revocation spreads once this node's agent runs (`rolemesh agent`)")
            return
        }
        Self.say(try ControlClient.decode(RevokeReply.self, client.answer(.revoke(name: name, cascade: cascade))), recovery: false)
    }

    /// What happened, plainly: "moved" only for a key that moved.
    static func say(_ r: RevokeReply, recovery: Bool) {
        let by = recovery ? "with the recovery code" : "by this node"
        if r.moved {
            printOut("revoked \(r.name) \(by): keys/\(r.name).pub moved to keys/revoked/; the revocation spreads to every node that accepts this one's statements")
        } else {
            printOut("\(r.name) is revoked; its key was not in keys/ here, so nothing moved")
        }
        if !r.introduced.isEmpty {
            let list = r.introduced.map { "\($0.name) (\($0.at))" }.joined(separator: ", ")
            if r.cascaded.isEmpty {
                printOut("\(r.name) introduced \(list): they stay trusted; `rolemesh revoke \(r.name) --cascade` revokes them too")
            } else {
                printOut("\(r.name) introduced \(list)")
            }
        }
        if !r.cascaded.isEmpty { printOut("also revoked (--cascade): \(r.cascaded.joined(separator: ", "))") }
        if !r.restored.isEmpty {
            printOut("\(r.name)'s revocations no longer count: \(r.restored.joined(separator: ", ")) come back where their keys were moved; revoke any that must stay out again")
        }
    }
}

/// Reads the recovery code for `--recovery`: one line on stdin (asked for on a terminal).
enum RecoveryInput {
    static func read() throws(MeshError) -> String {
        if isatty(0) != 0 { _ = FD.writeAll(2, Array("recovery code (rmr1-...): ".utf8)) }
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw MeshError(MeshError.usage, "--recovery reads the recovery code from stdin, and none came")
        }
        return line
    }
}

/// `rolemesh introducers add|remove NAME [--recovery]`
struct Introducers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make NAME an introducer (it may invite, revoke and grant), or no longer one, on every node that accepts this one.")
    @Argument(help: "add or remove") var action: RoleAction
    @Argument(help: "The device.") var name: String
    @Flag(help: "Sign with the mesh's recovery code, read from stdin (when no introducer is left).") var recovery = false
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
    }

    func run() async throws {
        let request: ControlRequest
        if recovery {
            request = .recovered(statement: try Recovery.statement(action == .add ? .introducerAdd : .introducerRemove, name: name,
                                                                    code: RecoveryInput.read(), in: dir.node))
        } else {
            request = .introducers(action, name: name)
        }
        printOut(try ControlClient.call(dir.node, request, as: TrustChangeReply.self).message)
    }
}

/// `rolemesh grant NAME ROLE...`
struct Grant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Let NAME hold these roles (backup:ROLE for a backup); signed, it spreads to the mesh (on an introducer).")
    @Argument(help: "The device.") var name: String
    @Argument(help: "Roles, or backup:ROLE.") var roles: [String]
    @OptionGroup var dir: DirOption

    func validate() throws { try Grant.check(name, roles) }

    static func check(_ name: String, _ roles: [String]) throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
        guard !roles.isEmpty else { throw ValidationError("name at least one role") }
        for r in roles where !RoleGrants.isValidWord(r) { throw ValidationError("invalid role \"\(r)\" (a role name, or backup:ROLE)") }
    }

    func run() async throws {
        printOut(try ControlClient.call(dir.node, .grant(.add, name: name, roles: roles), as: TrustChangeReply.self).message)
    }
}

/// `rolemesh ungrant NAME ROLE...`
struct Ungrant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take roles away from NAME: routing skips it for them (not granted); signed, it spreads to the mesh.")
    @Argument(help: "The device.") var name: String
    @Argument(help: "Roles, or backup:ROLE.") var roles: [String]
    @OptionGroup var dir: DirOption

    func validate() throws { try Grant.check(name, roles) }

    func run() async throws {
        printOut(try ControlClient.call(dir.node, .grant(.remove, name: name, roles: roles), as: TrustChangeReply.self).message)
    }
}

/// `rolemesh trust [--json]`
struct TrustAudit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trust",
        abstract: "The audit: every key, who introduced it and when, introducers, grants, revocations, and revocations refused.")
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let r = try ControlClient.call(dir.node, .trust, as: TrustReply.self)
        if json { return printOut(ControlJSON.string(r)) }
        var rows = [["NAME", "INTRODUCED BY", "AT", "INTRODUCER", "GRANTED", "STATE"]]
        for k in r.keys {
            rows.append([k.name, k.introducedBy ?? "-", k.introducedAt ?? "-", k.introducer ? "yes" : "no",
                         k.granted.map { $0.isEmpty ? "(nothing)" : $0.joined(separator: " ") } ?? "(every role)",
                         k.revoked ? "revoked" : "trusted"])
        }
        var out = StatusText.table(rows)
        for f in r.refused { out += "\nrefused \(f.kind) of \(f.name) by \(f.by): \(f.reason)" }
        printOut(out)
    }
}
