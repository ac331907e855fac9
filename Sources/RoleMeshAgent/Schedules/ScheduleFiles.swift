import RoleMeshPlatform
import RoleMeshCore
import RoleMeshStorage

/// Reads every `roles/ROLE/schedule.toml` of the node. A file that does not parse is reported
/// (file → sentence) and its role's schedules are left out; nothing else is affected.
enum ScheduleFiles {
    static func load(_ dir: NodeDirectory) -> (schedules: [Schedule], errors: [String: String]) {
        var schedules: [Schedule] = [], errors: [String: String] = [:]
        let roles = ((try? FileManager.default.contentsOfDirectory(atPath: dir.rolesDir.path)) ?? []).sorted()
        for role in roles where NodeName.isValid(role) {
            let url = dir.rolesDir.appendingPathComponent(role).appendingPathComponent("schedule.toml")
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let name = "roles/\(role)/schedule.toml"
            do {
                let text = try String(contentsOf: url, encoding: .utf8)
                schedules += try ScheduleFile.parse(text, role: role, file: name)
            } catch let e as ConfigError {
                errors[name] = e.description
            } catch {
                errors[name] = "\(name): cannot be read (\(error.sentence))"
            }
        }
        return (schedules, errors)
    }
}
