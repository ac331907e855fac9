#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import RoleMeshControl
import RoleMeshCore

/// The task journal under `DIR/state/tasks/ID/`: `task.json` (the record) and, on the node
/// that ran it, `output` (stdout and stderr as frames, in the order they were written).
/// Thread-safe: the executor and the submitter both update it (each record read-modify-write
/// under one lock).
public final class TaskJournal: Sendable {
    let root: URL
    private let lock = Locked(())
    /// Rises on every change of a record or of a task's stored output; `logs --follow` and a
    /// leaving executor wait on it instead of polling on a timer.
    public let changes = ChangeSignal()

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
        Ed25519.randomBytes(16).hex
    }

    func folder(_ id: String) -> URL { root.appendingPathComponent(id) }
    public func outputFile(_ id: String) -> URL { folder(id).appendingPathComponent("output") }

    public func record(_ id: String) -> TaskRecord? {
        lock.withLock { _ in load(id) }
    }

    private func load(_ id: String) -> TaskRecord? {
        guard TaskJournal.isValidID(id),
              let data = try? Data(contentsOf: folder(id).appendingPathComponent("task.json")) else { return nil }
        return ControlJSON.decode(TaskRecord.self, from: data)
    }

    public func save(_ r: TaskRecord) {
        lock.withLock { _ in store(r) }
    }

    /// Something in the journal changed (a record, a task's output, a task ending here).
    public func noteChange() { changes.bump() }

    /// Of a task's arguments, the journal keeps the first this many bytes (a request's arguments
    /// are as large as a frame allows, and records stay 30 days).
    public static let argsKept = 4096

    /// `args` as the journal keeps them: whole up to `argsKept` bytes in all; beyond, the argument
    /// that crosses the limit is cut (on a character) and one more element says how much was not kept.
    public static func keptArgs(_ args: [String]) -> [String] {
        var out: [String] = [], used = 0, dropped = 0
        for a in args {
            let n = a.utf8.count
            if dropped == 0, used + n <= argsKept { out.append(a); used += n; continue }
            if dropped == 0 {
                var cut = ""
                for ch in a where used + cut.utf8.count + String(ch).utf8.count <= argsKept { cut.append(ch) }
                out.append(cut)
                dropped += n - cut.utf8.count
                used = argsKept
            } else {
                dropped += n
            }
        }
        if dropped > 0 { out.append("(rolemesh kept the first \(argsKept) bytes of the arguments; \(dropped) more bytes were not kept)") }
        return out
    }

    private func store(_ r: TaskRecord) {
        var r = r
        r.args = Self.keptArgs(r.args)
        let f = folder(r.id)
        try? FileManager.default.createDirectory(at: f, withIntermediateDirectories: true)
        let bytes = [UInt8](ControlJSON.encode(r, userInfo: [TaskRecord.withArgs: true]) + Data([10]))
        do { try AtomicFile.replace(f.appendingPathComponent("task.json"), with: bytes, durable: false) } catch {
            Log.warn(error.message)
        }
        noteChange()
    }

    /// Read-modify-write under the lock; a record that does not exist yet starts from `initial`.
    @discardableResult
    public func update(_ id: String, initial: TaskRecord? = nil, _ change: (inout TaskRecord) -> Void) -> TaskRecord? {
        lock.withLock { _ in
            guard var r = load(id) ?? initial else { return nil }
            change(&r)
            store(r)
            return r
        }
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
            lock.withLock { _ in try? FileManager.default.removeItem(at: folder(r.id)) }
        }
    }

    /// What a task's `output` becomes when it is removed to keep the total under its cap.
    static func removedNote(cap: Int) -> String {
        "rolemesh: this task's output was removed: all tasks' output here is kept under \(cap >> 20) MB (max_log x \(NodeConfig.totalLogFactor)), oldest removed first\n"
    }

    /// Keeps all tasks' stored output and kept arguments under `cap` bytes: the oldest tasks' go
    /// first, the output replaced by one line saying so (what `logs` then prints), the arguments
    /// dropped from the record. Runs in `keeping` are spared.
    public func trimOutputs(toAtMost cap: Int, keeping: Set<String> = []) {
        let tasks = all()
        func size(_ id: String) -> Int {
            ((try? FileManager.default.attributesOfItem(atPath: outputFile(id).path))?[.size] as? Int) ?? 0
        }
        var sizes = tasks.map { size($0.id) }
        let argSizes = tasks.map { $0.args.reduce(0) { $0 + $1.utf8.count } }
        var total = sizes.reduce(0, +) + argSizes.reduce(0, +)
        let note = Array(Self.removedNote(cap: cap).utf8)
        let replacement = Frame.plainHeader(.stderr, count: note.count) + note
        for (i, r) in tasks.enumerated() where total > cap && !keeping.contains(r.id) {
            if sizes[i] > replacement.count, (try? AtomicFile.replace(outputFile(r.id), with: replacement, durable: false)) != nil {
                total -= sizes[i] - replacement.count
                sizes[i] = replacement.count
            }
            if argSizes[i] > 0, total > cap {
                update(r.id) { $0.args = [] }
                total -= argSizes[i]
            }
        }
        noteChange()
    }

    /// Every task, oldest first.
    public func all() -> [TaskRecord] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return lock.withLock { _ in ids.compactMap(load) }.sorted { ($0.submitted, $0.id) < ($1.submitted, $1.id) }
    }
}
