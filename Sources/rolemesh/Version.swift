/// What `rolemesh --version` prints. Raised with each release; the wire and task-channel
/// versions are separate (protocol.md).
enum RoleMeshVersion {
    static let string = "0.1.0"
}
