import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshStorage
import RoleMeshTaskChannel

/// The task journal under `DIR/state/tasks/ID/`: `task.json` (the record) and, on the node
/// that ran it, `output` (stdout and stderr as frames, in the order they were written).
/// Thread-safe: the executor and the submitter both update it (each record read-modify-write
/// under one lock).
///
/// The journal keeps 30 days of tasks, so nothing done per task may read them all: an index in
/// memory (per task: when it was submitted, whether it is over, its output's size) answers the
/// output cap, id prefixes, pruning and restarts, and the records of tasks not over yet stay in
/// memory between their updates. The folder is read once, at the first use.
///
/// A record changes in memory at once (everyone reads it there) and reaches its file just after,
/// on the agent's one `DiskWriter`, in order, the latest version only: a task's round trip no
/// longer waits for six file replacements, and no file is written on the shared pool (nor under
/// the lock): a task's folder, its record, an output replaced under the cap, a pruned folder's
/// removal. An agent that stops cleanly waits for them (`flushed`); one killed may lose the last
/// milliseconds of changes, as a power cut could before.
public final class TaskJournal: Sendable {
    let root: URL
    private let rootPath: String
    private let state = Locked(Index())
    private let writer: DiskWriter
    /// Rises on every change of a record or of a task's stored output; `logs --follow` and a
    /// leaving executor wait on it instead of polling on a timer.
    public let changes = ChangeSignal()

    /// What the index keeps of one task: about 100 bytes, against a record's 250 to 500.
    struct Entry {
        var submitted: String
        var isFinal: Bool
        /// Bytes of its stored `output` (0 where it did not run).
        var output: Int
        /// Bytes of the arguments its record keeps (at most `argsKept`): counted with the output.
        var args: Int = 0
    }

    struct Index {
        var loaded = false
        var entries: [String: Entry] = [:]
        /// Records of tasks not over yet: rewritten several times each, never read back from disk.
        var live: [String: TaskRecord] = [:]
        /// The sum of `output` and `args` over all entries: what the cap counts.
        var totalOutput = 0
        /// Tasks whose output is worth removing under the cap (larger than the note that replaces
        /// it), oldest first: the cap takes from the front.
        var trimmable: [(submitted: String, id: String)] = []
        /// Records read from disk so far (tests check that a task's own work reads none of the others).
        var reads = 0
        /// The newest bytes of each record not written yet; a record stays in `live` until written.
        var pending: [String: [UInt8]] = [:]
        /// Pruned tasks whose folder is not removed yet: `all` must not take them back meanwhile.
        var removing: Set<String> = []
    }

    /// `writer`: the agent's own (`Agent.disk`), so the journal's files take their turn with the
    /// agent's other writes; a journal alone (tests, the bench) has one of its own.
    public init(dir: NodeDirectory, writer: DiskWriter = DiskWriter()) {
        root = dir.stateDir.appendingPathComponent("tasks")
        rootPath = root.path
        self.writer = writer
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
        state.withLock { s in
            ensureLoaded(&s)
            return s.live[id] ?? (s.entries[id] == nil ? nil : load(id, &s))
        }
    }

    /// Records read from disk since this journal was opened: the folder's first reading, `tasks`,
    /// `logs` and `record` of a finished task count; a task's own updates read nothing.
    public var recordsRead: Int { state.withLock { $0.reads } }

    private func load(_ id: String, _ s: inout Index) -> TaskRecord? {
        s.reads += 1
        guard TaskJournal.isValidID(id), let text = FD.readText(recordPath(id), limit: 4 << 20) else { return nil }
        return ControlJSON.decode(TaskRecord.self, from: text)
    }

    /// Paths as strings: URL's path arithmetic costs more than the rest of an update.
    private func recordPath(_ id: String) -> String { rootPath + "/" + id + "/task.json" }

