import RoleMeshPlatform
import Foundation

// rolemesh-bench: benchmarks of RoleMesh against its targets and anchors (docs/benchmarks.md).
// Every child process is ended by PID on every exit path; temp dirs and namespaces are removed.

let signalSources = Cleanup.shared.installSignalHandlers()
signal(SIGPIPE, SIG_IGN)

let argv = Array(CommandLine.arguments.dropFirst())
guard let command = argv.first else { usage("missing subcommand") }
let rest = Array(argv.dropFirst())

if command != "help", command != "--help", command != "-h",
   !FileManager.default.isExecutableFile(atPath: rolemeshBinary), command != "verify", command != "scale", command != "chaos" {
    FileHandle.standardError.write(Data("rolemesh-bench: no rolemesh binary at \(rolemeshBinary) (build both: swift build -c release)\n".utf8))
    exit(1)
}
Netns.removeStale()

switch command {
case "detect":
    DetectBench.main(rest)
case "verify":
    VerifyBench.main(rest)
case "idle":
    IdleBench.main(rest)
case "failover":
    FailoverBench.main(rest)
case "leave":
    LeaveBench.main(rest)
case "tasks":
    TasksBench.main(rest)
case "services":
    ServicesBench.main(rest)
case "scale":
    ScaleBench.main(rest)
case "capture":
    CaptureBench.main(rest)
case "chaos":
    ChaosBench.main(rest)
case "help", "--help", "-h":
    say(usageText)
    exit(0)
default:
    usage("unknown subcommand \(command)")
}

Cleanup.shared.runAll()
withExtendedLifetime(signalSources) {}
exit(0)
