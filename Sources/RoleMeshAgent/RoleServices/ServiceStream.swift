import RoleMeshPlatform
import RoleMeshCore
import RoleMeshTaskChannel

/// The bytes of one forwarded connection over a task channel (protocol.md, "Service
/// connections"): the client side sends `stdin` frames and `stdinEOF` when its side stops
/// writing; the serving side sends `stdout` frames and `exit` when the service closed its side.
/// Each direction ends on its own (a half-close reaches the other end); the connection ends when
/// both have, or at once when the channel breaks (the serving node died, or a key was revoked).
enum ServiceStream {
    /// The client's end: `local` (an accepted socket, or `connect --stdio`'s control connection).
    static func client(_ local: AsyncFD, _ ch: SecureChannel) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while let bytes = await local.read() {
                    guard (try? await ch.send(Frame(.stdin, bytes))) != nil else { break }
                }
                _ = ch.enqueue(Frame(.stdinEOF))
            }
            group.addTask {
                while let f = try? await ch.receive(), f.type == .stdout {
                    guard await local.write(f.payload) else { break }
                }
                // The service closed its side (`exit`), or the channel ended: nothing more comes.
                ch.close()
                local.close()
            }
        }
    }

    /// The serving end: `service` is the connection to `127.0.0.1:port` on this node.
    static func server(_ ch: SecureChannel, _ service: AsyncFD, fd: Int32) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while let f = try? await ch.receive() {
                    if f.type == .stdin {
                        guard await service.write(f.payload) else { break }
                    } else {
                        // `stdinEOF`: the client stopped writing; the service sees its end of input.
                        if f.type == .stdinEOF, await service.drained() { _ = sysShutdown(fd, Int32(SHUT_WR)); continue }
                        break
                    }
                }
                // The channel ended (the client went, or a revocation closed it): so does the service connection.
                service.close()
            }
            group.addTask {
                while let bytes = await service.read() {
                    guard (try? await ch.send(Frame(.stdout, bytes))) != nil else { break }
                }
                _ = ch.enqueue(Frame.exit(code: 0, state: "done"))
                ch.close()
                service.close()
            }
        }
    }
}
