import RoleMeshPlatform
import Foundation

// rolemesh-bench: benchmarks of RoleMesh against its targets and anchors (docs/benchmarks.md).
// Every child process is ended by PID on every exit path; temp dirs and namespaces are removed.
// This file is the one place the bench exits: a bench throws `BenchExit` up to here.

/// Writes what the bench ends with, stops every child, and exits.
func end(_ e: BenchExit) -> Never {
    FileHandle.standardError.write(Data(e.stderr.utf8))
    Cleanup.shared.runAll()
    exit(e.code)
}

let signalSources = Cleanup.shared.installSignalHandlers { sig in exit(128 + sig) }
signal(SIGPIPE, SIG_IGN)

let argv = Array(CommandLine.arguments.dropFirst())
guard let command = argv.first else { end(.usage("missing subcommand")) }
let rest = Array(argv.dropFirst())

if command != "help", command != "--help", command != "-h",
   !FileManager.default.isExecutableFile(atPath: rolemeshBinary), command != "verify", command != "scale", command != "chaos" {
    FileHandle.standardError.write(Data("rolemesh-bench: no rolemesh binary at \(rolemeshBinary) (build both: swift build -c release)\n".utf8))
    exit(1)
}
Netns.removeStale()

do throws(BenchExit) {
    switch command {
    case "detect":
        try DetectBench.main(rest)
    case "verify":
        try VerifyBench.main(rest)
    case "idle":
        try IdleBench.main(rest)
    case "failover":
        try FailoverBench.main(rest)
    case "leave":
        try LeaveBench.main(rest)
    case "tasks":
        try TasksBench.main(rest)
    case "services":
        try ServicesBench.main(rest)
    case "scale":
        try ScaleBench.main(rest)
    case "capture":
        try CaptureBench.main(rest)
    case "chaos":
        try ChaosBench.main(rest)
    case "help", "--help", "-h":
        say(usageText)
        exit(0)
    default:
        throw .usage("unknown subcommand \(command)")
    }
} catch {
    end(error)
}

Cleanup.shared.runAll()
withExtendedLifetime(signalSources) {}
exit(0)
