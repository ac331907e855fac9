import RoleMeshPlatform
import RoleMeshControl

/// Where the agent's events go: every `watch` stream and every hook (`HookRunner`). An event is
/// encoded once; each watcher buffers it without waiting, and one that stopped reading is dropped;
/// hooks run beside the agent, never waited for. Owned by the agent, used on its queue.
struct EventHub {
    private var watchers: [ControlConnection] = []
    private let hooks: HookRunner
    private let children: ChildTasks

    init(hooks: HookRunner, children: ChildTasks) { self.hooks = hooks; self.children = children }

    /// A `watch` stream: it gets every event from now on.
    mutating func add(_ watcher: ControlConnection) { watchers.append(watcher) }

    mutating func publish(_ event: WatchEvent) {
        let line = Array(ControlJSON.line(event))
        let hooks = self.hooks
        children.spawn { await hooks.fire(event: event.event, node: event.node, line: line) }
        watchers.removeAll { !$0.sendRaw(line) }
    }
}
