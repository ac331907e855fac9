import RoleMeshPlatform
import RoleMeshCore
import RoleMeshStorage

/// Reads every `roles/ROLE/service.toml` of the node. A file that does not parse is reported
/// (file → sentence naming its line and key) and its role's services are left out; nothing else
/// is affected. The twin of `ScheduleFiles`.
enum RoleServiceFiles {
    static func load(_ dir: NodeDirectory) -> (services: [ServiceDefinition], errors: [String: String]) {
        var services: [ServiceDefinition] = [], errors: [String: String] = [:]
        let roles = ((try? FileManager.default.contentsOfDirectory(atPath: dir.rolesDir.path)) ?? []).sorted()
        for role in roles where NodeName.isValid(role) {
            let url = dir.rolesDir.appendingPathComponent(role).appendingPathComponent("service.toml")
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let name = "roles/\(role)/service.toml"
            do {
                let text = try String(contentsOf: url, encoding: .utf8)
                services += try ServiceFile.parse(text, role: role, file: name)
            } catch let e as ConfigError {
                errors[name] = e.description
            } catch {
                errors[name] = "\(name): cannot be read (\(error.sentence))"
            }
        }
        return (services, errors)
    }
}
