import RoleMeshPlatform
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTransport

/// The checks that need nothing but this machine: node.toml, the secret key, the listen
/// address, the clock.
enum LocalChecks {
    static func config(_ node: NodeDirectory) -> (DoctorCheck, NodeConfig?) {
        let path = node.configFile.path
        guard FileManager.default.fileExists(atPath: path) else {
            return (.fail("config", "\(path) does not exist", fix: "rolemesh init NAME --dir \(node.root.path)"), nil)
        }
        do {
            let c = try node.loadConfig()
            return (.pass("config", "\(path) parses: node \(c.name), listen \(c.listen), \(c.seeds.count) seeds, profile \(c.profile)"), c)
        } catch {
            // The parser names the key and line; the fix is to edit that line.
            return (.fail("config", error.message, fix: "edit \(path) (docs/contract.md, \"node.toml\", lists every key)"), nil)
        }
    }

    /// The agent's own checks on the secret, then the key pair itself for the seed checks: a key
    /// that is only too open still proves who this node is (the agent would refuse to start).
    static func secret(_ node: NodeDirectory, _ name: String) -> (DoctorCheck, Ed25519.KeyPair?) {
        let path = node.secretKey(name).path
        var check = DoctorCheck.pass("secret key", "\(path) is a regular file, yours, mode 600")
        var st = stat()
        if lstat(path, &st) != 0 {
            let (what, fix) = KeyStore.missingSecretAndFix(name: name, in: node)
            return (.fail("secret key", what, fix: fix), nil)
        }
        do { try KeyStore.checkSecret(name: name, in: node) } catch {
            check = .fail("secret key", error, fix: "keep the secret a regular file you own, mode 600: chmod 600 \(path)")
        }
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid() else { return (check, nil) }
        do { return (check, try KeyStore.readSecret(path)) } catch {
            return (check.ok ? .fail("secret key", error.message, fix: "restore the key from a backup, or make a new identity with `rolemesh keygen` and trust its .pub again everywhere") : check, nil)
        }
    }

    /// The agent binds UDP and TCP on `listen`: free, or taken by this node's own agent.
    static func address(_ config: NodeConfig, _ node: NodeDirectory, agentRunning: Bool) -> (DoctorCheck, WireAddress?) {
        let name = "listen"
        let toml = node.configFile.path
        guard let (host, port) = NodeConfig.splitHostPort(config.listen),
              let address = WireAddress(host: host, port: port) ?? SocketAddress.resolve(config.listen) else {
            return (.fail(name, "\(config.listen) does not resolve to an address", fix: "set listen in \(toml) to an address of this machine (see `ip -brief address`)"), nil)
        }
        let udp = bindProbe(address, type: sockDgram)
        let tcp = bindProbe(address, type: sockStream)
        if udp == 0 && tcp == 0 {
            return (.pass(name, "UDP and TCP \(address) are free for the agent" + (agentRunning ? " (the agent answers, so it listens elsewhere: restart it to use node.toml's address)" : "")), address)
        }
        let (proto, err) = udp != 0 ? ("UDP", udp) : ("TCP", tcp)
        switch err {
        case EADDRINUSE where agentRunning:
            return (.pass(name, "\(address) is held by this node's agent"), address)
        case EADDRINUSE:
            let ss = proto == "UDP" ? "ss -ulpn" : "ss -tlpn"
            return (.fail(name, "\(proto) \(address) is in use by another program and this node's agent is not running",
                          fix: "`\(ss) 'sport = :\(address.port)'` shows which; stop it, or set another port in listen in \(toml)"), address)
        case EADDRNOTAVAIL:
            return (.fail(name, "\(address.host) is not an address of this machine",
                          fix: "set listen in \(toml) to one of this machine's addresses (see `ip -brief address`), or 0.0.0.0:\(address.port)"), address)
        case EACCES:
            return (.fail(name, "port \(address.port) needs privileges to bind", fix: "set a port above 1023 in listen in \(toml)"), address)
        default:
            return (.fail(name, "cannot bind \(proto) \(address): \(String(cString: strerror(err)))", fix: "set listen in \(toml) to an address and port this machine can use"), address)
        }
    }

    /// 0 if `address` can be bound now (released at once), else the errno. TCP with
    /// SO_REUSEADDR, as the agent binds it, so a connection in TIME_WAIT does not count as taken;
    /// UDP without it, so the agent's own socket does.
    static func bindProbe(_ address: WireAddress, type: Int32) -> Int32 {
        let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, type, 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        if type == sockStream {
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard SocketAddress.with(address, { bind(fd, $0, $1) }) == 0 else { return errno }
        // A TCP bind may succeed beside a listener; listening is what collides.
        if type == sockStream, listen(fd, 1) != 0 { return errno }
        return 0
    }

    /// The wall clock is plausible: not before 2024 (a board without a battery-backed clock boots
    /// in 1970 or at its build date), and no file the agent wrote is dated in its future (the
    /// clock was set back). Membership never reads it; task times and logs do.
    static func clock(_ node: NodeDirectory, now: Date = Date()) -> DoctorCheck {
        let fix = "turn on time synchronisation: sudo timedatectl set-ntp true"
        let stamp = Clock.rfc3339(now)
        if now.timeIntervalSince1970 < earliest {
            return .fail("clock", "the clock says \(stamp), before 2024", fix: fix)
        }
        if let (file, date) = newestFile(under: node.stateDir), date.timeIntervalSince(now) > 300 {
            return .fail("clock", "the clock says \(stamp), but \(file) was written at \(Clock.rfc3339(date)): the clock went back", fix: fix)
        }
        let up = Int(Double(Clock.now()) / 1000)
        return .pass("clock", "\(stamp), up \(up / 3600) h \(up / 60 % 60) min (CLOCK_BOOTTIME); nothing under state/ is dated later")
    }

    /// 2024-01-01T00:00:00Z.
    static let earliest: TimeInterval = 1_704_067_200

    /// The most recently modified file directly under `folder` (the agent's own records).
    static func newestFile(under folder: URL) -> (String, Date)? {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: folder.path) else { return nil }
        var newest: (String, Date)?
        for n in names.prefix(1000) {
            let path = folder.appendingPathComponent(n).path
            guard let d = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date else { continue }
            if newest == nil || d > newest!.1 { newest = (path, d) }
        }
        return newest
    }
}
