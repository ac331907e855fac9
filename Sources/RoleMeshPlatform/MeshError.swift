/// A failure a person sees: one clear sentence and a sysexits code from the contract.
public struct MeshError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var message: String
    public init(_ code: Int32, _ message: String) { self.code = code; self.message = message }
    public var description: String { message }

    public static let usage: Int32 = 64          // bad usage
    public static let unavailable: Int32 = 69    // no node can take it
    public static let cantCreate: Int32 = 73     // init over an existing node
    public static let tempFail: Int32 = 75       // node lost mid-run, no retry left
    public static let noPermission: Int32 = 77   // refused by the executing node
    public static let config: Int32 = 78         // bad configuration
    public static let other: Int32 = 1
}
