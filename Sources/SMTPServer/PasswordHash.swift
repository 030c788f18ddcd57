import COpenSSLCrypto
import Foundation

/// Salted password hashes for SMTP AUTH users, PBKDF2-HMAC-SHA256 through OpenSSL.
///
/// Format (one string, safe in TOML): `$pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>`.
/// `herald passwd` prints one; `[[user]] password_hash` stores it.
public enum PasswordHash {
    public static let defaultIterations = 310_000
    static let prefix = "$pbkdf2-sha256$"

    public static func make(password: String, iterations: Int = defaultIterations) -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        precondition(RAND_bytes(&salt, Int32(salt.count)) == 1, "OpenSSL RAND_bytes failed")
        let key = derive(password: password, salt: salt, iterations: iterations)
        return "\(prefix)\(iterations)$\(Data(salt).base64EncodedString())$\(Data(key).base64EncodedString())"
    }

    /// Whether `hash` has the shape `make` produces.
    public static func isWellFormed(_ hash: String) -> Bool { parse(hash) != nil }

    /// Constant-time check of `password` against `hash`; false for a malformed hash.
    public static func verify(password: String, against hash: String) -> Bool {
        guard let (iterations, salt, expected) = parse(hash) else { return false }
        let key = derive(password: password, salt: salt, iterations: iterations, length: expected.count)
        return key.withUnsafeBytes { a in
            expected.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 }
        }
    }

    static func parse(_ hash: String) -> (Int, [UInt8], [UInt8])? {
        guard hash.hasPrefix(prefix) else { return nil }
        let parts = hash.dropFirst(prefix.count).split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, let iterations = Int(parts[0]), (1000...10_000_000).contains(iterations),
              let salt = Data(base64Encoded: String(parts[1])), salt.count >= 8,
              let key = Data(base64Encoded: String(parts[2])), key.count >= 16
        else { return nil }
        return (iterations, Array(salt), Array(key))
    }

    static func derive(password: String, salt: [UInt8], iterations: Int, length: Int = 32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let pw = Array(password.utf8)
        let ok = pw.withUnsafeBufferPointer { p in
            PKCS5_PBKDF2_HMAC(
                p.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                Int32(pw.count), salt, Int32(salt.count), Int32(iterations), EVP_sha256(), Int32(length), &out)
        }
        precondition(ok == 1, "OpenSSL PKCS5_PBKDF2_HMAC failed")
        return out
    }
}
