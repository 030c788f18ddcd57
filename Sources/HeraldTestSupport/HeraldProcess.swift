import Foundation
import Spool

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A `herald serve` process for integration tests: a generated config in a fresh
/// temporary directory (spool, log, self-signed TLS pair), ephemeral ports learnt from
/// the log's `listening address=` lines, the postmaster CLI on the same config, and
/// stop (SIGTERM) / kill (SIGKILL) / restart.
///
/// Prefer `HeraldProcess.with(_:_:)`, which always kills the process and removes the
/// directory, whether the test body returns or throws. Set `HERALD_KEEP_TEST_DIRS=1`
/// to keep the directories for a post-mortem.
public final class HeraldProcess: @unchecked Sendable {
    // MARK: Options

    public struct Listener: Sendable {
        public var role: String
        public var tls: String
        /// nil: Herald's default for the role.
        public var trustedNetworks: [String]?
        public var allowPlaintextAuth: Bool?
        /// "127.0.0.1:0" = an ephemeral port on loopback.
        public var address: String

        public init(role: String = "relay", tls: String = "starttls", trustedNetworks: [String]? = nil,
                    allowPlaintextAuth: Bool? = nil, address: String = "127.0.0.1:0") {
            self.role = role
            self.tls = tls
            self.trustedNetworks = trustedNetworks
            self.allowPlaintextAuth = allowPlaintextAuth
            self.address = address
        }

        /// A relay listener; loopback is trusted unless `trusted` says otherwise.
        public static func relay(tls: String = "starttls", trusted: [String]? = ["127.0.0.0/8"]) -> Listener {
            Listener(role: "relay", tls: tls, trustedNetworks: trusted)
        }

        /// A relay listener on which loopback is *not* trusted (open-relay tests).
        public static func untrustedRelay(tls: String = "starttls") -> Listener {
            Listener(role: "relay", tls: tls, trustedNetworks: ["10.0.0.0/8"])
        }

        public static func submission(tls: String = "starttls", allowPlaintextAuth: Bool? = nil) -> Listener {
            Listener(role: "submission", tls: tls, allowPlaintextAuth: allowPlaintextAuth)
        }
    }

    public struct User: Sendable {
        public var name: String
        public var password: String
        /// `[[user]] tenant`.
        public var tenant: String?
        public init(_ name: String, _ password: String, tenant: String? = nil) {
            self.name = name
            self.password = password
            self.tenant = tenant
        }
    }

    public struct Options: Sendable {
        public var hostname = "mx.test"
        public var listeners: [Listener] = [.relay()]
        public var users: [User] = []
        public var maxMessageSize: Int?
        public var maxRecipients: Int?
        public var maxErrors: Int?
        public var maxConnections: Int?
        public var maxConnectionsPerClient: Int?
        public var commandTimeout: String?
        public var dataTimeout: String?
        public var greetingDelay: String? = "0s"
        public var authFailureDelay: String? = "100ms"
        public var shutdownGrace: String? = "10s"
        public var logLevel = "info"
        /// How long `start`/`restart` wait for the listeners (recovery of a large spool
        /// runs before them).
        public var startTimeout: Double = 30
        /// Where the process's directory is made; nil = `$TMPDIR` or /tmp.
        public var directoryBase: String?
        public var committers: Int?
        /// `[spool] journal`; nil = the configuration's default.
        public var spoolJournal: Bool?
        /// Start the HTTP API on an ephemeral port (off by default: `[http] address = ""`).
        public var http = false
        /// With `http`: the `[http] address` to bind (e.g. "127.0.0.1:PORT", a port picked
        /// up front so that `public_url` can name it); nil = an ephemeral port.
        public var httpAddress: String?
        /// Extra lines appended to the `[http]` table verbatim (`public_url = "…"`,
        /// `unsubscribe_secret = "…"`).
        public var extraHTTP: [String] = []
        /// `[[api_key]]` tables: tenant and the SHA-256 hex of its key.
        public var apiKeys: [(tenant: String, sha256: String)] = []
        /// Extra lines appended to the `[smtp]` table verbatim.
        public var extraSMTP: [String] = []
        /// `[delivery] enabled`: off by default, so that accepted mail stays in the spool
        /// where the tests look for it (no MX lookups, no bounces).
        public var deliveryEnabled = false
        /// Extra TOML appended at the end of the file verbatim (whole tables: `[dns]`, `[[route]]`…).
        public var extraTOML: [String] = []
        /// Extra lines appended to the `[delivery]` table verbatim (`minimal_backoff = "1s"`…).
        public var extraDelivery: [String] = []

