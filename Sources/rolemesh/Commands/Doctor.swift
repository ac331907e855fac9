import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent

struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the node: config, key modes, port, agent, seeds, trust both ways, clock.",
        discussion: "One line per check, each failure with the command that fixes it. Exit 0 when all pass, else 1.")
    @Flag(help: "One JSON document: {\"ok\", \"checks\": [{\"name\", \"ok\", \"detail\", \"fix\"}]}.") var json = false
    @OptionGroup var dir: DirOption

    func run() async throws {
        let node = dir.node
        let report = await Doctor.run(node)
        printOut(json ? ControlJSON.string(report) : report.text)
        if !report.ok { throw ExitCode(1) }
    }
}
