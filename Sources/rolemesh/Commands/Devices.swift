import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore

/// New devices and revocation (docs/contract.md, "New devices, revocation, and travelling").
let deviceCommands: [ParsableCommand.Type] = [Invite.self, Join.self, Revoke.self]

struct Invite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Print a one-line, single-use code that admits one new device called NAME (the agent must run).")
    @Argument(help: "The new device's name.") var name: String
    @Option(help: "How long the code works: a number and s, m, h or d.") var expires: String = "1h"
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
        guard let s = DurationText.seconds(expires), s >= 1 else { throw ValidationError("invalid --expires \"\(expires)\" (e.g. 30m, 1h, 2d)") }
    }

    func run() throws {
        try RoleMeshCLI.run {
            let seconds = Int(DurationText.seconds(expires) ?? 3600)
            let r = try ControlClient.call(dir.node, .invite(name: name, seconds: seconds), as: InviteReply.self)
            printOut(r.code)
            _ = FD.writeAll(2, Array("on the new device, run: rolemesh join CODE  (works once, until \(r.expires))\n".utf8))
        }
    }
}

struct Join: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join",
        abstract: "Create this node (as init) and join the mesh with a code from `rolemesh invite NAME`.")
    @Argument(help: "The code `rolemesh invite` printed on a trusted device.") var code: String
    @OptionGroup var node: NodeOptions
    @OptionGroup var dir: DirOption

    static func badCode(_ why: String) -> MeshError {
        MeshError(MeshError.noPermission, "this invite code cannot be used: \(why); ask for a new one with `rolemesh invite NAME` on a trusted device")
    }

    func run() throws {
        try RoleMeshCLI.run {
            let invite: InviteCode
            do throws(InviteCode.Problem) { invite = try InviteCode.parse(code) } catch { throw Self.badCode(error.phrase) }
            let home = dir.node
            try NodeSetup.refuseExisting(home, name: invite.name)
            if invite.expires <= Int64(Date().timeIntervalSince1970) {
                throw Self.badCode("it expired at \(Clock.rfc3339(Date(timeIntervalSince1970: Double(invite.expires))))")
            }
            let pair = try NodeSetup.create(home, try node.config(name: invite.name, seeds: invite.addresses))
            let result = blockingWait { await Self.admit(invite, pair) }
            let welcome: WelcomePayload
            switch result {
            case .success(let w): welcome = w
            case .failure(let e):
                NodeSetup.remove(home, name: invite.name)    // nothing is left behind: join can run again
                throw e
            }
            let written = try Self.store(welcome, invite: invite, in: home)
            printOut("joined the mesh as \(invite.name): \(invite.inviter) admitted this device; keys of trusted devices written to \(home.keysDir.path): \(written)")
            printOut("start the agent: rolemesh agent --dir \(home.root.path)   (or: rolemesh service install --dir \(home.root.path))")
        }
    }

    /// The join handshake and the inviter's `welcome`, within 15 s in all.
    static func admit(_ invite: InviteCode, _ pair: Ed25519.KeyPair) async -> Result<WelcomePayload, MeshError> {
        do throws(MeshError) {
            let ch = try await SecureChannel.join(invite, keyPair: pair)
            let limit = Task { try? await Task.sleep(for: .seconds(10)); ch.abort() }
            defer { limit.cancel(); ch.close() }
            guard let f = try await ch.receive(), f.type == .welcome, let w = f.decode(WelcomePayload.self) else {
                throw MeshError(MeshError.unavailable, "\(invite.inviter) accepted the code but its answer was lost; run `rolemesh revoke \(invite.name)` and `rolemesh invite \(invite.name)` there, then join again")
            }
            return .success(w)
        } catch {
            return .failure(error)
        }
    }

    /// The keys the inviter trusts go into keys/ (a file already there is kept), its peers become the seeds.
    static func store(_ w: WelcomePayload, invite: InviteCode, in home: NodeDirectory) throws(MeshError) -> Int {
        var count = 0
        let when = Clock.rfc3339()
        for (name, text) in w.keys.sorted(by: { $0.key < $1.key }) where name != invite.name && NodeName.isValid(name) {
            guard let key = Data(base64Encoded: text), key.count == Ed25519.publicKeySize else { continue }
            let file = home.publicKey(name)
            if FileManager.default.fileExists(atPath: file.path) { continue }
            try AtomicFile.replace(file, with: "# received from \(invite.inviter) when joining at \(when)\n\(key.base64EncodedString())\n")
            count += 1
        }
        var config = try home.loadConfig()
        var seeds = invite.addresses
        for p in w.peers.prefix(8) where NodeConfig.splitHostPort(p) != nil && !seeds.contains(p) { seeds.append(p) }
        config.seeds = seeds
        try AtomicFile.replace(home.configFile, with: config.render())
        return count
    }
}

struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Remove NAME's key here and sign a revocation that spreads to the mesh (the agent must run).")
    @Argument(help: "The device to shut out.") var name: String
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard NodeName.isValid(name) else { throw ValidationError("invalid node name \"\(name)\"") }
    }

    func run() throws {
        try RoleMeshCLI.run {
            let client: ControlClient
            do { client = try ControlClient(dir: dir.node) } catch {
                try OfflineRevoke.revoke(name, in: dir.node)
                printOut("revoked \(name): keys/\(name).pub moved to keys/revoked/; the revocation spreads once this node's agent runs (`rolemesh agent`)")
                return
            }
            _ = try client.answer(.revoke(name: name))
            printOut("revoked \(name): keys/\(name).pub moved to keys/revoked/; the revocation spreads to every node that accepts this one's introductions")
        }
    }
}