        public init(listeners: [Listener] = [.relay()], users: [User] = []) {
            self.listeners = listeners
            self.users = users
        }
    }

    // MARK: State

    /// The options of the running (or last started) process; `restart(with:)` changes them.
    public var options: Options { lock.withLock { currentOptions } }
    private var currentOptions: Options
    /// The temporary directory holding config, spool, log and TLS files.
    public let directory: String
    /// Whether this server commits through the spool journal (its option, else
    /// `HERALD_TEST_SPOOL_JOURNAL`, else the default: off).
    public var usesSpoolJournal: Bool {
        options.spoolJournal ?? Self.spoolJournalDefault ?? false
    }

    /// HERALD_TEST_SPOOL_JOURNAL=1|0 sets `[spool] journal` for every test that does not set
    /// it itself.
    static let spoolJournalDefault = ProcessInfo.processInfo.environment["HERALD_TEST_SPOOL_JOURNAL"].map { $0 == "1" }

    public var configPath: String { directory + "/herald.toml" }
    public var spoolPath: String { directory + "/spool" }
    public var logPath: String { directory + "/log/herald.log" }
    public var certificatePath: String { directory + "/cert.pem" }
    public var privateKeyPath: String { directory + "/key.pem" }
    public var stdoutPath: String { directory + "/stdout.txt" }
    public var stderrPath: String { directory + "/stderr.txt" }
    /// The delivery log, `<log.path>/delivery.jsonl`.
    public var deliveryLogPath: String { directory + "/log/delivery.jsonl" }

    private let lock = NSLock()
    private var child: ChildProcess?
    private var boundPorts: [Int] = []
    private var passwordHashes: [String] = []
    private var cleanedUp = false

    /// The bound ports, one per listener, in config order.
    public var ports: [Int] { lock.withLock { boundPorts } }
    public func port(_ listener: Int = 0) -> Int { ports[listener] }
    /// The first listener with this role.
    public func port(role: String) -> Int {
        let i = options.listeners.firstIndex { $0.role == role } ?? 0
        return ports[i]
    }

    public var pid: Int32? { lock.withLock { child?.pid } }
    public var isRunning: Bool { lock.withLock { child?.isRunning ?? false } }

    // MARK: Binary

    /// `$HERALD_BIN`, else `<package root>/.build/debug/herald`.
    public static var binary: String {
        if let env = ProcessInfo.processInfo.environment["HERALD_BIN"], !env.isEmpty { return env }
        return packageRoot + "/.build/debug/herald"
    }

    /// The package root, from this file's path (Sources/HeraldTestSupport/HeraldProcess.swift).
    public static var packageRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    // MARK: Life cycle

    private init(options: Options, directory: String) {
        self.currentOptions = options
        self.directory = directory
    }

    deinit {
        cleanup()
    }

    /// Starts Herald with a generated config; returns once every listener is bound.
    public static func start(_ options: Options = Options()) async throws -> HeraldProcess {
        let directory = try TemporaryDirectory.make(prefix: "herald-it", base: options.directoryBase)
        let herald = HeraldProcess(options: options, directory: directory)
        do {
            try await herald.prepare()
            try await herald.launch(ports: nil)
        } catch {
            herald.cleanup()
            throw error
        }
        return herald
    }

    /// Runs `body` with a started Herald, then kills it and removes its directory,
    /// also when `body` throws.
    public static func with<T>(_ options: Options = Options(),
                               _ body: (HeraldProcess) async throws -> T) async throws -> T {
        let herald = try await start(options)
        do {
            let result = try await body(herald)
            await herald.shutdown()
            return result
        } catch {
            await herald.shutdown()
            throw error
        }
    }

    /// Kills the process (if still running) and removes the directory.
    public func shutdown() async {
        let c = lock.withLock { child }
        if let c, c.isRunning { await c.killAndWait() }
        cleanup()
    }

