import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// The task channel and task commands, wired into the agent.
extension Agent {
    /// The key this node trusts for `node` now, or nil.
    func trustedKey(_ node: String) -> [UInt8]? { keyRing.trusted[node] }

    /// What a task channel to another node needs: our key pair and the keys we trust.
    func credentials() -> (Ed25519.KeyPair, [String: [UInt8]]) { (keyRing.keyPair, keyRing.trusted) }

    /// Both questions a new request asks, in one visit to the agent: is `peer` trusted, and why
    /// would this node take no new task (nil: it takes them).
    func admission(_ peer: String) -> (trusted: Bool, refusal: String?) { (trustedKey(peer) != nil, refusesTasks()) }

    /// For the first handshake ("RMT1", release 0.1.0): `name`'s key if the gossip says it is a
    /// member of that release (no digest in its heartbeat) reached at `source`'s IP; else nil.
    func previousReleaseKey(_ name: String, at source: WireAddress) -> [UInt8]? {
        guard let m = core.snapshot(now: Clock.now()).first(where: { $0.name == name }), m.runsPreviousRelease,
              m.address.ip == source.ip else { return nil }
        return trustedKey(name)
    }

    /// Why this node takes no new tasks now, or nil.
    func refusesTasks() -> String? {
        if leaving { return "is leaving the mesh" }
        if overrides.draining { return "is draining" }
        return nil
    }

    func address(of node: String) -> WireAddress? {
        core.snapshot(now: Clock.now()).first { $0.name == node && ($0.state == .alive || $0.state == .suspect) }?.address
    }

    /// Where a submission goes now (on the agent queue).
    /// `excluded`: nodes this submission must not go to now, each with why (lost mid-run, unreachable).
    func target(for sub: Submission, excluding excluded: [String: String]) -> Result<(name: String, address: WireAddress), MeshError> {
        let view = core.snapshot(now: Clock.now())
        if let to = sub.to {
            guard let m = view.first(where: { $0.name == to }) else {
                return .failure(MeshError(MeshError.unavailable, "\(to) is not a member of this mesh"))
            }
            if let why = excluded[to] { return .failure(MeshError(MeshError.unavailable, "\(to) \(why)")) }
            guard m.state == .alive || m.state == .suspect else {
                return .failure(MeshError(MeshError.unavailable, "\(to) is \(m.state.rawValue)"))
            }
            guard !m.address.isUnspecified else {
                return .failure(MeshError(MeshError.unavailable, "\(to) has not told this node its address yet"))
            }
            return .success((to, m.address))
        }
        // Nodes whose address we do not know yet cannot take it from here either.
        var skip = excluded
        for m in view where !m.isSelf && m.state == .alive && m.address.isUnspecified && skip[m.name] == nil {
            skip[m.name] = "has not told this node its address yet"
        }
        // `--when idle`: a holder that is not idle counts as absent until it is.
        if sub.whenIdle {
            for m in view where m.signals.idle != true && skip[m.name] == nil { skip[m.name] = "busy (not idle)" }
        }
        let d = Routing.route(sub.role, heavy: sub.heavy, members: view, excluding: skip, grants: grants)
        guard let node = d.node, let m = view.first(where: { $0.name == node }) else {
            return .failure(MeshError(MeshError.unavailable, d.failureSentence))
        }
        return .success((node, m.address))
    }

    func startTasks() {
        let me = name, keyPair = keyRing.keyPair
        let door = InviteDoor(secret: { await self.inviteSecret($0, id: $1) }, claim: { await self.claimInvite($0, id: $1, key: $2) })
        let gate = PreAuthGate(start: { fd, source, place in
            // The handshake is a task of its own, off the agent queue; the agent is asked for a key
            // once the client's hello opened.
            self.spawn {
                let io = AsyncFD(fd)
                let channel: SecureChannel
                do throws(SecureChannel.Refusal) {
                    channel = try await SecureChannel.accept(io: io, me: me, keyPair: keyPair, trusted: { await self.trustedKey($0) },
                                                             invites: door, previousRelease: { await self.previousReleaseKey($0, at: source) })
                } catch {
                    place.release()
                    io.abort()
                    await self.noteRefusal(error.phrase, from: source.host)
                    return
                }
                place.release()
                await self.serveAccepted(channel)
            }
        }, refused: { source, why in self.spawn { await self.noteRefusal(why, from: source.host) } })
        taskListener.start(queue: queue, gate: gate)
        every(ms: Int(RefusalLog.interval)) { agent in
            if let line = agent.refusals.flush(now: Clock.now()) { Log.info(line) }
        }
        every(ms: 5_000) { $0.retryDirectPaths() }
        let submitter = self.submitter
        spawn { await submitter.resume() }
    }

