#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import RoleMeshControl
import RoleMeshCore

/// A task someone asked this node to run somewhere: what `submit` sent, and what the
/// queue persists under `DIR/state/queue/ID.json` until a node can take it.
public struct Submission: Codable, Sendable {
    var id: String
    var role: String
    var task: String
    var args: [String]
    var heavy: Bool
    var to: String?
    var retry: Int
    var queue: Bool
    var submitted: String

    init(_ r: SubmitRequest) {
        id = TaskJournal.newID()
        role = r.role; task = r.task; args = r.args; heavy = r.heavy; to = r.to
        retry = max(0, r.retry); queue = r.queue; submitted = Clock.rfc3339()
    }

    /// The queue file's keys; `to` is written as `null` when unset, as it always was.
    enum CodingKeys: String, CodingKey { case id, role, task, args, heavy, to, retry, queue, submitted }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id); try c.encode(role, forKey: .role); try c.encode(task, forKey: .task)
        try c.encode(args, forKey: .args); try c.encode(heavy, forKey: .heavy); try c.encode(to, forKey: .to)
        try c.encode(retry, forKey: .retry); try c.encode(queue, forKey: .queue); try c.encode(submitted, forKey: .submitted)
    }

    /// A task's file name in its role's folder: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 255 bytes.
    public static func isValidTaskName(_ t: String) -> Bool { NodeName.isValid(t, maxLength: 255) }

    /// A queue file, as any version wrote it: only `role` and `task` are required.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        task = try c.decode(String.self, forKey: .task)
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? TaskJournal.newID()
        args = try c.decodeIfPresent([String].self, forKey: .args) ?? []
        heavy = try c.decodeIfPresent(Bool.self, forKey: .heavy) ?? false
        to = try c.decodeIfPresent(String.self, forKey: .to)
        retry = max(0, try c.decodeIfPresent(Int.self, forKey: .retry) ?? 0)
        queue = try c.decodeIfPresent(Bool.self, forKey: .queue) ?? false
        submitted = try c.decodeIfPresent(String.self, forKey: .submitted) ?? Clock.rfc3339()
    }
}

/// Runs submissions from this node: picks the node (routing or `--to`), drives the task over
/// the task channel, re-routes on loss while retries last, waits in the persisted queue when
/// asked to, and relays the stream to the `submit` command (the sink) when one is attached.
final class Submitter: @unchecked Sendable {
    unowned let agent: Agent
    let journal: TaskJournal
    let queueDir: URL
    private let lock = NSLock()
    private var active: [String: (node: String, channel: SecureChannel)] = [:]

    init(agent: Agent, journal: TaskJournal) {
        self.agent = agent
        self.journal = journal
        queueDir = agent.dir.stateDir.appendingPathComponent("queue")
        try? FileManager.default.createDirectory(at: queueDir, withIntermediateDirectories: true)
    }

