import ArgumentParser
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshControl
import RoleMeshCore

/// `schedules [--json]` and `schedules run ROLE/TASK` (docs/contract.md, "Background work").
struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules",
        abstract: "Every schedule the mesh knows: where it runs now and what it waits for; `run ROLE/TASK` runs its slot now.")
    @Argument(help: "run ROLE/TASK: run the current slot now, on its route, ignoring conditions.") var words: [String] = []
    @Flag(help: "One JSON document.") var json = false
    @OptionGroup var dir: DirOption

    func validate() throws {
        guard !words.isEmpty else { return }
        guard words.count == 2, words[0] == "run" else { throw ValidationError("expected `schedules` or `schedules run ROLE/TASK`") }
        guard Submission.split(words[1]) != nil else {
            throw ValidationError("expected ROLE/TASK (a role name and a task's file name), got \"\(words[1])\"")
        }
    }

    func run() async throws {
        if words.count == 2 {
            let (role, task) = Submission.split(words[1])!      // checked in validate()
            let id = try ControlClient.call(dir.node, .scheduleRun(role: role, task: task), as: SubmittedReply.self).id
            return printOut(id)
        }
        let answer = try ControlClient.call(dir.node, .schedules, as: SchedulesReply.self)
        if json { return printOut(ControlJSON.string(answer)) }
        var rows = [["SCHEDULE", "EVERY", "NODE", "STATE", "NEXT SLOT", "LAST RUN"]]
        for s in answer.schedules {
            let state = s.reason.map { "\(s.state): \($0)" } ?? s.state
            let last = s.last.map { "\($0.node) exit \($0.exitCode.map(String.init) ?? "-") \($0.finished ?? "")" } ?? "-"
            rows.append(["\(s.role)/\(s.task)", s.every, s.node ?? "-", state, s.nextSlot, last])
        }
        if answer.schedules.isEmpty { printOut("no schedules on this node (roles/ROLE/schedule.toml)") } else {
            printOut(StatusText.table(rows.map { $0.map(\.escapingControlCharacters) }))
        }
        for e in answer.errors { printOut("error: \(e.error)".escapingControlCharacters) }
    }
}
