import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// The `run` processes of the services this node offers: started when it starts offering one
/// (the role moved here, for `where = "route"`), stopped when it stops, drains or leaves (before
/// it says `left`). One that keeps dying makes its service `unhealthy`, its last exit as the detail.
extension Agent {
    /// Brings the running processes in line with `offered` (called every second by `tendServices`).
    func superviseRuns(_ offered: [ServiceDefinition]) {
        let wanted = core.me.draining || leaving ? [] : offered.filter { $0.run != nil }
        let ids = Set(wanted.map(\.id))
        for (id, p) in services.runs where !ids.contains(id) || p.definition != wanted.first(where: { $0.id == id }) {
            services.runs[id] = nil
            services.dying[id] = nil
            Log.info("stopping the service's process", context: ["service": id])
            spawn { await p.stop() }
        }
        for d in wanted where services.runs[d.id] == nil {
            let p = ServiceProcess(d, dir: dir, environment: serviceEnvironment(d), cap: config.maxLogBytes, children: children)
            services.runs[d.id] = p
            let id = d.id
            p.start(started: { pid in Log.info("started the service's process (pid \(pid))", context: ["service": id]) },
                    exited: { [weak self] exit, dying in
                        guard let self else { return }
                        self.spawn { await self.runExited(id, exit, keepsDying: dying) }
                    })
        }
    }

    func runExited(_ id: String, _ exit: ServiceProcess.Exit, keepsDying: Bool) {
        let why = exit.status == 126 ? "run cannot start (exit 126)" : "run exited with status \(exit.status)"
        Log.info("the service's process ended: \(why); restarting it", context: ["service": id])
        services.dying[id] = keepsDying ? why : nil
        guard keepsDying, var t = services.health[id] else { return }
        guard t.fail(why) else { return }
        services.health[id] = t
        announceServices()
    }

    /// Every `run` process, stopped (SIGTERM, SIGKILL 10 s later), before the node says `left`.
    func stopServices() async {
        let all = Array(services.runs.values)
        services.runs = [:]
        for l in services.listeners.values { l.stop() }
        await withTaskGroup(of: Void.self) { group in
            for p in all { group.addTask { await p.stop() } }
        }
    }
}
