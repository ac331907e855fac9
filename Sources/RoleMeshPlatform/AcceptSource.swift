import Glibc
import Dispatch
import FoundationEssentials

/// Accepting connections on a listening socket with a Dispatch read source, and the one answer to
/// running out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM): the listening socket stays
/// readable, so accepting again at once would spin at full CPU; the source pauses for a second
/// instead, said in the log at most once per 10 s. The task listener and the control socket both
/// accept through this. Confinement: created, started and stopped on `queue` (its handlers run there).
public final class AcceptSource {
    public let fd: Int32
    public let what: String
    private let queue: DispatchQueue
    private var source: DispatchSourceRead?
    private var backingOff = false
    private var lastFullLog: UInt64 = 0

    public init(fd: Int32, queue: DispatchQueue, what: String) {
        self.fd = fd; self.queue = queue; self.what = what
    }

    /// `onAccept(fd, peer)`: a new connection and its peer's address (empty for a Unix socket).
    public func start(_ onAccept: @escaping (Int32, sockaddr_storage) -> Void) {
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        s.setEventHandler { [weak self, fd] in
            guard let self else { return }
            for _ in 0..<32 {
                var peer = sockaddr_storage()
                var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let c = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(fd, $0, &len) }
                }
                if c < 0 {
                    let err = errno
                    if err == EINTR || err == ECONNABORTED { continue }
                    if err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM { self.backOff(err) }
                    return
                }
                onAccept(c, peer)
            }
        }
        s.setCancelHandler { [fd] in sysClose(fd) }
        source = s
        s.resume()
    }

    private func backOff(_ err: Int32) {
        guard !backingOff, let s = source else { return }
        backingOff = true
        let now = DispatchTime.now().uptimeNanoseconds
        if lastFullLog == 0 || now - lastFullLog >= 10_000_000_000 {
            lastFullLog = now
            Log.warn("cannot accept \(what): \(String(cString: strerror(err))); pausing for a second")
        }
        s.suspend()
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + 1)
        t.setEventHandler { [weak self] in
            t.cancel()
            guard let self, self.backingOff else { return }
            self.backingOff = false
            if let s = self.source { s.resume() }
        }
        t.resume()
    }

    public func stop() {
        guard let s = source else { return }
        source = nil
        // A suspended source must be resumed for its cancellation to run.
        if backingOff { backingOff = false; s.cancel(); s.resume() } else { s.cancel() }
    }
}
