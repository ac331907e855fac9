import RoleMeshPlatform
import RoleMeshControl
import RoleMeshCore

/// Frames of a task stream. The same types travel on the control socket (CLI ↔ local agent,
/// in the clear: both ends are the same user) and inside the encrypted task channel
/// (agent ↔ agent). `protocol.md` ("Task channel") lists them.
public enum FrameType: UInt8, Sendable {
    case request = 1     // JSON: what to do
    case stdin = 2       // bytes for the task's standard input
    case stdinEOF = 3    // the task's standard input ends
    case stdout = 4      // bytes the task wrote to standard output
    case stderr = 5      // bytes the task wrote to standard error
    case exit = 6        // JSON {"code": N, "state": "done|failed|cancelled"}: the end
    case error = 7       // JSON {"code": N, "message": "..."}: the mesh failed; the end
    case signal = 8      // one byte: a signal number to deliver to the task's process group
    case started = 9     // JSON {"id": "...", "node": "..."}: the task started (or was queued)
    case info = 10       // JSON {"message": "..."}: a line for the person at the terminal
    case slots = 11      // JSON {"records": [...], "trust": [...]}: the answer to a `slots` request
    case welcome = 12    // JSON {"keys": {...}, "peers": [...]}: the inviter's answer to a join (JoinHandshake.swift)
    case next = 13       // empty: the submitter sends nothing more for this run; another `run` may follow (a kept channel)
}

public struct Frame: Sendable {
    public var type: FrameType
    public var payload: [UInt8]
    public init(_ type: FrameType, _ payload: [UInt8] = []) { self.type = type; self.payload = payload }
    /// A frame whose payload is `value` as a JSON object (see FramePayloads.swift).
    public init<T: Encodable>(_ type: FrameType, encoding value: T) { self.type = type; self.payload = Array(ControlJSON.encode(value)) }
    /// The payload read as `T`, or nil when it is not one.
    public func decode<T: Decodable>(_ type: T.Type) -> T? { ControlJSON.decode(type, from: Data(payload)) }

    /// Output is moved in chunks of this size: big enough for throughput, small enough to bound memory.
    public static let maxPayload = 65_536
    /// The largest frame accepted at all: a request carries the task's arguments.
    public static let maxFrame = 1 << 20
    /// What the arguments of one submission may add up to, JSON-encoded (checked by `submit`).
    public static let maxArgumentBytes = 512 * 1024

    /// The mesh's failure, as the last frame of a stream.
    public static func error(_ e: MeshError) -> Frame {
        Frame(.error, encoding: ErrorInfo(code: Int(e.code), message: e.message))
    }

    /// The task's end, as the last frame of a stream.
    public static func exit(code: Int, state: String) -> Frame {
        Frame(.exit, encoding: ExitInfo(code: code, state: state))
    }

    public static func info(_ message: String) -> Frame {
        Frame(.info, encoding: InfoMessage(message: message))
    }

    /// What an `error` frame says, with its code kept within the range an exit status allows.
    public var meshError: MeshError {
        let e = decode(ErrorInfo.self)
        return MeshError(Int32(clamping: e?.code ?? 1), e?.message ?? "the mesh failed")
    }

    /// `type u8 · length u32`: the header of a plain frame (control socket, stored task output).
    public static func plainHeader(_ type: FrameType, count: Int) -> [UInt8] {
        var w = ByteWriter(capacity: 5)
        w.u8(type.rawValue)
        w.u32(UInt32(count))
        return w.bytes
    }

    /// A received plain frame's header: a known type and a payload within `maxFrame`, or the error.
    public static func checkedPlainHeader(_ header: [UInt8]) throws(MeshError) -> (type: FrameType, length: Int) {
        guard let (t, n) = parsePlainHeader(header), let type = FrameType(rawValue: t), n <= maxFrame else {
            throw MeshError(MeshError.other, "a malformed frame arrived")
        }
        return (type, n)
    }

    /// The type byte and payload length of a plain frame header (the first 5 bytes of `bytes`).
    public static func parsePlainHeader(_ bytes: [UInt8]) -> (type: UInt8, length: Int)? {
        var r = ByteReader(bytes, to: min(5, bytes.count))
        guard let type = try? r.u8(), let n = try? r.u32() else { return nil }
        return (type, Int(n))
    }
}

/// Something frames can be sent to and read from (a plain socket or an encrypted channel).
public protocol FrameTransport: AnyObject, Sendable {
    /// Waits only while the peer is far behind (see `AsyncFD.highWater`).
    func send(_ frame: Frame) async throws(MeshError)
    /// nil at a clean end of stream.
    func receive() async throws(MeshError) -> Frame?
    /// Sends what is queued, then ends the connection.
    func close()
}

/// Frames in the clear: [type u8][length u32][payload]. The agent's side of the control socket.
public final class PlainFrames: FrameTransport {
    public let io: AsyncFD
    public init(_ io: AsyncFD) { self.io = io }

    public func send(_ frame: Frame) async throws(MeshError) {
        guard await io.write(Frame.plainHeader(frame.type, count: frame.payload.count) + frame.payload) else {
            throw MeshError(MeshError.other, "the connection closed")
        }
    }

    public func receive() async throws(MeshError) -> Frame? {
        guard let h = await io.readExactly(5) else { return nil }
        let (type, n) = try Frame.checkedPlainHeader(h)
        guard let payload = await io.readExactly(n) else { return nil }
        return Frame(type, payload)
    }

    public func close() { io.close() }
}
