import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// `rolemesh services [--json]`
struct Services: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "Every service the mesh knows: where a connection goes now and why, and each node offering it.")
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let r = try ControlClient.call(dir.node, .services, as: ServicesReply.self)
        // A bad service.toml of this node: named on stderr, whatever the format.
        for (_, sentence) in (r.errors ?? [:]).sorted(by: { $0.key < $1.key }) { printNote(sentence) }
        if json { return printOut(ControlJSON.string(r.printed)) }
        if r.services.isEmpty { return printOut("no services offered in the mesh") }
        for s in r.services {
            printOut("\(s.service) (port \(s.port), where \(s.where)) -> \(s.node ?? "(no node)")"
                     + (s.via.map { " (via \($0): no direct path from here)" } ?? "") + ": \(s.reason)")
            for n in s.nodes { printOut("  \(n.node): \(n.health)" + (n.detail.map { " (\($0))" } ?? "")) }
        }
    }
}

/// `rolemesh connect ROLE/NAME [--local [HOST:]PORT] [--stdio]`
struct Connect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Forward a local port (or stdin/stdout) to a service's current route, until Ctrl-C.")
    @Argument(help: "The service, ROLE/NAME.") var service: String
    @Option(help: "Listen here instead of 127.0.0.1 at the service's own port: [HOST:]PORT.") var local: String?
    @Flag(help: "Forward one connection over stdin/stdout (for ssh -o ProxyCommand=... and scripts).") var stdio = false
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard ServiceName.split(service) != nil else {
            throw ValidationError("invalid service name \"\(service)\": expected ROLE/NAME, each \(ServiceName.rule)")
        }
        if let local, ForwardSpec.local(local) == nil { throw ValidationError("--local: expected [HOST:]PORT, found \"\(local)\"") }
        if stdio, local != nil { throw ValidationError("--stdio forwards stdin/stdout: it takes no --local") }
    }

    /// The first answer waits for a connection to be made (a few candidates may be tried).
    static let answerSeconds: Double = 30

    func run() async throws {
        let c = try ControlClient(dir: dir.node)
        try c.send(.connect(service: service, listen: local, stdio: stdio))
        let line = try c.firstLine(within: Self.answerSeconds)
        try ControlClient.check(line)
        let r = try ControlClient.decode(ConnectReply.self, line)
        if stdio { return Self.pipe(c) }
        printOut("forwarding \(r.listen ?? "?") -> \(service) (now \(r.node ?? "no node"))"
                 + (r.via.map { " (via \($0))" } ?? ""))
        // Runs until Ctrl-C; the listener closes with this connection. The agent stopping ends it.
        while c.readLine() != nil {}
        throw MeshError(MeshError.other, "the agent stopped; \(service) is no longer forwarded")
    }

    /// `--stdio`: stdin to the service, the service to stdout, until the service ends its side.
    static func pipe(_ c: ControlClient) {
        let fd = c.fd
        _ = FD.writeAll(1, c.takeBuffered())
        // A blocking read of stdin on a pool thread: this process does nothing else meanwhile.
        DispatchQueue.global().async {
            var buf = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buf.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 || !FD.writeAll(fd, Array(buf[0..<n])) { break }
            }
            _ = shutdown(fd, Int32(SHUT_WR))
        }
        var buf = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || !FD.writeAll(1, Array(buf[0..<n])) { break }
        }
    }
}
