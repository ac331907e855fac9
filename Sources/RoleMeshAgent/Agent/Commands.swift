import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore
import RoleMeshTaskChannel

/// Control requests: one `switch` over the typed request. Each answers on its connection.
extension Agent {
    func handle(_ req: ControlRequest, _ conn: ControlConnection) {
        if req.writesToDisk { conn.send(AcceptedReply()) }
        switch req {
        case .status:
            conn.reply(statusReply())
        case .watch:
            events.add(conn)
            conn.send(WatchEvent(event: WatchEvent.watching, node: config.name, time: Clock.rfc3339()))
        case .leave:
            // Held open until the agent stops (closed by `control.stop()` just before exit), so
            // `rolemesh leave` returns when the agent has gone, with no polling on either side.
            conn.send(OkReply(node: config.name))
            leave()
        case .route(let role, let heavy):
            conn.reply(routeReply(route(role, heavy: heavy)))
        case .roles(let action, let role):
            changeRoles(backup: false, action, role: role, priority: 1, conn)
        case .backup(let action, let role, let priority):
            changeRoles(backup: true, action, role: role, priority: priority, conn)
        case .signal(let change):
            changeSignals(change, conn)
        case .drain, .undrain:
            setDraining(req == .drain, conn)
        case .submit(let request):
            submit(request, conn)
        case .tasks:
            sendTasks(conn)
        case .logs(let id, let follow):
            logs(id: id, follow: follow, conn)
        case .cancel(let id):
            cancel(id: id, conn)
        case .schedules:
            conn.reply(schedulesReply())
        case .scheduleRun(let role, let task):
            runScheduleNow(role: role, task: task, conn)
        case .invite(let invited, let seconds, let grants):
            invite(name: invited, seconds: seconds, grants: grants, conn)
        case .revoke(let revoked, let cascade):
            revoke(name: revoked, cascade: cascade, conn)
        case .introducers(let action, let subject):
            changeIntroducers(action == .add, name: subject, conn)
        case .grant(let action, let subject, let roles):
            changeGrants(action == .add, name: subject, words: roles, conn)
        case .trust:
            trustReply(conn)
        case .recovered(let text):
            applyRecovered(text, conn)
        case .services:
            conn.reply(servicesReply())
        case .connect(let service, let listen, let stdio):
            connect(service, listen: listen, stdio: stdio, conn)
        }
    }

    func statusReply() -> StatusReply {
        let members = core.snapshot(now: Clock.now()).map { m in
            var s = MemberStatus(name: m.name, address: m.address.description, state: m.state.rawValue,
                                 incarnation: Int(m.incarnation), roles: m.roles, backup: m.backup, draining: m.draining,
                                 score: Score.of(m.signals), lastHeardMs: Int(m.lastHeardMs), signals: signalsStatus(m.signals),
                                 reach: m.isSelf ? "direct" : reachText(m.name, gossipVia: m.via))
            s.services = Dictionary(m.services.map { ($0.service, $0.health.word) }, uniquingKeysWith: { a, _ in a })
            return s
        }
        let d = core.dropped, g = gossip.counters
        return StatusReply(me: config.name, members: members, roles: roleRoutes(),
                           dropped: DroppedCounts(badSignature: d.badSignature, unknownKey: d.unknownKey + g.unknownPair,
                                                  replay: d.replay, malformed: d.malformed + g.malformed,
                                                  rateLimited: d.rateLimited, badMac: g.badMac,
                                                  notIntroducer: trust.notIntroducer, forgedSlotRecord: background.forgedRecords),
                           revoked: revokedSelf.map { StatusReply.Revoked(by: $0.recovery ? "\($0.by) (recovery code)" : $0.by, at: Self.rfc3339(ms: $0.time)) },
                           forwards: forwardsStatus())
    }

    func signalsStatus(_ s: Signals) -> SignalsStatus {
        SignalsStatus(load: s.load, cpus: s.cpus, memFree: s.memFree, battery: s.battery,
                      onBattery: s.onBattery, throttled: s.throttled, idle: s.idle, idleS: s.idleSeconds)
    }
}