    /// After a restart: queued submissions wait again; runs that were in flight here, as
    /// submitter or as executor, are lost (their processes went with the old agent).
    func resume() {
        journal.prune(olderThan: TaskJournal.retentionDays)
        // `ID.json` only: a temporary left by a crash mid-write is not a submission.
        let queued = ((try? FileManager.default.contentsOfDirectory(atPath: queueDir.path)) ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
            .compactMap { try? String(contentsOf: queueDir.appendingPathComponent($0), encoding: .utf8) }
            .compactMap { ControlJSON.decode(Submission.self, from: $0) }
        let queuedIDs = Set(queued.map(\.id))
        for r in journal.all() where !r.isFinal && !queuedIDs.contains(r.id) {
            journal.update(r.id) { $0.state = .lost; $0.finished = $0.finished ?? Clock.rfc3339() }
        }
        for s in queued { onWorkerThread { self.run(s, sink: nil) } }
    }

    /// Runs whose node this node stopped trusting: they end with 77, never retried.
    private var revokedRuns: Set<String> = []

    /// Trust in `node` was revoked here: our channels to it close and their runs report 77.
    func nodeRevoked(_ node: String) {
        lock.lock()
        let victims = active.filter { $0.value.node == node }
        revokedRuns.formUnion(victims.keys)
        lock.unlock()
        for v in victims.values { v.channel.close() }
    }

    /// Membership declared `node` dead or gone: wake runs blocked on it so they can re-route.
    func nodeLost(_ node: String) {
        lock.lock(); let victims = active.values.filter { $0.node == node }; lock.unlock()
        for v in victims { v.channel.interrupt() }
    }

    /// How long a node that could not be reached is skipped before it is tried again.
    static let unreachableBackoff: TimeInterval = 2

    func queueFile(_ id: String) -> URL { queueDir.appendingPathComponent("\(id).json") }

    /// Blocking: runs on a worker thread until the task is over.
    func run(_ sub: Submission, sink: PlainFrames?) {
        let relay = Relay(sink: sink)
        // Whatever the outcome, it is final: a queued submission must never run again after it.
        defer { relay.finish(); try? FileManager.default.removeItem(at: queueFile(sub.id)) }
        func end(_ frame: Frame) { if let sink { try? sink.send(frame) } }
        func fail(_ e: MeshError) { end(.error(e)) }
        let me = agent.name
        var record = TaskRecord(id: sub.id, role: sub.role, task: sub.task, node: nil, from: me, state: .queued, submitted: sub.submitted)
        record.args = sub.args
        var retriesLeft = sub.retry
        /// Nodes this run was lost on: never tried again for this submission.
        var excluded: Set<String> = []
        /// Nodes a dispatch could not reach (refused connection, handshake failure, draining): the
        /// task never started there, so it is not lost; they are skipped for a short while.
        var unreachable: [String: (until: Date, why: String)] = [:]
        var toldUnreachable: Set<String> = []
        var announcedQueue = false
        /// Gives up on `node` and goes back to routing, if a retry is left.
        func retry(elsewhereThan node: String, _ message: String) -> Bool {
            guard retriesLeft > 0 else { return false }
            retriesLeft -= 1
            excluded.insert(node)
            // Not started anywhere now: the executor accepts this id again only from a record like this.
            journal.update(sub.id) { $0.state = .queued; $0.node = nil; $0.started = nil }
            end(.info(message))
            return true
        }
        /// A dispatch to `node` failed before the task started there.
        func notStarted(on node: String, _ why: String) {
            unreachable[node] = (Date().addingTimeInterval(Self.unreachableBackoff), "could not be reached (\(why))")
            journal.update(sub.id) { $0.state = .queued; $0.node = nil }
            if toldUnreachable.insert(node).inserted { end(.info("\(why); trying another node")) }
        }
        /// The mesh failed this run on `node`: journaled (`lost` for 75, else `failed`), then reported.
        func failed(on node: String, _ e: MeshError) {
            journal.update(sub.id) {
                $0.state = e.code == MeshError.tempFail ? .lost : .failed
                $0.exitCode = Int(e.code); $0.node = node; $0.finished = Clock.rfc3339()
            }
            fail(e)
        }

        while true {
            if relay.cancelled {
                try? FileManager.default.removeItem(at: queueFile(sub.id))
                if journal.record(sub.id) != nil { journal.update(sub.id) { $0.state = .cancelled; $0.exitCode = 130; $0.finished = Clock.rfc3339() } }
                return end(.exit(code: 130, state: "cancelled"))
            }
            let target: (name: String, address: WireAddress)
            let now = Date()
            unreachable = unreachable.filter { $0.value.until > now }
            var skip: [String: String] = unreachable.mapValues(\.why)
            for node in excluded { skip[node] = "was lost mid-run" }
            switch agent.sync({ $0.target(for: sub, excluding: skip) }) {
            case .success(let t): target = t
            case .failure(let e):
                guard sub.queue, e.code == MeshError.unavailable else {
                    if journal.record(sub.id) != nil {
                        journal.update(sub.id) { $0.state = .failed; $0.exitCode = Int(e.code); $0.finished = Clock.rfc3339() }
                    }
                    return fail(e)
                }
                if !announcedQueue {
                    announcedQueue = true
                    journal.update(sub.id, initial: record) { $0.state = .queued; $0.node = nil }
                    do { try AtomicFile.replace(queueFile(sub.id), with: [UInt8](ControlJSON.line(sub))) } catch { Log.warn(error.message) }
                    end(.info("queued: \(e.message); waiting for a node"))
                }
                relay.waitForCancel(seconds: 0.25)
                continue
            }

            journal.update(sub.id, initial: record) { $0.state = .queued; $0.node = nil }
            let channel: SecureChannel
            do {
                let (keyPair, trusted, local) = agent.sync { ($0.keyRing.keyPair, $0.keyRing.trusted, $0.listenAddress) }
                channel = try SecureChannel.connect(to: target.address, expected: target.name, me: me, keyPair: keyPair,
                                                    trusted: trusted, from: local)
            } catch {
                // The task never reached the node: it is not lost. Back to routing (or the queue),
                // with that node set aside for a moment; no retry is used up.
                if error.code == MeshError.noPermission { return failed(on: target.name, error) }
                notStarted(on: target.name, error.message)
                continue
            }
            lock.lock(); active[sub.id] = (target.name, channel); lock.unlock()
            defer { lock.lock(); active[sub.id] = nil; lock.unlock(); channel.close() }

            let request = TaskRequest.run(id: sub.id, role: sub.role, task: sub.task, args: sub.args,
                                          submitted: sub.submitted, detached: sink == nil)
            var outcome: Frame?
            var started = false
            do {
                try channel.send(Frame(.request, encoding: request))
                relay.attach(channel)
                while let f = try channel.receive() {
                    switch f.type {
                    case .started:
                        started = true
                        // From here it is running, not waiting: a restart must not start it again.
                        try? FileManager.default.removeItem(at: queueFile(sub.id))
                        journal.update(sub.id) { $0.state = .running; $0.node = target.name; $0.started = Clock.rfc3339() }
                        relay.forward(f)
                    case .stdout, .stderr, .info:
                        relay.forward(f)
                    case .exit, .error:
                        outcome = f
                    default: break
                    }
                    if outcome != nil { break }
                }
            } catch {}
            relay.detach()
            lock.lock(); let revoked = revokedRuns.remove(sub.id) != nil; lock.unlock()
            if revoked {
                return failed(on: target.name, MeshError(MeshError.noPermission, "trust in \(target.name) was revoked on \(me)"))
            }

            if let f = outcome, f.type == .exit, let j = f.decode(ExitInfo.self) {
                let code = j.code ?? 1
                let state = j.state.flatMap(TaskRecord.State.init(rawValue:)) ?? (code == 0 ? .done : .failed)
                journal.update(sub.id) { $0.state = state; $0.exitCode = code; $0.node = target.name; $0.finished = Clock.rfc3339() }
                return end(f)
            }
            if let f = outcome, f.type == .error {
                let e = f.meshError
                // Refused before it started (draining, leaving): not lost, try elsewhere or wait.
                if !started, e.code == MeshError.unavailable {
                    notStarted(on: target.name, e.message)
                    continue
                }
                if e.code == MeshError.tempFail || e.code == MeshError.unavailable,
                   retry(elsewhereThan: target.name, "\(e.message); retrying elsewhere") { continue }
                return failed(on: target.name, e)
            }
            // The connection ended without an answer: the node was lost mid-run.
            if relay.cancelled {
                journal.update(sub.id) { $0.state = .cancelled; $0.exitCode = 130; $0.finished = Clock.rfc3339() }
                return end(.exit(code: 130, state: "cancelled"))
            }
            if retry(elsewhereThan: target.name, "\(target.name) was lost mid-run; retrying on the next route (\(retriesLeft - 1) retries left)") {
                continue
            }
            journal.update(sub.id) { $0.state = .lost; $0.node = target.name; $0.finished = Clock.rfc3339() }
            return fail(MeshError(MeshError.tempFail, "\(target.name) was lost mid-run and no retry was left"))
        }
    }

    /// `logs`: from our own journal when the task ran here, else from the node that ran it.
    func logs(id: String, follow: Bool, sink: PlainFrames) {
        defer { sink.close() }
        func fail(_ e: MeshError) { try? sink.send(.error(e)) }
        guard TaskJournal.isValidID(id), var r = journal.record(id) else {
            return fail(MeshError(MeshError.other, "no task \(id) is known to \(agent.name)"))
        }
        // Following a task that waits in the queue: wait (bounded, like the follow itself) for it to start.
        let deadline = Date().addingTimeInterval(24 * 3600)
        var seen = journal.changeCount
        while follow, r.node == nil, !r.isFinal, Date() < deadline {
            seen = journal.waitForChange(after: seen, until: deadline)
            guard let next = journal.record(id) else { break }
            r = next
        }
        let req = TaskRequest.logs(id: id, follow: follow)
        if r.node == agent.name || FileManager.default.fileExists(atPath: journal.outputFile(id).path) {
            return agent.executor.streamLogs(req, on: sink)
        }
        guard let node = r.node else { return fail(MeshError(MeshError.other, "task \(id) has not run yet (it is \(r.state.rawValue))")) }
        do {
            let (keyPair, trusted, local, address) = agent.sync { ($0.keyRing.keyPair, $0.keyRing.trusted, $0.listenAddress, $0.address(of: node)) }
            guard let address else { return fail(MeshError(MeshError.unavailable, "\(node), which ran task \(id), is not reachable now")) }
            let ch = try SecureChannel.connect(to: address, expected: node, me: agent.name, keyPair: keyPair, trusted: trusted, from: local)
            defer { ch.close() }
            try ch.send(Frame(.request, encoding: req))
            while let f = try ch.receive() {
                try sink.send(f)
                if f.type == .exit || f.type == .error { return }
            }
            fail(MeshError(MeshError.tempFail, "the connection to \(node) was lost"))
        } catch {
            fail(error)
        }
    }
}

/// Carries the submitter's input (stdin, end of stdin, Ctrl-C) to whichever task connection
/// is current, across retries; and output back to the submitter while it listens.
final class Relay: @unchecked Sendable {
    let sink: PlainFrames?
    private let cond = NSCondition()
    private var channel: SecureChannel?
    private(set) var cancelled = false
    private var sawEOF = false
    private var sinkGone = false
    private var finished = false

