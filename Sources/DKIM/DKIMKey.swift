import COpenSSLCrypto
import Foundation

/// The two signing algorithms Herald writes: `rsa-sha256` (RFC 6376, keys of at least
/// 1,024 bits, RFC 8301; 2,048 recommended) and `ed25519-sha256` (RFC 8463).
public enum DKIMAlgorithm: String, Sendable, CaseIterable {
    case rsaSHA256 = "rsa-sha256"
    case ed25519SHA256 = "ed25519-sha256"

    /// The `k=` of the DNS record.
    public var keyType: String { self == .rsaSHA256 ? "rsa" : "ed25519" }
}

public struct DKIMError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A private signing key for one domain and selector, loaded from PEM (PKCS#8 or
/// traditional RSA). The algorithm follows from the key.
public final class DKIMKey: @unchecked Sendable {
    /// The signing domain (`d=`), lower case.
    public let domain: String
    /// The selector (`s=`): the record is `<selector>._domainkey.<domain>`.
    public let selector: String
    public let algorithm: DKIMAlgorithm
    /// An `EVP_PKEY`; only read after init (OpenSSL allows concurrent signing with one key).
    private let pkey: OpaquePointer

    public init(domain: String, selector: String, pem: [UInt8]) throws {
        let domain = domain.lowercased().trimmingTrailingDot
        guard !domain.isEmpty, !selector.isEmpty,
              selector.utf8.allSatisfy({ Self.isSelectorByte($0) }) else {
            throw DKIMError("a DKIM key needs a domain and a selector of letters, digits, '-', '_' and '.'")
        }
        let loaded: OpaquePointer? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let pkey = loaded else {
            ERR_clear_error()
            throw DKIMError("\(selector)._domainkey.\(domain): not a PEM private key")
        }
        switch EVP_PKEY_get_base_id(pkey) {
        case EVP_PKEY_RSA:
            guard EVP_PKEY_get_bits(pkey) >= 1024 else {
                EVP_PKEY_free(pkey)
                throw DKIMError("\(selector)._domainkey.\(domain): an RSA key needs at least 1024 bits (2048 recommended)")
            }
            algorithm = .rsaSHA256
        case EVP_PKEY_ED25519:
            algorithm = .ed25519SHA256
        default:
            EVP_PKEY_free(pkey)
            throw DKIMError("\(selector)._domainkey.\(domain): the key is neither RSA nor Ed25519")
        }
        self.pkey = pkey
        self.domain = domain
        self.selector = selector
    }

    deinit { EVP_PKEY_free(pkey) }

    static func isSelectorByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
            || b == 0x2E
    }

    /// Where the public key is published.
    public var recordName: String { "\(selector)._domainkey.\(domain)" }

    /// The TXT record's text: `v=DKIM1; k=rsa; p=<SubjectPublicKeyInfo, base64>` or, for
    /// Ed25519, `k=ed25519; p=<the raw 32-byte key, base64>` (RFC 8463 §4).
    public var record: String {
        "v=DKIM1; k=\(algorithm.keyType); p=\(Base64.encode(publicKey))"
    }

    var publicKey: [UInt8] {
        switch algorithm {
        case .rsaSHA256:
            let length = i2d_PUBKEY(pkey, nil)
            guard length > 0 else { return [] }
            var der = [UInt8](repeating: 0, count: Int(length))
            der.withUnsafeMutableBufferPointer { buffer in
                var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
                _ = i2d_PUBKEY(pkey, &cursor)
            }
            return der
        case .ed25519SHA256:
            var raw = [UInt8](repeating: 0, count: 32)
            var length = 32
            guard EVP_PKEY_get_raw_public_key(pkey, &raw, &length) == 1 else { return [] }
            return Array(raw.prefix(length))
        }
    }

    /// The signature over `data` (the canonical headers): RSASSA-PKCS1-v1_5 with SHA-256,
    /// or PureEdDSA over SHA-256(`data`) for ed25519-sha256.
    func sign(_ data: [UInt8]) throws -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { throw DKIMError("EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        let input = algorithm == .rsaSHA256 ? data : SHA256.hash(data)
        let digest = algorithm == .rsaSHA256 ? EVP_sha256() : nil
        guard EVP_DigestSignInit(ctx, nil, digest, nil, pkey) == 1 else {
            ERR_clear_error()
            throw DKIMError("\(recordName): cannot start signing")
        }
        var length = 0
        guard EVP_DigestSign(ctx, nil, &length, input, input.count) == 1 else {
            ERR_clear_error()
            throw DKIMError("\(recordName): cannot size the signature")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &signature, &length, input, input.count) == 1 else {
            ERR_clear_error()
            throw DKIMError("\(recordName): signing failed")
        }
        return Array(signature.prefix(length))
    }
}

/// SHA-256 through libcrypto.
public enum SHA256 {
    public static func hash(_ data: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = data.withContiguousStorageIfAvailable { buffer in
            EVP_Digest(buffer.baseAddress, buffer.count, &out, &length, EVP_sha256(), nil)
        } ?? Array(data).withUnsafeBufferPointer { buffer in
            EVP_Digest(buffer.baseAddress, buffer.count, &out, &length, EVP_sha256(), nil)
        }
        precondition(ok == 1 && length == 32, "EVP_Digest(SHA-256) failed")
        return out
    }
}

enum Base64 {
    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}

extension String {
    var trimmingTrailingDot: String { hasSuffix(".") ? String(dropLast()) : self }
}

extension DKIMKey {
    /// A new private key in PEM (PKCS#8): RSA of `bits` bits (2,048 by default) or Ed25519.
    public static func generate(_ algorithm: DKIMAlgorithm, bits: Int32 = 2048) throws -> [UInt8] {
        let id = algorithm == .rsaSHA256 ? EVP_PKEY_RSA : EVP_PKEY_ED25519
        guard let ctx = EVP_PKEY_CTX_new_id(id, nil) else { throw DKIMError("EVP_PKEY_CTX_new_id failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1,
              algorithm != .rsaSHA256 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) == 1
        else {
            ERR_clear_error()
            throw DKIMError("cannot set up \(algorithm.rawValue) key generation")
        }
        var pkey: OpaquePointer?
        guard EVP_PKEY_keygen(ctx, &pkey) == 1, let pkey else {
            ERR_clear_error()
            throw DKIMError("\(algorithm.rawValue) key generation failed")
        }
        defer { EVP_PKEY_free(pkey) }
        guard let bio = BIO_new(BIO_s_mem()) else { throw DKIMError("BIO_new failed") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_PrivateKey(bio, pkey, nil, nil, 0, nil, nil) == 1 else {
            ERR_clear_error()
            throw DKIMError("cannot write the key as PEM")
        }
        var pem: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = BIO_read(bio, &chunk, Int32(chunk.count))
            if n <= 0 { break }
            pem += chunk.prefix(Int(n))
        }
        return pem
    }

    /// The record as a zone-file line: `<name>. IN TXT "…" "…"` in strings of at most 255
    /// octets, as DNS wants them.
    public var zoneLine: String {
        var strings: [String] = []
        var rest = Substring(record)
        while !rest.isEmpty {
            strings.append("\"\(rest.prefix(255))\"")
            rest = rest.dropFirst(255)
        }
        return "\(recordName). IN TXT " + strings.joined(separator: " ")
    }
}
