import Dispatch

/// A Dispatch source on a descriptor that is switched on and off (resumed and suspended) as
/// there is something to wait for, made on first use. Dispatch counts suspensions, so this keeps
/// ours balanced; and a suspended source runs its cancellation only once resumed, which `cancel`
/// does. Not thread-safe: its owner calls it under its own lock or on its own queue.
public struct SourceSwitch {
    private var source: (any DispatchSourceProtocol)?
    private var on = false

    public init() {}

    /// Switches the source on or off; `make` creates it (not yet resumed) the first time it is needed.
    public mutating func set(_ wanted: Bool, make: () -> any DispatchSourceProtocol) {
        guard let source else {
            guard wanted else { return }
            let s = make()
            source = s
            on = true
            s.resume()
            return
        }
        guard wanted != on else { return }
        on = wanted
        if wanted { source.resume() } else { source.suspend() }
    }

    /// Cancels the source; `group` is left once its cancellation has run (the descriptor may
    /// be closed or handed on after that, never before).
    public mutating func cancel(leaving group: DispatchGroup) {
        guard let s = source else { return }
        group.enter()
        s.setCancelHandler { group.leave() }
        s.cancel()
        if !on { s.resume() }
        source = nil
        on = false
    }
}
