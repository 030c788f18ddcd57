import ArgumentParser
import DKIM
import Foundation

struct DKIMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dkim", abstract: "DKIM signing keys.", subcommands: [DKIMKeygen.self])
}

/// `herald dkim keygen`: a new key in a file of its own (0600, never overwritten), the
/// TXT record to publish and the `[[dkim]]` entry that uses it.
struct DKIMKeygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make a signing key, write it to a file and print the DNS record and the [[dkim]] entry.")

    @Option(help: "The signing domain (d=), e.g. example.org: it signs mail From that domain and its subdomains.")
    var domain: String
    @Option(help: "The selector (s=): the record is <selector>._domainkey.<domain>.")
    var selector: String
    @Option(help: "rsa-sha256 (2048 bits) or ed25519-sha256.")
    var algorithm: String = DKIMAlgorithm.rsaSHA256.rawValue
    @Option(help: "Where to write the private key (PEM). Default: var/dkim/<domain>.<selector>.pem.")
    var out: String?

    func run() throws {
        guard let algorithm = DKIMAlgorithm(rawValue: algorithm) else {
            throw ValidationError("--algorithm must be rsa-sha256 or ed25519-sha256")
        }
        let pem = try DKIMKey.generate(algorithm)
        let key = try DKIMKey(domain: domain, selector: selector, pem: pem)
        let path = out ?? "var/dkim/\(key.domain).\(key.selector).pem"
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        // O_EXCL: an existing key (maybe published already) is never replaced.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { fail("cannot create \(path): \(String(cString: strerror(errno)))") }
        let written = pem.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == pem.count, fsync(fd) == 0, close(fd) == 0 else { fail("cannot write \(path)") }
        print("""
            # private key: \(path)
            # publish this TXT record in DNS:
            \(key.zoneLine)
            # and add to the configuration:
            [[dkim]]
            domain = "\(key.domain)"
            selector = "\(key.selector)"
            algorithm = "\(key.algorithm.rawValue)"
            private_key = "\(path)"
            """)
    }
}
