/// What the command line is rewritten to before ArgumentParser reads it, and the hints added to
/// its errors: pure functions of the words typed, so the rules are testable and in one place.
enum Arguments {
    /// `rolemesh --dir X status` as `rolemesh status --dir X`. ArgumentParser takes a leaf command's
    /// options only after its command words, so `--dir` given before them is moved to the end of
    /// the options (before `--`, whose words belong to the task). Anything else stays as typed.
    static func hoistingDir(_ args: [String]) -> [String] {
        var front: [String] = []
        var dirWords: [String] = []
        var i = 0
        while i < args.count, args[i].hasPrefix("-"), args[i] != "--" {
            if args[i] == "--dir", i + 1 < args.count {
                dirWords = ["--dir", args[i + 1]]; i += 2
            } else if args[i].hasPrefix("--dir=") {
                dirWords = [args[i]]; i += 1
            } else {
                front.append(args[i]); i += 1
            }
        }
        // No command word after it (`rolemesh --dir X`, `--help`): left for ArgumentParser to judge.
        guard !dirWords.isEmpty, i < args.count, args[i] != "--" else { return args }
        var rest = front + Array(args[i...])
        let end = rest.firstIndex(of: "--") ?? rest.count
        rest.insert(contentsOf: dirWords, at: end)
        return rest
    }

    /// A hint for a parse error, or nil: `submit r/t hello` means `hello` for the task, which
    /// only goes after `--` (as with `ssh host -- cmd`); ArgumentParser alone says "unexpected argument".
    static func hint(forError message: String, _ args: [String]) -> String? {
        guard let cmd = args.firstIndex(where: { !$0.hasPrefix("-") }), args[cmd] == "submit",
              !args.contains("--"), message.lowercased().contains("unexpected argument") else { return nil }
        let target = args[(cmd + 1)...].first { !$0.hasPrefix("-") } ?? "ROLE/TASK"
        return "arguments for the task go after --, as in: rolemesh submit \(target) -- ARGS..."
    }
}
