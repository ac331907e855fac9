/// Places for task connections that have not proved a key yet (their handshake), as a pure state
/// machine the listener drives (time injected): at most `total` at once and `perSource` from one
/// source IP, so a few silent sockets from one address cannot hold every place. A connection
/// that finds no place waits in a short queue (`maxWaiting`, `wait` ms at most) and starts as soon
/// as one frees, oldest first among those whose source has room; only one that finds the queue
/// full, or waits out its time, is refused (closed unread).
public struct PreAuthPlaces: Sendable {
    public let total: Int
    public let perSource: Int
    public let maxWaiting: Int
    public let wait: Millis

    public private(set) var inUse = 0
    private var bySource: [[UInt8]: Int] = [:]
    private var waiting: [(id: Int, source: [UInt8], until: Millis)] = []

    public init(total: Int = 32, perSource: Int = 8, maxWaiting: Int = 64, wait: Millis = 2_000) {
        self.total = total; self.perSource = perSource; self.maxWaiting = maxWaiting; self.wait = wait
    }

    public enum Arrival: Equatable, Sendable { case start, wait, refuse }

    public var waitingCount: Int { waiting.count }

    func hasRoom(_ source: [UInt8]) -> Bool { inUse < total && (bySource[source] ?? 0) < perSource }

    mutating func take(_ source: [UInt8]) {
        inUse += 1
        bySource[source, default: 0] += 1
    }

    /// Connection `id` from `source` (its IP) arrives at `now`.
    public mutating func arrive(id: Int, source: [UInt8], now: Millis) -> Arrival {
        if hasRoom(source), !waiting.contains(where: { $0.source == source }) {
            take(source)
            return .start
        }
        // Each source may queue no more than it may hold, so one address cannot fill the queue either.
        guard waiting.count < maxWaiting, waiting.filter({ $0.source == source }).count < perSource else { return .refuse }
        waiting.append((id, source, now + wait))
        return .wait
    }

    /// A connection from `source` left its handshake (either way): the ids that start now.
    public mutating func leave(source: [UInt8]) -> [Int] {
        inUse = max(0, inUse - 1)
        if let n = bySource[source] { bySource[source] = n > 1 ? n - 1 : nil }
        return admitWaiting()
    }

    /// Waiting connections whose time is up at `now`: they are refused (closed).
    public mutating func expire(now: Millis) -> [Int] {
        let gone = waiting.filter { $0.until <= now }.map(\.id)
        waiting.removeAll { $0.until <= now }
        return gone
    }

    /// The earliest time a waiting connection runs out, if any wait.
    public var nextExpiry: Millis? { waiting.map(\.until).min() }

    mutating func admitWaiting() -> [Int] {
        var started: [Int] = []
        var i = 0
        while i < waiting.count, inUse < total {
            if hasRoom(waiting[i].source) {
                take(waiting[i].source)
                started.append(waiting.remove(at: i).id)
            } else {
                i += 1
            }
        }
        return started
    }
}