    /// A refused task connection, for the log (`RefusalLog`: one line at once, then a summary at
    /// most every 10 s; only the source address and a fixed reason, never what the client said).
    func noteRefusal(_ why: String, from source: String) {
        if let line = refusals.note(why, source: source, now: Clock.now()) { Log.info(line) }
    }

    /// An authenticated channel: a join's `welcome`, or served by the executor while its peer holds
    /// fewer than `channels.perPeer` here.
    nonisolated func serveAccepted(_ channel: SecureChannel) async {
        if channel.joinKey != nil { return await welcome(channel) }
        guard channels.enter(channel.peer, channel.io, capped: true) else {
            await noteRefusal("it holds \(channels.perPeer) task connections here already", from: channel.peer)
            try? await channel.send(.error(MeshError(MeshError.unavailable, "\(name) serves at most \(channels.perPeer) task connections of \(channel.peer) at once")))
            channel.close()
            return
        }
        await executor.serve(channel)
    }

    /// On leave: take no new tasks, let running ones finish (bounded), then stop listening.
    func stopTasks() async {
        // Tell the mesh at once, so nobody routes new work here while running tasks finish.
        perform(node.updateSelf(now: Clock.now()) { $0.draining = true })
        await executor.finishAll(within: Double(core.profile.leaveGrace) / 1000)
        taskListener.stop()
        await journal.flushed()     // the tasks' last states are in their files before the agent exits
    }

    func submit(_ request: SubmitRequest, _ conn: ControlConnection) {
        let detach = request.detach
        var sub = Submission(request)
        guard NodeName.isValid(sub.role), Submission.isValidTaskName(sub.task) else {
            let e = MeshError(MeshError.usage, "submit needs ROLE/TASK: a valid role name and a file name")
            if detach { conn.fail(e) } else {
                conn.takeOver { sink in
                    self.spawn { try? await sink.send(.error(e)); sink.close() }
                }
            }
            return
        }
        sub.id = TaskJournal.newID()
        sub.submitted = Clock.rfc3339()
        if detach {
            // Fail fast when it can never run; otherwise answer with the id and go on alone.
            if !sub.queue, case .failure(let e) = target(for: sub, excluding: [:]) { conn.fail(e); return }
            conn.reply(SubmittedReply(id: sub.id))
            let s = sub, submitter = self.submitter
            spawn { await submitter.run(s, sink: nil) }
        } else {
            let s = sub, submitter = self.submitter
            conn.takeOver { sink in
                self.spawn {
                    try? await sink.send(Frame(.started, encoding: StartedInfo(id: s.id, state: "accepted")))
                    await submitter.run(s, sink: sink)
                }
            }
        }
    }

    /// Reading and encoding the whole journal is file I/O and CPU: done off the agent queue,
    /// answered back on it (the connection buffers it without waiting for the client).
    func sendTasks(_ conn: ControlConnection) {
        let journal = self.journal
        spawn {
            let answer = await offQueue { Array(ControlJSON.line(TasksReply(tasks: journal.all()))) }
            conn.replyRaw(answer)
        }
    }

    func logs(id given: String, follow: Bool, _ conn: ControlConnection) {
        let journal = self.journal, submitter = self.submitter
        conn.takeOver { sink in
            self.spawn {
                // The stream's first frame says the agent took the request, so the command line's
                // time limit on a first answer holds even while a followed task waits in the queue.
                try? await sink.send(Frame(.started, encoding: StartedInfo(id: given, state: "logs")))
                // A unique prefix of an id will do, as `tasks` shows ids shortened.
                await submitter.logs(id: journal.resolve(given) ?? given, follow: follow, sink: sink)
            }
        }
    }
}
