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
        .option(txtOption(name, text))
    }

    static func txtOption(_ name: String, _ text: String) -> String {
        var parts: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            parts.append(String(rest.prefix(250)))
            rest = rest.dropFirst(250)
        }
        return "--txt-record=\(name),\(parts.joined(separator: ","))"
    }

    /// argv[1]: the port of a dnsmasq on 127.0.0.1 serving the TXT records, or the
    /// records themselves as a JSON object (name → value).
    static let script = #"""
        import sys, json, dkim, dns.resolver
        source = sys.argv[1]
        message = sys.stdin.buffer.read()
        if source.startswith("{"):
            records = json.loads(source)
            def dnsfunc(name, timeout=5):
                value = records.get(name.decode().rstrip(".").lower())
                return value.encode() if value is not None else None
        else:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
            resolver.port = int(source)
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
    /// empty when the message has none. The keys come from the dnsmasq on `dnsPort`.
    public static func verify(_ message: [UInt8], dnsPort: Int) async throws -> [String] {
        try await run(message, source: String(dnsPort))
    }

    /// The same, with the TXT records given here (name → value) instead of looked up in DNS.
    public static func verify(_ message: [UInt8], records: [String: String]) async throws -> [String] {
        try await run(message, source: String(decoding: try JSONSerialization.data(withJSONObject: records),
                                               as: UTF8.self))
    }

    static func run(_ message: [UInt8], source: String) async throws -> [String] {
        let dir = try TemporaryDirectory.make(prefix: "herald-dkim")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/verify.py"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try await Python.run(path, [source], stdin: message, timeout: 60)
        guard result.termination.succeeded else { throw SubprocessError("dkimpy: \(result)") }
        return result.stdoutText.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// Whether OpenDKIM's verifier can run here: `opendkim-testmsg` (Debian
    /// opendkim-tools), `unshare` and `ip`, as root.
    public static var openDKIMAvailable: Bool {
        getuid() == 0 && ["/usr/sbin/opendkim-testmsg", "/usr/bin/opendkim-testmsg"]
            .contains(where: FileManager.default.isExecutableFile(atPath:))
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
            && FileManager.default.isExecutableFile(atPath: Dnsmasq.executable)
    }

    /// OpenDKIM's verdict (`opendkim-testmsg`, which has no resolver setting of its own
    /// and asks the system resolver on port 53): run in a private network and mount
    /// namespace (`unshare -mn`) whose only interface is its own loopback, where a
    /// dnsmasq on 127.0.0.1:53 serves `records` (name, TXT text) and `/etc/resolv.conf`
    /// points at it. Nothing leaves the namespace. True when the message verifies; the
    /// text is what the verifier said.
    public static func openDKIM(_ message: [UInt8], records: [(name: String, text: String)]) async throws
        -> (passed: Bool, output: String)
    {
        let dir = try TemporaryDirectory.make(prefix: "herald-opendkim")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(message).write(to: URL(fileURLWithPath: dir + "/message.eml"))
        try "nameserver 127.0.0.1\n".write(toFile: dir + "/resolv.conf", atomically: true, encoding: .utf8)
        let txt = records.map { "'" + txtOption($0.name, $0.text) + "'" }.joined(separator: " ")
        let script = """
            set -e
            ip link set lo up
            mount --bind '\(dir)/resolv.conf' /etc/resolv.conf
            \(Dnsmasq.executable) --keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null \\
                --listen-address=127.0.0.1 --bind-interfaces --port=53 --pid-file= --user=root \\
                --log-facility='\(dir)/dnsmasq.log' --local=/test/ \(txt) &
            for i in $(seq 1 50); do
                [ -s '\(dir)/dnsmasq.log' ] && grep -q 'started' '\(dir)/dnsmasq.log' && break
                sleep 0.1
            done
            set +e
            opendkim-testmsg < '\(dir)/message.eml'
            status=$?
            kill %1
            exit $status
            """
        try script.write(toFile: dir + "/verify.sh", atomically: true, encoding: .utf8)
        let result = try await Command.run("/usr/bin/unshare", ["-mn", "/bin/sh", dir + "/verify.sh"], timeout: 60)
        return (result.termination.succeeded, result.stdoutText + result.stderrText)
    }
    /// `message` without its `index`-th `DKIM-Signature` field (0 = the top one).
    public static func dropping(signature index: Int, from message: [UInt8]) -> [UInt8] {
        var lines = String(decoding: message, as: UTF8.self).components(separatedBy: "\r\n")
        var seen = -1, i = 0
        while i < lines.count && !lines[i].isEmpty {
            if lines[i].lowercased().hasPrefix("dkim-signature:") {
                seen += 1
                if seen == index {
                    lines.remove(at: i)
                    while i < lines.count, lines[i].hasPrefix(" ") || lines[i].hasPrefix("\t") { lines.remove(at: i) }
                    continue
                }
            }
            i += 1
        }
        return Array(lines.joined(separator: "\r\n").utf8)
    }

}
