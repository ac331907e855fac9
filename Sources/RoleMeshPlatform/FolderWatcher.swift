import Glibc

/// Tells the agent when files in some folders appear, go, are written or renamed (`keys/` and
/// `keys/revoked/`): on Linux one inotify descriptor waited on by the `Poller`, so trust follows
/// the folder at once instead of the agent re-reading every key file every 2 s (most of an idle
/// agent's file reads). What changed is not parsed: the agent reads the folder again.
///
/// A folder that is missing, or replaced as a whole (moved away, deleted), is not watched until
/// `rearm()` finds it again; `watching` says whether the first folder is watched now, so the
/// caller polls while it is not. Elsewhere nothing is watched (nil): the caller polls.
public final class FolderWatcher: Sendable {
    private let fd: Int32
    private let paths: [String]
    /// Each path's watch descriptor, or nil while it is not watched.
    private let watches: Locked<[Int32?]>
    private let registration = Locked<Poller.Registration?>(nil)

    /// Nil if the kernel refuses inotify (out of instances, a sandbox): the caller polls.
    public init?(_ paths: [String], onChange: @escaping @Sendable () -> Void) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.paths = paths
        watches = Locked(Array(repeating: nil, count: paths.count))
        let reg = Poller.shared.register(fd) { [self] readable, _ in
            guard let r = registration.withLock({ $0 }) else { return }
            if readable {
                // Drain the queued events (bounded), then look again at what is watched and read once.
                var buf = [UInt8](repeating: 0, count: 4096)
                for _ in 0..<64 {
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                }
                rearm()
                onChange()
            }
            Poller.shared.arm(r, read: true, write: false)
        }
        guard let reg else { close(fd); return nil }
        registration.withLock { $0 = reg }
        rearm()
        Poller.shared.arm(reg, read: true, write: false)
    }

    public static let mask = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB
                             | IN_DELETE_SELF | IN_MOVE_SELF)

    /// Watches each path that exists now (again, if it was replaced: a path watched already keeps
    /// its descriptor; a new folder at the path gets a new one, and the old folder is let go).
    public func rearm() {
        watches.withLock { w in
            for (i, path) in paths.enumerated() {
                let wd = inotify_add_watch(fd, path, Self.mask | UInt32(IN_ONLYDIR))
                if let old = w[i], old != wd { _ = inotify_rm_watch(fd, old) }
                w[i] = wd >= 0 ? wd : nil
            }
        }
    }

    /// Whether the first path is watched now (as far as the last `rearm` knows).
    public var watching: Bool { watches.withLock { $0.first.map { $0 != nil } ?? false } }

    public func stop() {
        guard let r = registration.withLock({ r -> Poller.Registration? in defer { r = nil }; return r }) else { return }
        Poller.shared.remove(r)
        close(fd)
    }
}
