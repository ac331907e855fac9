import Glibc
import Dispatch
import FoundationEssentials

/// Starting a task process with `posix_spawn`: the file itself (never through `env` or a shell,
/// so no byte of its name or arguments is interpreted), default signal handling and an empty
/// signal mask (the agent ignores SIGPIPE; a task starts as from a shell), its own process
/// group, its working directory, its three pipes, and nothing else of the agent's descriptors.
public enum Spawn {
    /// The child's pid, or the errno `posix_spawn` reported (ENOEXEC, EACCES, ENOENT…).
    public static func start(path: String, args: [String], environment: [String], directory: String,
                      stdin: Int32, stdout: Int32, stderr: Int32) -> Result<pid_t, Errno> {
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        guard let closeFrom = Self.addCloseFrom, let chdir = Self.addChdir else { return .failure(Errno(code: ENOSYS)) }
        _ = closeFrom(&actions, 3)
        _ = chdir(&actions, directory)

        let argv = ([path] + args).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, argv, envp)
        return rc == 0 ? .success(pid) : .failure(Errno(code: rc))
    }

    public struct Errno: Error { public let code: Int32 }

    /// A system tool run to its end, one of its outputs kept (what Foundation's `Process` and
    /// `Pipe` did): `argv[0]` an absolute path, this process's environment, stdin from /dev/null.
    /// Output `keep` (1 or 2) is captured; the other one passes through, or goes to /dev/null
    /// when `quiet`. Past `seconds` (if given) the tool is killed and its output dropped (status
    /// nil); nil too, with the reason as output, when it cannot start.
    public static func capture(_ argv: [String], keep: Int32, quiet: Bool = false,
                               within seconds: Double? = nil) -> (status: Int32?, output: String) {
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0, let (readEnd, writeEnd) = pipe() else {
            if null >= 0 { sysClose(null) }
            return (nil, String(cString: strerror(errno)))
        }
        let other: Int32 = quiet ? null : (keep == 1 ? 2 : 1)
        let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let started = start(path: argv[0], args: Array(argv.dropFirst()), environment: env, directory: ".",
                            stdin: null, stdout: keep == 1 ? writeEnd : other, stderr: keep == 2 ? writeEnd : other)
        sysClose(writeEnd)
        sysClose(null)
        defer { sysClose(readEnd) }
        guard case .success(let pid) = started else {
            if case .failure(let e) = started { return (nil, String(cString: strerror(e.code))) }
            return (nil, "")
        }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        let deadline = seconds.map(FD.deadline(in:))
        var timedOut = false
        while true {
            if let deadline, !FD.waitReadable(readEnd, until: deadline) { timedOut = true; break }
            let n = chunk.withUnsafeMutableBytes { sysRead(readEnd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        if timedOut { kill(-pid, SIGKILL) }   // its own process group: what it started goes too
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (timedOut ? nil : decode(status), String(decoding: out, as: UTF8.self))
    }

    /// A pipe: (read end, write end), both close-on-exec (the child gets its copies by dup2).
    public static func pipe() -> (Int32, Int32)? {
        var fds: [Int32] = [-1, -1]
        guard sysPipe(&fds) == 0 else { return nil }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    // glibc's GNU extensions (2.29+, 2.34+) are not imported without _GNU_SOURCE: looked up once.
    public typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    public typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    public typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    public static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
    public static let addCloseFrom: AddCloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    public static let pidfdOpen: PidfdOpen? = dlsym(nil, "pidfd_open").map { unsafeBitCast($0, to: PidfdOpen.self) }

    /// Waits for `pid` to end and returns its exit code, or 128 + the signal that ended it.
    /// No thread waits: a pidfd (Linux 5.3+, glibc 2.36+) turns readable when the child exits.
    public static func exit(of pid: pid_t) async -> Int32 {
        if let open = pidfdOpen, case let pidfd = open(pid, 0), pidfd >= 0 {
            await Poller.shared.readable(pidfd)
            _ = sysClose(pidfd)
        } else {
            // An older system: one blocking waitpid on a pool thread, for this child only.
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    var info = siginfo_t()
                    while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
                    c.resume()
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return 1 }
        }
        return decode(status)
    }

    /// The wait status by hand (the W* macros do not import): exit code, or 128 + signal.
    public static func decode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig == 0 { return (status >> 8) & 0xff }
        return 128 + sig
    }

    /// The interpreter a `#!` line names, if the file starts with one.
    public static func interpreter(of path: String) -> String? { shebangWords(of: path)?.first }

    /// The words of the file's `#!` line, if it starts with one.
    public static func shebangWords(of path: String) -> [String]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { sysClose(fd) }
        var head = [UInt8](repeating: 0, count: 256)
        let n = head.withUnsafeMutableBytes { sysRead(fd, $0.baseAddress, $0.count) }
        head.removeLast(256 - max(n, 0))
        guard head.starts(with: [0x23, 0x21]) else { return nil }
        let line = head.dropFirst(2).prefix { $0 != 0x0a }
        return String(decoding: line, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
    }

    /// The program `#!/usr/bin/env PROGRAM` (or `env -S PROGRAM ...`) asks for, if the line uses env.
    public static func envProgram(shebang words: [String]) -> String? {
        guard let first = words.first, first.hasSuffix("/env") || first == "env" else { return nil }
        // `-S` splits the rest; other options, and NAME=VALUE assignments, come before the program.
        return words.dropFirst().flatMap { $0.split(separator: " ").map(String.init) }
            .first { !$0.hasPrefix("-") && !$0.contains("=") }
    }

    /// Whether `program` is an executable file in one of `searchPath`'s directories (or at its path).
    public static func isFound(_ program: String, searchPath: String) -> Bool {
        if program.contains("/") { return access(program, X_OK) == 0 }
        return searchPath.split(separator: ":").contains { access("\($0)/\(program)", X_OK) == 0 }
    }

    /// A task run through `#!/usr/bin/env NAME` whose NAME is not on the task's PATH: env would
    /// only say "No such file or directory", naming neither the task nor what to install.
    public static func missingEnvProgram(of path: String, searchPath: String) -> String? {
        guard let words = shebangWords(of: path), let program = envProgram(shebang: words),
              !isFound(program, searchPath: searchPath) else { return nil }
        return program
    }
}
