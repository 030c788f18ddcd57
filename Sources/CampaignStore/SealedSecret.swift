import COpenSSLCrypto
import DKIM
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Secrets kept in the database (the private keys of DKIM keys made over the API),
/// sealed with AES-256-GCM under a key of the Herald nodes (`[database]
/// encryption_secret`), so that a copy of the database alone gives none of them away.
///
/// A sealed value is `base64(nonce (12 octets) ‖ ciphertext ‖ tag (16 octets))`, with a
/// fresh random nonce each time. The associated data names the row it belongs to
/// (`dkim:<tenant>:<domain>:<selector>`): a sealed key copied into another row does not open.
public struct SecretSealer: Sendable {
    let key: [UInt8]

    /// The sealing key is the SHA-256 of a fixed label and `secret` (at least 32 octets).
    public init(secret: [UInt8]) {
        precondition(secret.count >= 32, "the encryption secret needs at least 32 bytes")
        key = SHA256.hash(Array("herald sealed secrets v1".utf8) + secret)
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public func seal(_ plaintext: [UInt8], context: String) throws -> String {
        var nonce = [UInt8](repeating: 0, count: 12)
        guard nonce.withUnsafeMutableBufferPointer({ RAND_bytes($0.baseAddress, 12) }) == 1 else {
            throw Failure(description: "no random bytes for a nonce")
        }
        let (ciphertext, tag) = try run(encrypt: true, nonce: nonce, input: plaintext, aad: Array(context.utf8), tag: nil)
        return Data(nonce + ciphertext + tag).base64EncodedString()
    }

    public func open(_ sealed: String, context: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: sealed), data.count >= 28 else {
            throw Failure(description: "not a sealed value")
        }
        let bytes = Array(data)
        let nonce = Array(bytes[..<12]), tag = Array(bytes[(bytes.count - 16)...])
        return try run(encrypt: false, nonce: nonce, input: Array(bytes[12..<(bytes.count - 16)]),
                       aad: Array(context.utf8), tag: tag).output
    }

    private func run(encrypt: Bool, nonce: [UInt8], input: [UInt8], aad: [UInt8], tag: [UInt8]?) throws
        -> (output: [UInt8], tag: [UInt8])
    {
        guard let ctx = EVP_CIPHER_CTX_new() else { throw Failure(description: "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let initialized = key.withUnsafeBufferPointer { k in
            nonce.withUnsafeBufferPointer { n in
                encrypt ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nil, k.baseAddress, n.baseAddress)
                        : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nil, k.baseAddress, n.baseAddress)
            }
        }
        guard initialized == 1 else { throw Failure(description: "cipher init failed") }
        var length: Int32 = 0
        if !aad.isEmpty {
            let ok = aad.withUnsafeBufferPointer { a in
                encrypt ? EVP_EncryptUpdate(ctx, nil, &length, a.baseAddress, Int32(a.count))
                        : EVP_DecryptUpdate(ctx, nil, &length, a.baseAddress, Int32(a.count))
            }
            guard ok == 1 else { throw Failure(description: "cipher AAD failed") }
        }
        var output = [UInt8](repeating: 0, count: input.count + 16)
        var written: Int32 = 0
        if !input.isEmpty {
            let ok = input.withUnsafeBufferPointer { i in
                output.withUnsafeMutableBufferPointer { o in
                    encrypt ? EVP_EncryptUpdate(ctx, o.baseAddress, &written, i.baseAddress, Int32(i.count))
                            : EVP_DecryptUpdate(ctx, o.baseAddress, &written, i.baseAddress, Int32(i.count))
                }
            }
            guard ok == 1 else { throw Failure(description: "cipher update failed") }
        }
        if var tag, !encrypt {
            let ok = tag.withUnsafeMutableBytes { EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, $0.baseAddress) }
            guard ok == 1 else { throw Failure(description: "cipher tag failed") }
        }
        var final: Int32 = 0
        let finished = output.withUnsafeMutableBufferPointer { o in
            encrypt ? EVP_EncryptFinal_ex(ctx, o.baseAddress.map { $0 + Int(written) }, &final)
                    : EVP_DecryptFinal_ex(ctx, o.baseAddress.map { $0 + Int(written) }, &final)
        }
        guard finished == 1 else {
            throw Failure(description: "the sealed value does not open (wrong encryption secret, or altered)")
        }
        output.removeSubrange(Int(written + final)...)
        var outTag = [UInt8](repeating: 0, count: 16)
        if encrypt {
            let ok = outTag.withUnsafeMutableBytes { EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, $0.baseAddress) }
            guard ok == 1 else { throw Failure(description: "cipher tag failed") }
        }
        return (output, outTag)
    }
}
