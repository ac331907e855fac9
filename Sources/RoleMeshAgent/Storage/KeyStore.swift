import Foundation
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
            let pair = Ed25519.KeyPair.generate()
            // Create the secret with mode 0600 from the start, never briefly world-readable.
            let fd = open(secret.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            guard fd >= 0 else { throw MeshError(MeshError.other, "cannot create \(secret.path): \(String(cString: strerror(errno)))") }
            let text = Data(pair.seed).base64EncodedString() + "\n"
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
            try (Data(pair.publicKey).base64EncodedString() + "\n").write(to: dir.publicKey(name), atomically: true, encoding: .utf8)
            return pair
        } catch let e as MeshError {
            throw e
        } catch {
            throw MeshError(MeshError.other, "cannot write keys in \(dir.keysDir.path): \(error.localizedDescription)")
        }
    }

    /// Our own key pair. Refused (exit 78) when the secret is readable by group or others.
    public static func loadSecret(name: String, in dir: NodeDirectory) throws(MeshError) -> Ed25519.KeyPair {
        let path = dir.secretKey(name).path
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw MeshError(MeshError.config, "no secret key at \(path): run `rolemesh keygen \(name)`")
        }
        if st.st_mode & 0o077 != 0 {
            throw MeshError(MeshError.config, "\(path) is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)`")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let seed = decode(text), seed.count == Ed25519.seedSize else {
            throw MeshError(MeshError.config, "\(path) does not hold a base64 Ed25519 secret key")
        }
        return Ed25519.KeyPair(seed: seed)
    }

    /// Every readable, well-formed `keys/*.pub`; malformed files are reported and skipped.
    public static func loadTrusted(in dir: NodeDirectory, report: (String) -> Void = { _ in }) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.keysDir.path)) ?? []
        for file in files where file.hasSuffix(".pub") {
            let name = String(file.dropLast(4))
            guard NodeName.isValid(name) else { report("ignoring \(file): not a valid node name"); continue }
            guard let text = try? String(contentsOf: dir.keysDir.appendingPathComponent(file), encoding: .utf8),
                  let key = decode(text), key.count == Ed25519.publicKeySize else {
                report("ignoring \(file): not a base64 Ed25519 public key"); continue
            }
            out[name] = key
        }
        return out
    }

    /// Accepts the bare base64 text, or a line whose last word is the base64 key.
    static func decode(_ text: String) -> [UInt8]? {
        let word = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }).last.map(String.init) ?? ""
        return Data(base64Encoded: word).map { [UInt8]($0) }
    }
}