    init(sink: PlainFrames?) {
        self.sink = sink
        guard let sink else { return }
        onWorkerThread { [self] in
            while let f = try? sink.receive() {
                switch f.type {
                case .signal:
                    cond.lock(); cancelled = true; let ch = channel; cond.broadcast(); cond.unlock()
                    try? ch?.send(f)
                case .stdin, .stdinEOF:
                    // Wait for a connection to hand the input to (bounded by the run's life).
                    cond.lock()
                    if f.type == .stdinEOF { sawEOF = true }
                    while channel == nil && !finished && !cancelled { cond.wait(until: Date().addingTimeInterval(1)) }
                    let ch = channel
                    cond.unlock()
                    try? ch?.send(f)
                default: break
                }
            }
            // The submit command went away without Ctrl-C (closed, killed): hang up on the task,
            // as sshd does when its client vanishes.
            cond.lock()
            sinkGone = true
            let ch = finished ? nil : channel
            let hangUp = !finished
            sawEOF = true
            cond.broadcast()
            cond.unlock()
            if hangUp { try? ch?.send(Frame(.signal, [UInt8(SIGHUP)])) }
        }
    }

    func attach(_ ch: SecureChannel) {
        cond.lock(); channel = ch; let eof = sawEOF, gone = sinkGone, stop = cancelled; cond.broadcast(); cond.unlock()
        if stop { try? ch.send(Frame(.signal, [UInt8(SIGINT)])) }
        if eof || sink == nil || gone { try? ch.send(Frame(.stdinEOF)) }
    }

    func detach() { cond.lock(); channel = nil; cond.unlock() }

    func forward(_ f: Frame) {
        guard let sink else { return }
        cond.lock(); let gone = sinkGone; cond.unlock()
        if gone { return }
        if (try? sink.send(f)) == nil { cond.lock(); sinkGone = true; cond.unlock() }
    }

    func waitForCancel(seconds: Double) {
        cond.lock(); if !cancelled && !sinkGoneAndAttached { _ = cond.wait(until: Date().addingTimeInterval(seconds)) }; cond.unlock()
        // A queued submission whose `submit` command went away is cancelled.
        cond.lock(); if sink != nil && sinkGone { cancelled = true }; cond.unlock()
    }

    private var sinkGoneAndAttached: Bool { sink != nil && sinkGone }

    func finish() {
        cond.lock(); finished = true; channel = nil; cond.broadcast(); cond.unlock()
        sink?.close()
    }
}
