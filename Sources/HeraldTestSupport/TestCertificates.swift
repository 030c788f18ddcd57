import Foundation

/// A private CA and server certificates for TLS tests, made with Python's
/// `cryptography`: `valid` (signed by the CA, for 127.0.0.1 and localhost),
/// `wrongName` (signed by the CA, for other.test only), `expired` (signed by the CA, for
/// 127.0.0.1, valid in 2020 only) and `selfSigned` (for 127.0.0.1, signed by itself).
public struct TestCertificates: Sendable {
    public typealias Pair = (cert: String, key: String)
    public let directory: String
    public var caFile: String { directory + "/ca.pem" }
    public var valid: Pair { pair("valid") }
    public var wrongName: Pair { pair("wrongname") }
    public var expired: Pair { pair("expired") }
    public var selfSigned: Pair { pair("selfsigned") }

    func pair(_ name: String) -> Pair { (directory + "/\(name).pem", directory + "/\(name).key") }

    static let script = #"""
        import datetime, ipaddress, sys
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        out = sys.argv[1]
        now = datetime.datetime.now(datetime.timezone.utc)

        def key():
            return ec.generate_private_key(ec.SECP256R1())

        def save(name, cert, k):
            open(f"{out}/{name}.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
            if k is not None:
                open(f"{out}/{name}.key", "wb").write(k.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

        def name(cn):
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        ca_key = key()
        ca = (x509.CertificateBuilder().subject_name(name("Herald Test CA")).issuer_name(name("Herald Test CA"))
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        save("ca", ca, None)

        def server(file, sans, before, after, self_signed=False):
            k = key()
            issuer_key, issuer = (k, name(file)) if self_signed else (ca_key, ca.subject)
            cert = (x509.CertificateBuilder().subject_name(name(file)).issuer_name(issuer)
                    .public_key(k.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(before).not_valid_after(after)
                    .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                    .sign(issuer_key, hashes.SHA256()))
            save(file, cert, k)

        local = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        day = datetime.timedelta(days=1)
        server("valid", local, now - day, now + 30 * day)
        server("wrongname", [x509.DNSName("other.test")], now - day, now + 30 * day)
        old = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        server("expired", local, old, old + 30 * day)
        server("selfsigned", local, now - day, now + 30 * day, self_signed=True)
        """#

    /// Makes all of them in a new temporary directory (removed by `remove()`).
    public static func make() async throws -> TestCertificates {
        let dir = try TemporaryDirectory.make(prefix: "herald-certs")
        let path = dir + "/make.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await Python.run(path, [dir], timeout: 60)
        guard result.termination.succeeded else { throw SubprocessError("certificate generation failed: \(result)") }
        return TestCertificates(directory: dir)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
