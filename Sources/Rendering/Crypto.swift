import COpenSSLCrypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few libcrypto calls rendering needs: random bytes, HMAC-SHA256, constant-time
/// comparison.
///
/// HMAC goes through OpenSSL 3's `EVP_MAC` API ("HMAC" with digest "SHA256"): the
/// one-shot `HMAC()` lives in `<openssl/hmac.h>`, which the `COpenSSLCrypto` shim does not
/// include, and in OpenSSL 3 it is itself a wrapper over `EVP_MAC`. The algorithm is
/// fetched once and shared (fetched algorithms are immutable and thread-safe); each call
/// uses its own context.
public enum Crypto {
    /// `n` bytes from OpenSSL's CSPRNG.
    public static func randomBytes(_ n: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: n)
        let ok = bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(n)) }
        precondition(ok == 1, "RAND_bytes failed: the system has no usable entropy source")
        return bytes
    }

    private final class FetchedMAC: @unchecked Sendable {
        let mac: OpaquePointer
        let digestKey = strdup("digest")!
        let digestName = strdup("SHA256")!
        init() {
            guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { fatalError("OpenSSL has no HMAC implementation") }
            self.mac = mac
        }
    }

    private static let hmac = FetchedMAC()

    /// HMAC-SHA256 of `parts` (concatenated) under `key`.
    public static func hmacSHA256(key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        let algorithm = hmac
        guard let ctx = EVP_MAC_CTX_new(algorithm.mac) else { fatalError("EVP_MAC_CTX_new failed") }
        defer { EVP_MAC_CTX_free(ctx) }
        var params = [
            OSSL_PARAM_construct_utf8_string(algorithm.digestKey, algorithm.digestName, 0),
            OSSL_PARAM_construct_end(),
        ]
        let initialized = key.withUnsafeBufferPointer { k in
            params.withUnsafeMutableBufferPointer { p in
                EVP_MAC_init(ctx, k.baseAddress, k.count, p.baseAddress)
            }
        }
        precondition(initialized == 1, "EVP_MAC_init failed")
        for part in parts {
            let ok = part.withUnsafeBufferPointer { EVP_MAC_update(ctx, $0.baseAddress, $0.count) }
            precondition(ok == 1, "EVP_MAC_update failed")
        }
        var out = [UInt8](repeating: 0, count: 32)
        var length = 0
        let finished = out.withUnsafeMutableBufferPointer { EVP_MAC_final(ctx, $0.baseAddress, &length, 32) }
        precondition(finished == 1 && length == 32, "EVP_MAC_final failed")
        return out
    }

    /// Constant-time equality (`CRYPTO_memcmp`); false when the lengths differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) } } == 0
    }
}
