import Glibc

/// A detached thread of its own, for work that must not run on a shared pool thread: the
/// poller's event loop, a spawn at lowered priority. (Foundation's `Thread`, without Foundation.)
public enum OwnThread {
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, runStart, start)
        precondition(rc == 0, "pthread_create failed: \(String(cString: strerror(rc)))")
        pthread_detach(thread)
    }

    // A GNU extension, not imported without _GNU_SOURCE: looked up once (as in Spawn).
    public typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
    public static let setName: SetName? = dlsym(nil, "pthread_setname_np").map { unsafeBitCast($0, to: SetName.self) }
}

/// What the new thread runs, handed over through pthread's one pointer argument.
private final class Start: Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
}

private func runStart(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
    _ = OwnThread.setName?(pthread_self(), String(start.name.prefix(15)))   // Linux: 15 bytes at most
    start.body()
    return nil
}
