#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A detached thread of its own, for work that must not run on a shared pool thread: the
/// poller's event loop, a spawn at lowered priority. (Foundation's `Thread`, without Foundation.)
enum OwnThread {
    static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        #if canImport(Glibc)
        var thread = pthread_t()
        #else
        var thread: pthread_t?
        #endif
        let rc = pthread_create(&thread, nil, runStart, start)
        precondition(rc == 0, "pthread_create failed: \(String(cString: strerror(rc)))")
        pthread_detach(thread)
    }

    #if canImport(Glibc)
    // A GNU extension, not imported without _GNU_SOURCE: looked up once (as in Spawn).
    typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
    static let setName: SetName? = dlsym(nil, "pthread_setname_np").map { unsafeBitCast($0, to: SetName.self) }
    #endif
}

/// What the new thread runs, handed over through pthread's one pointer argument.
private final class Start: Sendable {
    let name: String
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
}

#if canImport(Glibc)
private func runStart(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
    _ = OwnThread.setName?(pthread_self(), String(start.name.prefix(15)))   // Linux: 15 bytes at most
    start.body()
    return nil
}
#else
private func runStart(_ raw: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    let start = Unmanaged<Start>.fromOpaque(raw).takeRetainedValue()
    _ = pthread_setname_np(start.name)
    start.body()
    return nil
}
#endif
