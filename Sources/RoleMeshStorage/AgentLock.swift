import RoleMeshPlatform

/// One agent per node directory: `state/agent.lock`, held (flock) for the agent's whole life and
/// taken before it does anything else, so a second agent on the same directory refuses before it
/// logs "agent started" or raises the incarnation. The kernel lets go when the process ends,
/// however it ends; the file holds the holder's pid for the message.
public enum AgentLock {
    /// The lock's descriptor (kept open: closing it would let go), or why it cannot be had.
    public static func acquire(_ dir: NodeDirectory) throws(MeshError) -> Int32 {
        let state = dir.stateDir.path
        do { try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true) } catch {
            throw MeshError(MeshError.other, "cannot create \(state): \(error.sentence)")
        }
        let path = state + "/agent.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MeshError(MeshError.other, "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let err = errno
            var buf = [UInt8](repeating: 0, count: 32)
            let n = read(fd, &buf, buf.count)
            sysClose(fd)
            guard err == EWOULDBLOCK else { throw MeshError(MeshError.other, "cannot lock \(path): \(String(cString: strerror(err)))") }
            let pid = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmed : ""
            throw MeshError(MeshError.other, "an agent is already running for this directory (\(dir.root.path)\(pid.isEmpty ? "" : ", pid \(pid)"))")
        }
        _ = ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pwrite(fd, pid, pid.count, 0)
        return fd
    }
}
