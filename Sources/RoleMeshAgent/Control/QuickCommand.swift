/// The command lines scripts run in loops (`--version`, `status`, a plain `submit`), recognized
/// without swift-argument-parser. Building its command tree and reflecting over each command's
/// properties costs a new process about a millisecond (generic metadata, conformance lookups:
/// docs/benchmarks.md), as much as the rest of `status`. Only a strict subset of what
/// ArgumentParser accepts is recognized here, and only in its plainest spelling: anything else
/// (help, an unknown or repeated flag, a bad name, a word out of place) is nil and goes to
/// ArgumentParser, which parses it and words its errors as for every other command. The commands
/// run the same code either way; `QuickCommandTests` and an integration test check that both
/// paths give the same output.
public enum QuickCommand: Equatable, Sendable {
    case version
    case status(json: Bool, dir: String?)
    case submit(role: String, task: String, args: [String], detach: Bool, heavy: Bool, queue: Bool, dir: String?)

    /// `ROLEMESH_QUICK=0` in the environment turns this path off (the tests compare both).
    public static let switchName = "ROLEMESH_QUICK"

    /// `args` as `Arguments.hoistingDir` left them (`--dir` already after the command word).
    public static func parse(_ args: [String]) -> QuickCommand? {
        if args == ["--version"] { return .version }
        guard let word = args.first else { return nil }
        switch word {
        case "status":
            guard var flags = Flags(Array(args.dropFirst()), allowed: ["--json"]), flags.words.isEmpty, flags.tail == nil else { return nil }
            return .status(json: flags.take("--json"), dir: flags.dir)
        case "submit":
            guard var flags = Flags(Array(args.dropFirst()), allowed: ["--detach", "--heavy", "--queue"]),
                  flags.words.count == 1, let (role, task) = Submission.split(flags.words[0]) else { return nil }
            let taskArgs = flags.tail ?? []
            // ArgumentParser's validation says why, as it does for every command.
            guard taskArgs.isEmpty || Submission.argumentsFit(taskArgs) else { return nil }
            return .submit(role: role, task: task, args: taskArgs, detach: flags.take("--detach"), heavy: flags.take("--heavy"),
                           queue: flags.take("--queue"), dir: flags.dir)
        default:
            return nil
        }
    }

    /// Boolean flags from `allowed` (each at most once), `--dir X` or `--dir=X` (once), positional
    /// words, and what follows `--`. Nil for anything else, including any word starting with `-`
    /// that is not one of these.
    struct Flags {
        var set: Set<String> = []
        var dir: String?
        var words: [String] = []
        var tail: [String]?

        init?(_ args: [String], allowed: Set<String>) {
            var i = 0
            while i < args.count {
                let a = args[i]
                if a == "--" { tail = Array(args[(i + 1)...]); break }
                if a == "--dir" || a.hasPrefix("--dir=") {
                    guard dir == nil else { return nil }
                    if a == "--dir" {
                        guard i + 1 < args.count, !args[i + 1].hasPrefix("-"), !args[i + 1].isEmpty else { return nil }
                        dir = args[i + 1]; i += 2
                    } else {
                        let v = String(a.dropFirst(6))
                        guard !v.isEmpty else { return nil }
                        dir = v; i += 1
                    }
                    continue
                }
                if a.hasPrefix("-") {
                    guard allowed.contains(a), set.insert(a).inserted else { return nil }
                } else {
                    words.append(a)
                }
                i += 1
            }
        }

        mutating func take(_ flag: String) -> Bool { set.contains(flag) }
    }
}
