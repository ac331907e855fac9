import Glibc
import FoundationEssentials

extension FileManager {
    /// Whether `path` is a directory, links followed: `fileExists(atPath:isDirectory:)` without
    /// its `ObjCBool`, which FoundationEssentials on Linux does not have and Darwin requires.
    public func isDirectory(atPath path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR
    }
}
