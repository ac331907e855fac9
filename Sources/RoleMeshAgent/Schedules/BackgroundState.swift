import RoleMeshCore

/// The agent's part of background work, in one stored property of the agent (on its queue).
struct BackgroundState {
    /// From `roles/*/schedule.toml`, re-read every few seconds off the agent queue.
    var schedules: [Schedule] = []
    /// Schedule files that did not parse: file → the error sentence (reported, never fatal).
    var fileErrors: [String: String] = [:]
    var readingFiles = false
    /// Other nodes' schedules, as each last told this node (for `schedules` and `schedules run`).
    var remote: [String: [Schedule]] = [:]

    /// Every schedule the mesh knows: this node's own first, then others' it lacks (by peer name).
    var known: [Schedule] {
        var out = schedules, ids = Set(schedules.map(\.id))
        for peer in remote.keys.sorted() { for s in remote[peer]! where ids.insert(s.id).inserted { out.append(s) } }
        return out
    }
    /// Every slot record this node knows (persisted in `state/slots.json`, exchanged with peers).
    var ledger = SlotLedger()
    /// Attempts this node started and whose runs have not ended (task ids).
    var active: Set<String> = []
    /// When this node last started a slot by itself (`Scheduler.fireSpacing`).
    var lastFire: Millis = 0
    /// The idle probe's last reading; the pins go on top (`LocalOverrides`).
    var idle: Bool?
    var idleSeconds: Int?
    var probingIdle = false
    /// When the idle probe last ran, and when a background run here last asked for its conditions
    /// (`Agent.refreshIdle` reads idle often only while it matters).
    var idleReadAt: Millis = .min / 2
    var conditionsAskedAt: Millis = .min / 2
    /// Background runs here that are paused now: task id → why (from their `run-paused` events).
    var paused: [String: String] = [:]
    /// Peers an exchange of slot records is under way with (one at a time per peer), and those
    /// to exchange with again when it ends (news came meanwhile).
    var exchanging: Set<String> = []
    var again: Set<String> = []
    /// What this node holds beside membership changed since its digest was last computed
    /// (`refreshDigest`); the digests an exchange with each peer last started from (ours, theirs).
    var digestDirty = true
    var exchangedAt: [String: (ours: [UInt8], theirs: [UInt8])] = [:]
    /// Members an exchange of records was started with when they came alive (since this start):
    /// schedules fire once each of these has ended (`Agent.settled`).
    var greeted: Set<String> = []
    /// Slot records peers sent that were neither about their own runs nor signed by the runner
    /// (`dropped.forged_slot_record`).
    var forgedRecords = 0
}
