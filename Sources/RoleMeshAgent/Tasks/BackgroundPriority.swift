#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Background runs start at the lowest CPU and I/O priority, all three set before the task's
/// first instruction, so nothing it forks ever runs higher:
/// - SCHED_IDLE: through `posix_spawnattr_setschedpolicy` (glibc applies it in the child before exec);
/// - nice 19 and the idle I/O class: posix_spawn has no attribute for them, but on Linux both are
///   per thread and inherited by a child, so the spawn runs on a fresh thread that first lowers
///   its own nice and I/O class. (The thread itself stays SCHED_OTHER, so a busy machine never
///   starves the spawn.) No wrapper program, no shell.
enum BackgroundPriority {
    /// Linux's SCHED_IDLE (5); <sched.h> defines it only under _GNU_SOURCE.
    static let schedIdle: Int32 = 5
    static let niceness: Int32 = 19
    /// IOPRIO_CLASS_IDLE (3) << IOPRIO_CLASS_SHIFT (13), data 0.
    static let idleIOClass: Int32 = 3 << 13

    /// `ioprio_set` has no glibc wrapper; glibc's `syscall` is plain assembly that takes its
    /// arguments in registers, so it is called through a non-variadic pointer.
    private typealias Syscall3 = @convention(c) (Int, Int32, Int32, Int32) -> Int
    private static let syscall3: Syscall3? = dlsym(nil, "syscall").map { unsafeBitCast($0, to: Syscall3.self) }
    #if arch(x86_64)
    static let ioprioSet = 251, ioprioGet = 252
    #elseif arch(arm64)
    static let ioprioSet = 30, ioprioGet = 31
    #else
    static let ioprioSet = -1, ioprioGet = -1
    #endif
    static let whoProcess: Int32 = 1    // IOPRIO_WHO_PROCESS: with 0, the calling thread

    /// Lowers the calling thread's nice and I/O class (for good: use a thread of its own).
    static func lowerThisThread() {
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        if ioprioSet >= 0 { _ = syscall3?(ioprioSet, whoProcess, 0, idleIOClass) }
    }

    /// A process's I/O priority as `ioprio_get` reports it (tests), or nil.
    static func ioPriority(of pid: pid_t) -> Int? {
        guard ioprioGet >= 0, let r = syscall3?(ioprioGet, whoProcess, pid, 0), r >= 0 else { return nil }
        return r
    }

    /// `Spawn.start` at the lowest priority, on a thread of its own (see above).
    static func spawn(path: String, args: [String], environment: [String], directory: String,
                      stdin: Int32, stdout: Int32, stderr: Int32) async -> Result<pid_t, Spawn.Errno> {
        await withCheckedContinuation { c in
            let t = Thread {
                lowerThisThread()
                c.resume(returning: Spawn.start(path: path, args: args, environment: environment, directory: directory,
                                                stdin: stdin, stdout: stdout, stderr: stderr, idlePolicy: true))
            }
            t.start()
        }
    }
}
