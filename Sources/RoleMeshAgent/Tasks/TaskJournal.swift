import Foundation
import RoleMeshCore

/// One task as `tasks --json` shows it.
public struct TaskRecord: Sendable {
    public enum State: String, Sendable { case queued, running, done, failed, lost, cancelled }
    public var id: String
    public var role: String
    public var task: String
    public var node: String?
    public var from: String
    public var state: State
    public var exitCode: Int?
    public var submitted: String
    public var started: String?
    public var finished: String?
    public var args: [String] = []

    public var isFinal: Bool { [.done, .failed, .lost, .cancelled].contains(state) }

    public var json: JSON {
        .object([("id", .string(id)), ("role", .string(role)), ("task", .string(task)), ("node", .optional(node)),
                 ("from", .string(from)), ("state", .string(state.rawValue)), ("exit_code", .optional(exitCode)),
                 ("submitted", .string(submitted)), ("started", .optional(started)), ("finished", .optional(finished)),
                 ("args", .array(args.map(JSON.string)))])
    }

    init(id: String, role: String, task: String, node: String?, from: String, state: State, submitted: String) {
        self.id = id; self.role = role; self.task = task; self.node = node; self.from = from
        self.state = state; self.submitted = submitted
    }

    public init?(json j: JSON) {
        guard let id = j["id"]?.string, let role = j["role"]?.string, let task = j["task"]?.string,
              let from = j["from"]?.string, let st = j["state"]?.string.flatMap(State.init(rawValue:)),
              let submitted = j["submitted"]?.string else { return nil }
        self.init(id: id, role: role, task: task, node: j["node"]?.string, from: from, state: st, submitted: submitted)
        exitCode = j["exit_code"]?.int
        started = j["started"]?.string
        finished = j["finished"]?.string
        args = (j["args"]?.array ?? []).compactMap(\.string)
    }
}

/// The task journal under `DIR/state/tasks/ID/`: `task.json` (the record) and, on the node
/// that ran it, `output` (stdout and stderr as frames, in the order they were written).
/// Thread-safe: executor and submitter threads both update it.
public final class TaskJournal: @unchecked Sendable {
    let root: URL
    private let lock = NSLock()

    public init(dir: NodeDirectory) {
        root = dir.stateDir.appendingPathComponent("tasks")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// Finished tasks are kept this long (checked when the agent starts).
    public static let retentionDays = 30

    public static func isValidID(_ id: String) -> Bool {
        id.count >= 8 && id.count <= 64 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    public static func newID() -> String {
        Ed25519.randomBytes(16).map { String(format: "%02x", $0) }.joined()
    }

    func folder(_ id: String) -> URL { root.appendingPathComponent(id) }
    public func outputFile(_ id: String) -> URL { folder(id).appendingPathComponent("output") }

    public func record(_ id: String) -> TaskRecord? {
        lock.lock(); defer { lock.unlock() }
        return load(id)
    }

    private func load(_ id: String) -> TaskRecord? {
        guard TaskJournal.isValidID(id),
              let text = try? String(contentsOf: folder(id).appendingPathComponent("task.json"), encoding: .utf8),
              let j = JSON.parse(text) else { return nil }
        return TaskRecord(json: j)
    }

    public func save(_ r: TaskRecord) {
        lock.lock(); defer { lock.unlock() }
        store(r)
    }

    private func store(_ r: TaskRecord) {
        let f = folder(r.id)
        try? FileManager.default.createDirectory(at: f, withIntermediateDirectories: true)
        do { try AtomicFile.replace(f.appendingPathComponent("task.json"), with: r.json.serialized + "\n", durable: false) } catch {
            Log.warn(error.message)
        }
    }

    /// Read-modify-write under the lock; a record that does not exist yet starts from `initial`.
    @discardableResult
    public func update(_ id: String, initial: TaskRecord? = nil, _ change: (inout TaskRecord) -> Void) -> TaskRecord? {
        lock.lock(); defer { lock.unlock() }
        guard var r = load(id) ?? initial else { return nil }
        change(&r)
        store(r)
        return r
    }

    /// The full id for a unique prefix (at least 4 characters) of a known task id.
    public func resolve(_ prefix: String) -> String? {
        guard prefix.count >= 4, prefix.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        let ids = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter { $0.hasPrefix(prefix) }
        return ids.count == 1 ? ids[0] : nil
    }

    /// Forgets finished tasks (record and output) that ended more than `days` ago.
    /// RFC 3339 UTC times with a fixed layout compare as strings.
    public func prune(olderThan days: Int) {
        let cutoff = Clock.rfc3339(Date().addingTimeInterval(-Double(days) * 86_400))
        for r in all() where r.isFinal && (r.finished ?? r.submitted) < cutoff {
            lock.lock(); try? FileManager.default.removeItem(at: folder(r.id)); lock.unlock()
        }
    }

    /// Every task, oldest first.
    public func all() -> [TaskRecord] {
        lock.lock(); defer { lock.unlock() }
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return ids.compactMap(load).sorted { ($0.submitted, $0.id) < ($1.submitted, $1.id) }
    }
}
