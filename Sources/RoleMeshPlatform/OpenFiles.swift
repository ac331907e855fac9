import Glibc

/// The open-files limit. A service gets a soft limit of 1,024 from systemd by default (the hard
/// one is far higher), and every connection, pipe and task holds descriptors: the agent raises the
/// soft limit to the hard one when it starts, as systemd advises long-running services to do.
public enum OpenFiles {
    /// Raises the soft RLIMIT_NOFILE to the hard one (at most 2^20); returns the soft limit now.
    @discardableResult
    public static func raiseSoftLimit() -> Int {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var rl = rlimit()
        guard getrlimit(resource, &rl) == 0 else { return 1024 }
        let target = min(rl.rlim_max, rlim_t(1 << 20))
        if rl.rlim_cur < target {
            var raised = rl
            raised.rlim_cur = target
            if setrlimit(resource, &raised) == 0 { rl = raised }
        }
        return Int(clamping: rl.rlim_cur)
    }
}
