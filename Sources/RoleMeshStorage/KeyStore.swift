import RoleMeshPlatform
import RoleMeshCore

/// Trust is the presence of a file: `keys/NAME.pub` lets NAME in; our own secret is
/// `keys/NAME.secret`, readable by its owner only. Key files hold base64 text.
public enum KeyStore {
    /// Writes a new key pair; refuses to overwrite an existing secret.
    public static func generate(name: String, in dir: NodeDirectory) throws(MeshError) -> Ed25519.KeyPair {
        let fm = FileManager.default
        let secret = dir.secretKey(name)
        if fm.fileExists(atPath: secret.path) {
            throw MeshError(MeshError.cantCreate, "\(secret.path) already exists; not overwriting a secret key")
        }
        do {
            try fm.createDirectory(at: dir.keysDir, withIntermediateDirectories: true)
            // Create the secret with mode 0600 from the start, never briefly world-readable.
            let fd = open(secret.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create \(secret.path): \(String(cString: strerror(errno)))") }
            var written = false
            let pair = Ed25519.KeyPair.generate { seed in
                var text = Array((Data(seed).base64EncodedString() + "\n").utf8)
                written = FD.writeAll(fd, text) && fsync(fd) == 0
                Ed25519.wipe(&text)
            }
            close(fd)
            guard written else {
                unlink(secret.path)
                throw MeshError(MeshError.other, "cannot write \(secret.path): \(String(cString: strerror(errno)))")
            }
            try AtomicFile.replace(dir.publicKey(name), with: Data(pair.publicKey).base64EncodedString() + "\n")
            return pair
        } catch let e as MeshError {
            throw e
        } catch {
            throw MeshError(MeshError.other, "cannot write keys in \(dir.keysDir.path): \(error.sentence)")
        }
    }

    /// Our own key pair. Refused (exit 78) when the secret is a symbolic link, not a regular file,
    /// not owned by the user running the agent, or readable by group or others (as ssh does).
    public static func loadSecret(name: String, in dir: NodeDirectory) throws(MeshError) -> Ed25519.KeyPair {
        try checkSecret(name: name, in: dir)
        return try readSecret(dir.secretKey(name).path)
    }

    /// The checks `loadSecret` refuses on, alone: `rolemesh doctor` reports them.
    public static func checkSecret(name: String, in dir: NodeDirectory) throws(MeshError) {
        let path = dir.secretKey(name).path
        var st = stat()
        guard lstat(path, &st) == 0 else { throw MeshError(MeshError.config, missingSecret(name: name, in: dir)) }
        if st.st_mode & S_IFMT == S_IFLNK {
            throw MeshError(MeshError.config, "\(path) is a symbolic link; the secret key must be a regular file owned by you (replace the link with the file itself)")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw MeshError(MeshError.config, "\(path) is not a regular file")
        }
        if st.st_uid != geteuid() {
            throw MeshError(MeshError.config, "\(path) is owned by uid \(st.st_uid), not by this user (uid \(geteuid())); run `chown $(id -u) \(path)`")
        }
        if st.st_mode & 0o077 != 0 {
            throw MeshError(MeshError.config, "\(path) is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)`")
        }
    }

    /// Why there is no secret for `name`, and the fix. A typo in `name` is the likely cause when
    /// another secret is there: `keygen` would make a new identity no other device trusts, so it
    /// is suggested only when the directory has no secret at all.
    public static func missingSecret(name: String, in dir: NodeDirectory) -> String {
        let (what, fix) = missingSecretAndFix(name: name, in: dir)
        return "\(what): \(fix)"
    }

    /// The same, as what is wrong and the fix apart (`doctor` prints them on two lines).
    public static func missingSecretAndFix(name: String, in dir: NodeDirectory) -> (String, String) {
        let others = ((try? FileManager.default.contentsOfDirectory(atPath: dir.keysDir.path)) ?? [])
            .filter { $0.hasSuffix(".secret") && !$0.hasPrefix(".") }.map { String($0.dropLast(7)) }.sorted()
        let path = dir.secretKey(name).path
        switch others.count {
        case 0:
            return ("no secret key at \(path)", "restore it from a backup; only for a new identity run `rolemesh keygen \(name)` (every other device must then trust the new keys/\(name).pub)")
        case 1:
            return ("node.toml names this node \"\(name)\" but its secret key is keys/\(others[0]).secret",
                    "set name = \"\(others[0])\" in node.toml (`rolemesh keygen \(name)` would make a new identity that no other device trusts)")
        default:
            return ("node.toml names this node \"\(name)\" but keys/ holds secrets for \(others.joined(separator: ", ")), not for it",
                    "set name in node.toml to the one this device is")
        }
    }

    /// The key pair in `path`, without the ownership and mode checks: `doctor` still proves this
    /// node's identity to its seeds with a key it reports as too open. Links are refused.
    public static func readSecret(_ path: String) throws(MeshError) -> Ed25519.KeyPair {
        // Read with O_NOFOLLOW so a link swapped in after the check is refused too; wipe the copies.
        let fd = open(path, O_RDONLY | O_NOFOLLOW)
        guard fd >= 0 else { throw MeshError(MeshError.config, "cannot read \(path): \(String(cString: strerror(errno)))") }
        var raw = [UInt8](repeating: 0, count: 256)
        let n = raw.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { Ed25519.wipe(&raw) }
        guard n > 0, var seed = decode(String(decoding: raw[0..<n], as: UTF8.self)), seed.count == Ed25519.seedSize else {
            throw MeshError(MeshError.config, "\(path) does not hold a base64 Ed25519 secret key")
        }
        defer { Ed25519.wipe(&seed) }
        return Ed25519.KeyPair(seed: seed)
    }

    /// Every well-formed `keys/*.pub`; malformed files (and ones that are not regular files) are
    /// reported and skipped. Fails when the folder cannot be listed or a key file cannot be read
    /// (out of descriptors, permissions, I/O): "cannot read" is never taken as "no keys".
    public static func loadTrusted(in dir: NodeDirectory, report: (String) -> Void = { _ in }) throws(MeshError) -> [String: [UInt8]] {
        try loadKeys(at: dir.keysDir.path, report: report)
    }

    /// Every well-formed `*.pub` in `path` (`keys/`, or `keys/revoked/`).
    public static func loadKeys(at path: String, report: (String) -> Void = { _ in }) throws(MeshError) -> [String: [UInt8]] {
        try loadKeyFiles(at: path, report: report).mapValues(\.key)
    }

    /// The same, with what each file's comment lines say (`# granted:`, `# introduced by`).
    public static func loadKeyFiles(at path: String, report: (String) -> Void = { _ in }) throws(MeshError) -> [String: KeyFile] {
        guard let d = opendir(path) else {
            throw MeshError(MeshError.other, "cannot list \(path): \(String(cString: strerror(errno)))")
        }
        var files: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(d) else {
                let err = errno
                closedir(d)
                if err != 0 { throw MeshError(MeshError.other, "cannot list \(path): \(String(cString: strerror(err)))") }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            files.append(name)
        }
        var out: [String: KeyFile] = [:]
        for file in files.sorted() where file.hasSuffix(".pub") {
            let name = String(file.dropLast(4))
            guard NodeName.isValid(name) else { report("ignoring \(file): not a valid node name"); continue }
            let text: String
            switch readSmallFile(path + "/" + file) {
            case .success(let t?): text = t
            case .success(nil): report("ignoring \(file): not a regular file"); continue
            case .failure(let e) where e.code == ENOENT: continue       // removed since the listing: not trusted
            case .failure(let e): throw MeshError(MeshError.other, "cannot read \(path)/\(file): \(e.message)")
            }
            guard let key = decode(text), key.count == Ed25519.publicKeySize else {
                report("ignoring \(file): not a base64 Ed25519 public key"); continue
            }
            out[name] = KeyFile(text: text, key: key)
        }
        return out
    }

    /// The text of a regular file (up to 64 KiB), nil if it is not a regular file, or the errno
    /// (as the code) and its sentence.
    public static func readSmallFile(_ path: String) -> Result<String?, MeshError> {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .failure(MeshError(errno, String(cString: strerror(errno)))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(MeshError(errno, String(cString: strerror(errno)))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .success(nil) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65_536 {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(MeshError(errno, String(cString: strerror(errno)))) }
            if n == 0 { break }
            bytes += buf[0..<n]
        }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    /// Accepts the bare base64 text, or a line whose last word is the base64 key (comment lines
    /// such as `# granted: ...` come before it).
    public static func decode(_ text: String) -> [UInt8]? {
        let word = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }).last.map(String.init) ?? ""
        return Data(base64Encoded: word).map { [UInt8]($0) }
    }
}