    public func save(_ r: TaskRecord) {
        state.withLock { s in ensureLoaded(&s); store(r, &s) }
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

    private func store(_ r: TaskRecord, _ s: inout Index) {
        var r = r
        r.args = Self.keptArgs(r.args)
        let bytes = [UInt8](ControlJSON.encode(r, userInfo: [TaskRecord.withArgs: true]) + Data([10]))
        if s.pending.updateValue(bytes, forKey: r.id) == nil {
            // A new task's first write makes its folder (its output may make it first: OutputLog).
            let id = r.id, creating = s.entries[r.id] == nil
            writer.write { [self] () throws(MeshError) in try write(id, creating: creating) }
        }
        let old = s.entries[r.id]
        if let old, old.submitted != r.submitted, let i = s.trimmable.firstIndex(where: { $0.id == r.id }) {
            s.trimmable.remove(at: i)
            Self.insert((r.submitted, r.id), into: &s.trimmable)
        }
        let args = r.args.reduce(0) { $0 + $1.utf8.count }
        s.entries[r.id] = Entry(submitted: r.submitted, isFinal: r.isFinal, output: old?.output ?? 0, args: args)
        s.totalOutput += args - (old?.args ?? 0)
        s.live[r.id] = r
        noteChange()
    }

    /// On the disk queue: the newest bytes of `id`'s record to its file (a failure is logged by
    /// the writer); a finished record then leaves memory, where it was read until now.
    private func write(_ id: String, creating: Bool) throws(MeshError) {
        guard let bytes = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
        defer {
            state.withLock { s in
                if s.pending[id] == nil, s.live[id]?.isFinal == true { s.live[id] = nil }
            }
        }
        if creating { mkdir(rootPath + "/" + id, 0o700) }
        try AtomicFile.replace(URL(fileURLWithPath: recordPath(id)), with: bytes, durable: false)
    }

    /// Returns once every change asked for so far is in its file (an agent stopping, tests).
    public func flushed() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in writer.whenDone { c.resume() } }
    }

    /// `flushed`, blocking (tests, the bench; never on the shared pool).
    public func flush() {
        let done = DispatchSemaphore(value: 0)
        writer.whenDone { done.signal() }
        done.wait()
    }

    /// Read-modify-write under the lock; a record that does not exist yet starts from `initial`.
    @discardableResult
    public func update(_ id: String, initial: TaskRecord? = nil, _ change: (inout TaskRecord) -> Void) -> TaskRecord? {
        state.withLock { s in
            ensureLoaded(&s)
            let current = s.live[id] ?? (s.entries[id] == nil ? nil : load(id, &s))
            guard var r = current ?? initial else { return nil }
            change(&r)
            store(r, &s)
            return r
        }
    }

    /// The full id for a unique prefix (at least 4 characters) of a known task id.
    public func resolve(_ prefix: String) -> String? {
        guard prefix.count >= 4, prefix.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return state.withLock { s in
            ensureLoaded(&s)
            if s.entries[prefix] != nil { return prefix }
            var found: String?
            for id in s.entries.keys where id.hasPrefix(prefix) {
                if found != nil { return nil }
                found = id
            }
            return found
        }
    }

    /// Forgets finished tasks (record and output) that ended more than `days` ago: gone from the
    /// index at once, their folders removed on the disk queue.
    /// RFC 3339 UTC times with a fixed layout compare as strings. Reads the records of finished
    /// tasks submitted before the cutoff only (none ended before it was submitted).
    public func prune(olderThan days: Int) {
        let cutoff = Clock.rfc3339(Date().addingTimeInterval(-Double(days) * 86_400))
        let gone = state.withLock { s -> [String] in
            ensureLoaded(&s)
            var gone: [String] = []
            for (id, e) in s.entries where e.isFinal && e.submitted < cutoff {
                guard let r = s.live[id] ?? load(id, &s), (r.finished ?? r.submitted) < cutoff else { continue }
                gone.append(id)
            }
            for id in gone { forget(id, &s); s.removing.insert(id) }
            return gone
        }
        for id in gone {
            let folder = folder(id)
            writer.write { [self] in
                try? FileManager.default.removeItem(at: folder)
                state.withLock { _ = $0.removing.remove(id) }
            }
        }
    }

    /// Tasks not over yet (queued, running, paused), as their records say.
    public func unfinished() -> [TaskRecord] {
        state.withLock { s in
            ensureLoaded(&s)
            var out: [TaskRecord] = []
            for (id, e) in s.entries where !e.isFinal {
                if let r = s.live[id] ?? load(id, &s) { out.append(r) }
            }
            return out
        }.sorted { ($0.submitted, $0.id) < ($1.submitted, $1.id) }
    }

    /// What a task's `output` becomes when it is removed to keep the total under its cap.
    static func removedNote(cap: Int) -> String {
        "rolemesh: this task's output was removed: all tasks' output here is kept under \(cap >> 20) MB (max_log x \(NodeConfig.totalLogFactor)), oldest removed first\n"
    }

    static func replacement(cap: Int) -> [UInt8] {
        let note = Array(removedNote(cap: cap).utf8)
        return Frame.plainHeader(.stderr, count: note.count) + note
    }

    /// A task's stored output was written (or grew): its size is counted toward the cap.
    public func noteOutput(_ id: String) {
        var st = stat()
        let size = stat(outputFile(id).path, &st) == 0 ? Int(st.st_size) : 0
        state.withLock { s in
            ensureLoaded(&s)
            guard var e = s.entries[id] else { return }
            s.totalOutput += size - e.output
            let wasTrimmable = e.output > Self.trimFloor
            e.output = size
            s.entries[id] = e
            if size > Self.trimFloor, !wasTrimmable { Self.insert((e.submitted, id), into: &s.trimmable) }
            if size <= Self.trimFloor, wasTrimmable, let i = s.trimmable.firstIndex(where: { $0.id == id }) { s.trimmable.remove(at: i) }
        }
        noteChange()
    }

    /// Output at most this large is never worth replacing by the note (which is about this long).
    static let trimFloor = 200

    /// Keeps all tasks' stored output and kept arguments under `cap` bytes: the oldest tasks' output
    /// goes first, each replaced by one line saying so (what `logs` then prints), then, if that is
    /// not enough, the oldest tasks' arguments leave their records. Runs in `keeping` are spared.
    /// Works from the index's running total: nothing is read unless something must go. An output
    /// is replaced on the disk queue and counted as replaced at once; one that fails is counted
    /// again from its file.
    public func trimOutputs(toAtMost cap: Int, keeping: Set<String> = []) {
        let replacement = Self.replacement(cap: cap)
        var trimmed = false
        var replaced: [String] = []
        state.withLock { s in
            ensureLoaded(&s)
            var i = 0
            while s.totalOutput > cap, i < s.trimmable.count {
                let id = s.trimmable[i].id
                guard let e = s.entries[id], !keeping.contains(id), e.output > replacement.count else { i += 1; continue }
                s.totalOutput -= e.output - replacement.count
                s.entries[id]?.output = replacement.count
                s.trimmable.remove(at: i)
                replaced.append(id)
            }
            guard s.totalOutput > cap else { return }
            let withArgs = s.entries.filter { $0.value.args > 0 && !keeping.contains($0.key) }
                .map { ($0.value.submitted, $0.key) }.sorted { $0 < $1 }
            for (_, id) in withArgs where s.totalOutput > cap {
                guard var r = s.live[id] ?? load(id, &s) else { continue }
                r.args = []
                store(r, &s)
                trimmed = true
            }
        }
        if trimmed { noteChange() }
        for id in replaced {
            let url = outputFile(id)
            writer.write { [self] () throws(MeshError) in
                do throws(MeshError) { try AtomicFile.replace(url, with: replacement, durable: false) } catch {
                    noteOutput(id)
                    throw error
                }
                noteChange()
            }
        }
    }

    /// Every task, oldest first: what `tasks` lists. Reads each record once (the index says
    /// which); only `tasks` itself pays for this, never a task.
    public func all() -> [TaskRecord] {
        // The folder is listed too: a task folder put there behind the journal's back (a backup
        // restored, a test) is taken into the index rather than missed.
        let listed = (try? FileManager.default.contentsOfDirectory(atPath: rootPath)) ?? []
        let ids = state.withLock { s -> [(String, String)] in
            ensureLoaded(&s)
            for id in listed where s.entries[id] == nil && !s.removing.contains(id) { adopt(id, &s) }
            return s.entries.map { ($0.value.submitted, $0.key) }
        }.sorted { $0 < $1 }
        return ids.compactMap { record($0.1) }
    }

    /// The sum of all tasks' stored output, as the cap counts it.
    public var totalOutputBytes: Int { state.withLock { s in ensureLoaded(&s); return s.totalOutput } }

    // MARK: - The index

    /// The first use reads the folder once: every record, and the size of every output.
    private func ensureLoaded(_ s: inout Index) {
        guard !s.loaded else { return }
        s.loaded = true
        for id in (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [] { adopt(id, &s, sorted: false) }
        s.trimmable.sort { ($0.submitted, $0.id) < ($1.submitted, $1.id) }
    }

    /// A task folder on disk into the index (its record read once, its output's size taken).
    /// `sorted: false`: many at once, sorted by the caller after.
    private func adopt(_ id: String, _ s: inout Index, sorted: Bool = true) {
        guard TaskJournal.isValidID(id), let r = load(id, &s), r.id == id else { return }
        var st = stat()
        let size = stat(rootPath + "/" + id + "/output", &st) == 0 ? Int(st.st_size) : 0
        let args = r.args.reduce(0) { $0 + $1.utf8.count }
        s.entries[id] = Entry(submitted: r.submitted, isFinal: r.isFinal, output: size, args: args)
        if !r.isFinal { s.live[id] = r }   // unfinished ones only: the rest are read when asked for
        s.totalOutput += size + args
        guard size > Self.trimFloor else { return }
        if sorted { Self.insert((r.submitted, id), into: &s.trimmable) } else { s.trimmable.append((r.submitted, id)) }
    }

    private func forget(_ id: String, _ s: inout Index) {
        guard let e = s.entries.removeValue(forKey: id) else { return }
        s.live[id] = nil
        s.pending[id] = nil
        s.totalOutput -= e.output + e.args
        if e.output > Self.trimFloor, let i = s.trimmable.firstIndex(where: { $0.id == id }) { s.trimmable.remove(at: i) }
    }

    /// Into the oldest-first order: new tasks are the newest, so this is nearly always an append.
    private static func insert(_ item: (submitted: String, id: String), into list: inout [(submitted: String, id: String)]) {
        var lo = list.count
        while lo > 0, (list[lo - 1].submitted, list[lo - 1].id) > (item.submitted, item.id) { lo -= 1 }
        list.insert(item, at: lo)
    }
}
