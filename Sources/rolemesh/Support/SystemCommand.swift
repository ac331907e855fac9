import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshStorage

/// Runs the platform's own tools (systemctl, launchctl) the way a person would from a shell.
enum SystemCommand {
    struct Outcome { var status: Int32; var stderr: String }

    /// The first executable `name` on PATH, or nil: a missing tool is said, not crashed on.
    static func find(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for folder in path.split(separator: ":") where folder.hasPrefix("/") {
            let candidate = "\(folder)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `argv` (argv[0] absolute) with stdin closed; stdout passes through, stderr is kept
    /// for the one-sentence failure. systemctl and launchctl end on their own.
    static func run(_ argv: [String]) -> Outcome {
        let r = Spawn.capture(argv, keep: 2)
        return Outcome(status: r.status ?? 127, stderr: r.output)
    }

    /// The absolute path of this program, for a unit's ExecStart (a service has another PATH).
    static var currentExecutable: String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        let arg0 = CommandLine.arguments[0]
        if arg0.contains("/") {
            return URL(fileURLWithPath: arg0).standardizedFileURL.resolvingSymlinksInPath().path
        }
        return find(arg0) ?? arg0
    }

    /// The user's home: $HOME as a shell has it, else the password database's.
    static var home: String { NodeDirectory.home.path }

    /// The account that owns `path` (a system unit runs the agent as the owner of its node).
    static func owner(of path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, let pw = getpwuid(st.st_uid) else { return nil }
        return String(cString: pw.pointee.pw_name)
    }
}
