import RoleMeshPlatform
import RoleMeshCore

/// The one way a file is replaced: a temporary file in the same folder, written and fsynced,
/// renamed over the target, then the folder fsynced. A reader (or a crash) sees the old
/// content or the new, never a torn file, and the new name survives a power cut.
///
/// `durable: false` skips the two fsyncs: still never torn, but a power cut may bring back the
/// previous version. For records rewritten many times per task (the journal's task.json), where
/// two fsyncs per update doubled a task's round trip and the worst case is a state one step old.
public enum AtomicFile {
    public static func replace(_ url: URL, with text: String, durable: Bool = true) throws(MeshError) {
        try replace(url, with: Array(text.utf8), durable: durable)
    }

    public static func replace(_ url: URL, with bytes: [UInt8], durable: Bool = true) throws(MeshError) {
        let folder = url.deletingLastPathComponent().path
        // A unique name: two writers of the same file never share a temporary.
        let suffix = Ed25519.randomBytes(6).hex
        let tmp = "\(folder)/.\(url.lastPathComponent).\(suffix).tmp"
        func failure(_ what: String) -> MeshError {
            let e = MeshError(MeshError.other, "cannot \(what) \(url.path): \(String(cString: strerror(errno)))")
            unlink(tmp)
            return e
        }
        // 0600 whatever the umask: everything RoleMesh writes is for its owner only.
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failure("create a temporary file for") }
        let written = FD.writeAll(fd, bytes) && (!durable || fsync(fd) == 0)
        let err = errno
        close(fd)
        guard written else { errno = err; throw failure("write") }
        guard rename(tmp, url.path) == 0 else { throw failure("replace") }
        // The rename lives in the folder: sync it too, or a crash may bring the old name back.
        guard durable else { return }
        let dirFD = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }
}