    /// Synchronous last resort (deinit): SIGKILL without waiting, remove the directory.
    public func cleanup() {
        let (c, already) = lock.withLock { () -> (ChildProcess?, Bool) in
            let already = cleanedUp
            cleanedUp = true
            return (child, already)
        }
        if let c, c.isRunning { c.send(SIGKILL) }
        if !already && ProcessInfo.processInfo.environment["HERALD_KEEP_TEST_DIRS"] != "1" {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// SIGTERM (graceful shutdown), then waits; SIGKILL after `timeout`. Returns how it ended.
    @discardableResult
    public func stop(timeout: Double = 30) async -> Termination? {
        guard let c = lock.withLock({ child }) else { return nil }
        if let done = c.exit { return done }
        c.send(SIGTERM)
        if let t = await c.wait(timeout: timeout) { return t }
        return await c.killAndWait()
    }

    /// Sends SIGTERM without waiting (graceful-shutdown tests).
    public func terminate() {
        lock.withLock { child }?.send(SIGTERM)
    }

    /// Waits for the process to exit on its own (after `terminate()`).
    public func waitForExit(timeout: Double = 30) async -> Termination? {
        guard let c = lock.withLock({ child }) else { return nil }
        return await c.wait(timeout: timeout)
    }

    /// SIGKILL, then waits until the process is gone.
    @discardableResult
    public func kill() async -> Termination? {
        guard let c = lock.withLock({ child }) else { return nil }
        return await c.killAndWait()
    }

    /// Starts Herald again on the same ports and directory (so that recovery runs on the
    /// same spool). Kills the previous process first if it still runs.
    public func restart() async throws {
        if let c = lock.withLock({ child }), c.isRunning { await c.killAndWait() }
        try await launch(ports: ports)
    }

    /// Like `restart()`, with changed options (e.g. delivery turned on, other `extraTOML`).
    /// Keep the same listeners: they get their previous ports back.
    public func restart(with options: Options) async throws {
        if let c = lock.withLock({ child }), c.isRunning { await c.killAndWait() }
        lock.withLock { currentOptions = options }
        var hashes: [String] = []
        for user in options.users { hashes.append(try await Self.passwordHash(user.password)) }
        lock.withLock { passwordHashes = hashes }
        try await launch(ports: ports)
    }

    // MARK: Internals

    private func prepare() async throws {
        try FileManager.default.createDirectory(atPath: directory + "/log", withIntermediateDirectories: true)
        if options.listeners.contains(where: { $0.tls != "off" }) {
            let r = try await Command.run("openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-days", "2", "-subj", "/CN=mx.test",
                "-addext", "subjectAltName=DNS:mx.test,DNS:localhost,IP:127.0.0.1",
                "-keyout", privateKeyPath, "-out", certificatePath,
            ], timeout: 30)
            guard r.termination.succeeded else { throw SubprocessError("openssl req failed: \(r)") }
        }
        var hashes: [String] = []
        for user in options.users {
            hashes.append(try await Self.passwordHash(user.password))
        }
        passwordHashes = hashes
    }

    private static let hashCache = HashCache()

    /// `herald passwd --iterations 1000` (cheap hashes: tests are not about PBKDF2 cost).
    public static func passwordHash(_ password: String) async throws -> String {
        if let cached = hashCache.get(password) { return cached }
        let r = try await Command.run(binary, ["passwd", "--iterations", "1000"], stdin: Array((password + "\n").utf8),
                                      timeout: 30)
        let hash = r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.termination.succeeded, !hash.isEmpty else { throw SubprocessError("herald passwd failed: \(r)") }
        hashCache.set(password, hash)
        return hash
    }

    /// The TOML config; `ports` pins each listener to a port (restart), nil keeps the
    /// listeners' own addresses.
    public func configText(ports: [Int]?) -> String {
        func q(_ s: String) -> String {
            "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        var t = "[smtp]\nhostname = \(q(options.hostname))\n"
        if let v = options.maxMessageSize { t += "max_message_size = \(v)\n" }
        if let v = options.maxRecipients { t += "max_recipients = \(v)\n" }
        if let v = options.maxErrors { t += "max_errors = \(v)\n" }
        if let v = options.maxConnections { t += "max_connections = \(v)\n" }
        if let v = options.maxConnectionsPerClient { t += "max_connections_per_client = \(v)\n" }
        if let v = options.commandTimeout { t += "command_timeout = \(q(v))\n" }
        if let v = options.dataTimeout { t += "data_timeout = \(q(v))\n" }
        if let v = options.greetingDelay { t += "greeting_delay = \(q(v))\n" }
        if let v = options.authFailureDelay { t += "auth_failure_delay = \(q(v))\n" }
        if let v = options.shutdownGrace { t += "shutdown_grace = \(q(v))\n" }
        for line in options.extraSMTP { t += line + "\n" }
        t += "\n[spool]\npath = \(q(spoolPath))\n"
        if let v = options.committers { t += "committers = \(v)\n" }
        if let v = options.spoolJournal ?? Self.spoolJournalDefault { t += "journal = \(v)\n" }
        t += "\n[log]\npath = \(q(directory + "/log"))\nlevel = \(q(options.logLevel))\n"
        t += "\n[http]\naddress = \(q(options.http ? (options.httpAddress ?? "127.0.0.1:0") : ""))\n"
        for line in options.extraHTTP { t += line + "\n" }
        for k in options.apiKeys { t += "\n[[api_key]]\ntenant = \(q(k.tenant))\nsha256 = \(q(k.sha256))\n" }
        t += "\n[delivery]\nenabled = \(options.deliveryEnabled)\n"
        for line in options.extraDelivery { t += line + "\n" }
        t += "\n[tls]\ncertificate = \(q(certificatePath))\nprivate_key = \(q(privateKeyPath))\n"
        for (i, l) in options.listeners.enumerated() {
            var address = l.address
            if let ports, i < ports.count, let colon = address.lastIndex(of: ":") {
                address = String(address[..<colon]) + ":\(ports[i])"
            }
            t += "\n[[listener]]\naddress = \(q(address))\nrole = \(q(l.role))\ntls = \(q(l.tls))\n"
            if let nets = l.trustedNetworks { t += "trusted_networks = [\(nets.map(q).joined(separator: ", "))]\n" }
            if let v = l.allowPlaintextAuth { t += "allow_plaintext_auth = \(v)\n" }
        }
        for (user, hash) in zip(options.users, passwordHashes) {
            t += "\n[[user]]\nname = \(q(user.name))\npassword_hash = \(q(hash))\n"
            if let tenant = user.tenant { t += "tenant = \(q(tenant))\n" }
        }
        for line in options.extraTOML { t += "\n" + line + "\n" }
        return t
    }

    private func launch(ports: [Int]?) async throws {
        try configText(ports: ports).write(toFile: configPath, atomically: true, encoding: .utf8)
        let logOffset = (try? FileManager.default.attributesOfItem(atPath: logPath)[.size] as? Int) ?? 0
        let c = try ChildProcess(executable: Self.binary, arguments: ["serve", "--config", configPath],
                                 stdoutPath: stdoutPath, stderrPath: stderrPath, currentDirectory: directory)
        lock.withLock { child = c }
        let want = options.listeners.count
        let timeout = options.startTimeout
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let found = listeningPorts(after: logOffset)
            if found.count >= want {
                lock.withLock { boundPorts = Array(found.prefix(want)) }
                return
            }
            if let t = c.exit {
                throw SubprocessError("herald serve ended before listening (\(t))\n\(diagnostics())")
            }
            if Date() >= deadline {
                await c.killAndWait()
                throw SubprocessError("herald serve did not listen within \(timeout) s\n\(diagnostics())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The HTTP API's port (with `options.http`), from its `listening … role=http` line.
    public func httpPort(timeout: Double = 10) async throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let data = FileManager.default.contents(atPath: logPath) {
                let text = String(decoding: data, as: UTF8.self)
                for line in text.split(separator: "\n").reversed() where line.contains(" listening ") && line.contains("role=http") {
                    if let r = line.range(of: "address=") {
                        let value = line[r.upperBound...].prefix { $0 != " " }
                        if let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]) {
                            return port
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw SubprocessError("no HTTP listening line in the log\n\(diagnostics())")
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed),
    /// for `httpAddress` when the port must be known before Herald starts.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SubprocessError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SubprocessError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw SubprocessError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Ports of the `listening address=HOST:PORT` lines written after `offset`, in order.
    private func listeningPorts(after offset: Int) -> [Int] {
        guard let data = FileManager.default.contents(atPath: logPath), data.count > offset else { return [] }
        let text = String(decoding: data[offset...], as: UTF8.self)
        var ports: [Int] = []
        for line in text.split(separator: "\n") where line.contains(" listening ") && !line.contains("role=http") {
            guard let r = line.range(of: "address=") else { continue }
            let value = line[r.upperBound...].prefix { $0 != " " }
            if let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]) {
                ports.append(port)
            }
        }
        return ports
    }

    // MARK: Observing

    /// Herald's log so far.
    public var log: String {
        FileManager.default.contents(atPath: logPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The last lines of the log plus stderr, for failure messages.
    public func diagnostics(lines: Int = 40) -> String {
        let logLines = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
        let stderr = FileManager.default.contents(atPath: stderrPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return "--- herald.log (tail) ---\n" + logLines.joined(separator: "\n") + "\n--- stderr ---\n" + stderr
    }

    // MARK: Postmaster CLI

    /// `herald <arguments…> --config <this config>`.
    public func cli(_ arguments: [String], timeout: Double = 60) async throws -> CommandResult {
        try await Command.run(Self.binary, arguments + ["--config", configPath], timeout: timeout,
                              currentDirectory: directory)
    }

    /// The counts of `herald queue stats --json`: messages by queue, recipients by state.
    public struct QueueCounts: Decodable, Sendable {
        public var messages: [String: Int]
        public var recipients: [String: Int]
    }

    /// `herald queue stats --json`, its counts decoded.
    public func queueStats(timeout: Double = 60) async throws -> QueueCounts {
        let r = try await cli(["queue", "stats", "--json"], timeout: timeout)
        guard r.termination.succeeded else { throw SubprocessError("herald queue stats --json failed: \(r)") }
        do {
            return try JSONDecoder().decode(QueueCounts.self, from: Data(r.stdout))
        } catch {
            throw SubprocessError("cannot decode herald queue stats --json: \(error)\n\(r.stdoutText)")
        }
    }

    /// `herald queue list --json`, decoded.
    public func queueList() async throws -> [QueueEntry] {
        let r = try await cli(["queue", "list", "--json"])
        guard r.termination.succeeded else { throw SubprocessError("herald queue list --json failed: \(r)") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do {
            return try decoder.decode([QueueEntry].self, from: Data(r.stdout))
        } catch {
            throw SubprocessError("cannot decode herald queue list --json: \(error)\n\(r.stdoutText)")
        }
    }

    /// `herald queue show ID` (or with `--envelope`, `--headers`, `--body`).
    public func queueShow(_ id: String, _ flags: [String] = []) async throws -> CommandResult {
        try await cli(["queue", "show", id] + flags)
    }

    // MARK: Spool files

    /// Paths of every file under `<spool>/<queue>/` (recursively), relative to it.
    public func spoolFiles(_ queue: String) -> [String] {
        let root = spoolPath + "/" + queue
        guard let e = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [String] = []
        while let p = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue {
                out.append(p)
            }
        }
        return out.sorted()
    }

    /// Queue ids with an `.env` in `<spool>/<queue>/<xx>/`.
    public func spoolIDs(_ queue: String = "queue") -> [String] {
        spoolFiles(queue).compactMap { p in
            let name = (p as NSString).lastPathComponent
            return name.hasSuffix(".env") ? String(name.dropLast(4)) : nil
        }
    }

    /// The `.msg` path of `id` in `queue`, if present.
    public func messagePath(_ id: String, in queue: String = "queue") -> String? {
        spoolFiles(queue).first { ($0 as NSString).lastPathComponent == id + ".msg" }.map { spoolPath + "/\(queue)/" + $0 }
    }

    public func envelopePath(_ id: String, in queue: String = "queue") -> String? {
        spoolFiles(queue).first { ($0 as NSString).lastPathComponent == id + ".env" }.map { spoolPath + "/\(queue)/" + $0 }
    }

    /// The stored `.msg` bytes of `id`; with the spool journal on, a message accepted
    /// moments ago has no file yet and is read from `journal/` (as `herald queue show`
    /// reads it).
    public func storedMessage(_ id: String, in queue: String = "queue") -> [UInt8]? {
        if let bytes = messagePath(id, in: queue).flatMap({ FileManager.default.contents(atPath: $0) }) {
            return Array(bytes)
        }
        guard queue == "queue", let spool = journalReader(), let queueID = QueueID(id) else { return nil }
        return try? spool.loadMessage(queueID, in: .queue)
    }

    /// Every envelope in `queue/`, those only in the journal included.
    public func queuedEnvelopes() -> [Envelope] {
        guard let spool = journalReader() ?? (try? Spool(path: spoolPath)) else { return [] }
        return ((try? spool.enumerate(.queue)) ?? []).compactMap { try? spool.loadEnvelope($0, in: .queue) }
    }

    /// The spool as another process sees it, journal segments included (nil when there are
    /// none: then the files are all there is).
    private func journalReader() -> Spool? {
        let journal = spoolPath + "/journal"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: journal),
              names.contains(where: { $0.hasSuffix(".jnl") }),
              let spool = try? Spool(path: spoolPath)
        else { return nil }
        spool.includeJournalSegments()
        return spool
    }
}

/// One row of `herald queue list --json`.
public struct QueueEntry: Decodable, Sendable {
    public struct Recipient: Decodable, Sendable {
        public var address: String
        public var state: String
        public var attempts: Int?
        public var nextAttempt: String?
        public var lastReply: String?
    }
    public var id: String
    public var queue: String
    public var arrival: String
    public var size: Int
    public var sender: String
    public var tenant: String?
    public var recipients: [Recipient]
}

final class HashCache: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: String] = [:]
    func get(_ k: String) -> String? { lock.withLock { values[k] } }
    func set(_ k: String, _ v: String) { lock.withLock { values[k] = v } }
}
