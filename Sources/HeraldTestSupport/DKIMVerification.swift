import Foundation

/// DKIM checks by an independent verifier: dkimpy (PyPI `dkimpy`, with `dnspython` and
/// `PyNaCl` for Ed25519), looking the public keys up over DNS in a private dnsmasq that
/// serves them as TXT records.
public enum DKIMVerification {
    /// Whether dkimpy can run here (scripts/test installs it).
    public static var isAvailable: Bool {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import dkim, dns.resolver, nacl"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }

    /// The dnsmasq option that publishes `text` as the TXT record `name` (strings of at
    /// most 250 octets, which a verifier joins; dnsmasq splits its argument at commas and
    /// keeps quotes, so `text` must have no comma).
    public static func txtRecord(_ name: String, _ text: String) -> Dnsmasq.Record {
        var parts: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            parts.append(String(rest.prefix(250)))
            rest = rest.dropFirst(250)
        }
        return .option("--txt-record=\(name),\(parts.joined(separator: ","))")
    }

    static let script = #"""
        import sys, dkim, dns.resolver
        port = int(sys.argv[1])
        message = sys.stdin.buffer.read()
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = port
        def dnsfunc(name, timeout=5):
            try:
                answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
            except Exception:
                return None
            return b"".join(b"".join(r.strings) for r in answer)
        d = dkim.DKIM(message)
        count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
        results = []
        for i in range(count):
            try:
                ok = d.verify(idx=i, dnsfunc=dnsfunc)
            except Exception as e:
                print("signature %d: %s" % (i, e), file=sys.stderr)
                ok = False
            results.append("pass" if ok else "fail")
        print(" ".join(results))
        """#

    /// dkimpy's verdict on each `DKIM-Signature` of `message`, top first ("pass"/"fail");
    /// empty when the message has none.
    public static func verify(_ message: [UInt8], dnsPort: Int) async throws -> [String] {
        let dir = try TemporaryDirectory.make(prefix: "herald-dkim")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/verify.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await Python.run(path, [String(dnsPort)], stdin: message, timeout: 60)
        guard result.termination.succeeded else { throw SubprocessError("dkimpy: \(result)") }
        return result.stdoutText.split(whereSeparator: \.isWhitespace).map(String.init)
    }
}
