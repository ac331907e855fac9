import RoleMeshPlatform

/// Background runs start at the lowest CPU and I/O priority, all three set before the task's
/// first instruction, so nothing it forks ever runs higher: SCHED_IDLE, nice 19 and the idle I/O
/// class. posix_spawn cannot set them (glibc's `posix_spawnattr_setschedpolicy` refuses
/// SCHED_IDLE; there is no attribute for nice or I/O priority), but on Linux all three belong to
/// a thread and a child inherits them: so the spawn runs on a fresh thread that first lowers its
/// own, then ends. No wrapper program, no shell. (A SCHED_IDLE thread still gets a sliver of CPU
/// on a busy machine, so the spawn is slow there at worst, never stuck.)
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
    static let ioprioSet = 251
    #elseif arch(arm64)
    static let ioprioSet = 30
    #else
    static let ioprioSet = -1
    #endif
    static let whoProcess: Int32 = 1    // IOPRIO_WHO_PROCESS: with 0, the calling thread

    /// Lowers the calling thread's scheduling class, nice and I/O class (for good: use a thread of its own).
    static func lowerThisThread() {
        var param = sched_param()
        _ = sched_setscheduler(0, schedIdle, &param)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        if ioprioSet >= 0 { _ = syscall3?(ioprioSet, whoProcess, 0, idleIOClass) }
    }

    /// `Spawn.start` at the lowest priority, on a thread of its own (see above).
    static func spawn(path: String, args: [String], environment: [String], directory: String,
                      stdin: Int32, stdout: Int32, stderr: Int32) async -> Result<pid_t, Spawn.Errno> {
        await withCheckedContinuation { c in
            OwnThread.start(name: "rolemesh.spawn") {
                lowerThisThread()
                c.resume(returning: Spawn.start(path: path, args: args, environment: environment, directory: directory,
                                                stdin: stdin, stdout: stdout, stderr: stderr))
            }
        }
    }
}
