import Dispatch
import RoleMeshPlatform
import RoleMeshAgent
import RoleMeshTaskChannel

/// Runs async code (the task channel) from a synchronous test that drives real agents.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Locked<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        do { let v = try await body(); result.withLock { $0 = .success(v) } } catch { result.withLock { $0 = .failure(error) } }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}

extension SecureChannel {
    func sendBlocking(_ frame: Frame) throws { try blocking { try await self.send(frame) } }
    func receiveBlocking() throws -> Frame? { try blocking { try await self.receive() } }
}
