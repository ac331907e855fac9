/// A service's health as its node reports it (heartbeat field 25, `status`, `services`).
public enum ServiceHealth: UInt8, Sendable, Equatable {
    case starting = 0, healthy = 1, unhealthy = 2

    public var word: String {
        switch self {
        case .starting: "starting"
        case .healthy: "healthy"
        case .unhealthy: "unhealthy"
        }
    }
}

/// One service a node offers, with its health and the reason of a failing check.
public struct OfferedService: Equatable, Sendable {
    /// `ROLE/NAME`.
    public var service: String
    public var health: ServiceHealth
    /// Why it is not healthy (`check exit 1`, `connection refused`), nil when healthy.
    public var detail: String?
    /// Its port on the node's loopback: a thin client listens at the same port by default.
    public var port: Int
    public var placement: ServiceDefinition.Placement

    public init(service: String, health: ServiceHealth, detail: String? = nil, port: Int = 0,
                placement: ServiceDefinition.Placement = .holders) {
        self.service = service; self.health = health; self.detail = detail; self.port = port; self.placement = placement
    }
}

/// The check results of one service, turned into its health: `starting` until the first result,
/// `unhealthy` after `failuresToFail` failures in a row, `healthy` again after one success.
public struct HealthTracker: Equatable, Sendable {
    public static let failuresToFail = 3
    /// Seconds between checks, and the limit of an executable check.
    public static let intervalSeconds = 5
    public static let checkTimeoutSeconds = 10

    public private(set) var health: ServiceHealth = .starting
    public private(set) var detail: String?
    private var failures = 0

    public init() {}

    /// Records one check; true when the health or its detail changed (worth gossiping).
    public mutating func record(ok: Bool, detail why: String? = nil) -> Bool {
        let before = (health, detail)
        if ok {
            failures = 0
            health = .healthy
            detail = nil
        } else {
            failures += 1
            if failures >= Self.failuresToFail { health = .unhealthy; detail = why }
        }
        return before != (health, detail)
    }

    /// Something outside the checks decided (a `run` process that keeps dying): unhealthy now.
    public mutating func fail(_ why: String) -> Bool {
        let before = (health, detail)
        failures = Self.failuresToFail
        health = .unhealthy
        detail = why
        return before != (health, detail)
    }
}
