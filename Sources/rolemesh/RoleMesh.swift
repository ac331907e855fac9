import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshCore
import RoleMeshStorage

@main
struct RoleMesh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rolemesh",
        abstract: "A peer-to-peer agent for a personal compute mesh.",
        discussion: """
            Every command takes --dir DIR, before or after its command words (default: $ROLEMESH_DIR, else ~/.rolemesh). Exit status: a task's \
            own passes through; 64 bad usage, 69 no node can take it, 73 init over an existing node, 75 the \
            node was lost mid-run, 77 refused by the executing node, 78 bad configuration, 126 the task's file \
            is not executable there, 1 anything else. \
            The full contract is docs/contract.md in the source repository.
            """,
        version: RoleMeshVersion.string,
        subcommands: [Init.self, Keygen.self, AgentCommand.self, Status.self, Watch.self, Leave.self]
            + extraCommands + deviceCommands + serviceCommands
    )

    /// Never set here (`Arguments.hoistingDir` moves a leading `--dir` after the command words), but
    /// declared so that shell completion knows `--dir` takes a value before the command too:
    /// `rolemesh --dir X st<TAB>` completes the command, not `X`.
    @OptionGroup var dir: DirOption

    /// Owner-only files from the first one on (node.toml, keys, state): umask 077.
    ///
    /// The one place the command line exits: a command throws, a MeshError becomes its sentence on
    /// stderr and its exit code (the contract's), `ExitCode` a task's own status, anything else
    /// ArgumentParser's message.
    static func main() async {
        NodeDirectory.restrictNewFiles()
        let args = Arguments.hoistingDir(Array(CommandLine.arguments.dropFirst()))
        do {
            // Synchronous, on the main task: no hop to the shared pool, whose threads dispatch would
            // start first (0.3 ms of the few a script's `status` or `submit` takes, issue 27).
            if getenv(QuickCommand.switchName).map({ String(cString: $0) }) != "0", let quick = QuickCommand.parse(args) {
                try runQuick(quick)
                return
            }
            var command = try parseAsRoot(args)
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()       // ArgumentParser's own: help
            }
        } catch let e as MeshError {
            // Messages may come from the agent or another node: never raw control characters.
            _ = FD.writeAll(2, Array("rolemesh: \(e.message.escapingControlCharacters)\n".utf8))
            Glibc.exit(e.code)
        } catch let e as ExitCode {
            // A task's own status, with nothing to say: the C library's exit, as ArgumentParser's
            // would first build the usage text (a millisecond) to print nothing.
            Glibc.exit(e.rawValue)
        } catch {
            if let hint = Arguments.hint(forError: message(for: error), args) {
                _ = FD.writeAll(2, Array("Error: \(message(for: error))\nrolemesh: \(hint)\n".utf8))
                exit(withError: ExitCode(64))
            }
            exit(withError: error)
        }
    }

    /// `rolemesh agent`'s bound on leaving: 10 s after the agent began to leave, the process ends
    /// whatever still runs (background work that ignores cancellation must not keep a stopped agent
    /// alive; systemd would kill it only after its own, longer, timeout). The one unstructured task
    /// of the command line: it outlives the command on purpose.
    static func boundLeaving(of agent: Agent, seconds: Int = 10) {
        Task.detached {
            await agent.untilLeaving()
            try? await Task.sleep(for: .seconds(seconds))
            Log.warn("the agent did not stop within \(seconds) s of leaving; ending it")
            Glibc.exit(0)
        }
    }
}

/// A command line `QuickCommand` recognized, run by the same code its ArgumentParser command runs.
func runQuick(_ quick: QuickCommand) throws {
    switch quick {
    case .version:
        printOut(RoleMeshVersion.string)
    case .status(let json, let dir):
        try Status.show(node: NodeDirectory.resolve(dir), json: json)
    case .submit(let role, let task, let args, let detach, let heavy, let queue, let dir):
        try Submit.perform(SubmitRequest(role: role, task: task, args: args, heavy: heavy, to: nil, detach: detach, queue: queue,
                                         retry: 0, whenIdle: false), node: NodeDirectory.resolve(dir))
    }
}

/// `--dir DIR`, accepted anywhere after the command words (and before them: `Arguments.hoistingDir`).
struct DirOption: ParsableArguments {
    @Option(name: .long, help: "The node's directory (default: $ROLEMESH_DIR, else ~/.rolemesh).")
    var dir: String?
    var node: NodeDirectory { NodeDirectory.resolve(dir) }
}

func printOut(_ s: String) {
    _ = FD.writeAll(1, Array((s.hasSuffix("\n") ? s : s + "\n").utf8))
}

/// A remark on stderr that is not a failure (the command still exits 0).
func printNote(_ s: String) {
    _ = FD.writeAll(2, Array("rolemesh: \(s.escapingControlCharacters)\n".utf8))
}
