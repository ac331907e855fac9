import RoleMeshCore
import RoleMeshTaskChannel

/// What the agent keeps about role services (Agent.services): its `service.toml` files, the
/// health of what it offers, where each service's connections went last, and its listeners.
struct ServicePlane {
    /// This node's declared services and bad files (file → sentence), as last read.
    var defs: [ServiceDefinition] = []
    var errors: [String: String] = [:]
    var reading = false
    var readAt: Millis = .min / 2
    /// Offered now: health per `ROLE/NAME`, from this node's checks.
    var health: [String: HealthTracker] = [:]
    var checkedAt: [String: Millis] = [:]
    var checking: Set<String> = []
    /// The `run` processes of offered services, by `ROLE/NAME`.
    var runs: [String: ServiceProcess] = [:]
    /// Services whose `run` process keeps dying: its last exit, the detail while it does.
    var dying: [String: String] = [:]
    /// Where new connections to each service known in the mesh went at the last look (service-moved).
    var routes: [String: String?] = [:]
    /// "NODE ROLE/NAME" → its reported health at the last look (service-healthy, service-unhealthy).
    var seenHealth: [String: ServiceHealth] = [:]
    /// Listeners (`forward`, `connect`) by id.
    var listeners: [Int: ServiceListener] = [:]
    /// Forwarded connections this node opened, by id: the node serving each and its channel, so
    /// that those to a node the mesh finds dead or gone end at once (a device that dropped off
    /// sends no reset; TCP alone would hold them for many minutes).
    var open: [Int: (node: String, channel: SecureChannel)] = [:]
    var nextOpen = 0
    var nextListener = 0
    /// node.toml's `forward` entries: their listener ids, and when a closed one was last tried.
    var forwardIDs: [String: Int] = [:]
    var forwardTriedAt: [String: Millis] = [:]
    /// A `forward` listener that could not open is tried again this often.
    static let forwardRetryMs: Millis = 10_000

    /// Files are read this often (off the agent queue); checks run every `HealthTracker.intervalSeconds`.
    static let readEveryMs: Millis = 5_000

    /// This node's offer as it goes into its heartbeat (field 25), sorted by name.
    func offers() -> [OfferedService] {
        defs.compactMap { d in
            health[d.id].map { OfferedService(service: d.id, health: $0.health, detail: $0.detail, port: d.port, placement: d.placement) }
        }.sorted { $0.service < $1.service }
    }
}
