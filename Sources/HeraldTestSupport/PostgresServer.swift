import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL server for tests: `initdb` into a fresh temporary directory,
/// `postgres` listening on 127.0.0.1 and a free port (trust authentication, TCP on
/// loopback only; its unix socket in the same directory), stopped and removed by
/// ``stop()``.
///
/// ```swift
/// let server = try await PostgresServer.shared()      // one per test process
/// let url = try await server.createDatabase()          // a fresh database per test
/// ```
///
/// The binaries are found in `$HERALD_PG_BINDIR`, `pg_config --bindir`,
/// `/usr/lib/postgresql/<newest>/bin` (Debian's `postgresql` package), then `PATH`.
/// `initdb` and `postgres` refuse to run as root; as root they run as the `postgres`
/// system user (created by the Debian package) through `setpriv` (or `runuser`), with
/// the directory handed over to that user. `fsync` stays on (the server behaves as in
/// production); only `initdb` skips its syncs, its files being thrown away anyway.
public final class PostgresServer: @unchecked Sendable {
    /// The database superuser `initdb` creates.
    public static let user = "herald"

    public let port: Int
    /// The temporary directory: `data/` (the cluster), the unix socket, `postgres.log`.
    public let directory: String
    /// `postgres://herald@127.0.0.1:<port>/postgres`.
    public var url: String { url(database: "postgres") }

    private var process: SpawnedProcess
    private let binaries: Binaries
    private let lock = NSLock()
    private var stopped = false
    private var databases = 0

    /// `postgres://herald@127.0.0.1:<port>/<database>`.
    public func url(database: String) -> String {
        "postgres://\(Self.user)@127.0.0.1:\(port)/\(database)"
    }

    /// What the server logged so far.
    public var log: String {
        (try? String(contentsOfFile: directory + "/postgres.log", encoding: .utf8)) ?? ""
    }

    public var isRunning: Bool { lock.withLock { process }.isRunning }

    /// Whether PostgreSQL's server binaries are installed (tests needing them can skip).
    public static var isAvailable: Bool { (try? Binaries.find()) != nil }

    private init(port: Int, directory: String, process: SpawnedProcess, binaries: Binaries) {
        self.port = port
        self.directory = directory
        self.process = process
        self.binaries = binaries
    }

    deinit {
        stop()
    }

    // MARK: - Starting and stopping

    /// Starts a new server; returns once it accepts connections.
    public static func start(timeout: Double = 60) async throws -> PostgresServer {
        let binaries = try Binaries.find()
        let asRoot = getuid() == 0
        let directory = try makeDirectory(asRoot: asRoot)
        do {
            let initdbArgv = wrap(asRoot, binaries.initdb.path, [
                "-D", directory + "/data", "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C",
                "--no-sync", "--no-instructions",
            ])
            let initdb = try await Command.run(initdbArgv[0], Array(initdbArgv.dropFirst()), timeout: timeout,
                                               currentDirectory: directory)
            guard initdb.termination.succeeded else {
                throw PostgresServerError(message: "initdb failed: \(initdb)")
            }
            var lastFailure = ""
            for _ in 0..<5 {
                let port = try freeTCPPort()
                let logPath = directory + "/postgres.log"
                let process = try spawn(binaries, directory: directory, port: port)
                if try await waitUntilReady(directory: directory, process: process, timeout: timeout) {
                    return PostgresServer(port: port, directory: directory, process: process, binaries: binaries)
                }
                process.terminate()
                ChildRegistry.shared.remove(process.pid)
                lastFailure = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                guard lastFailure.contains("could not bind") || lastFailure.contains("in use") else { break }
            }
            throw PostgresServerError(message: "postgres did not start: \(lastFailure)")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    private static func spawn(_ binaries: Binaries, directory: String, port: Int) throws -> SpawnedProcess {
        let arguments = [
            "-D", directory + "/data", "-p", String(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=\(directory)",
            // One server serves every store test of the process, and Swift Testing runs
            // them side by side, each with a pool of its own: 200 was once too few
            // ("sorry, too many clients already" in a full run).
            "-c", "max_connections=600",
            "-c", "log_min_messages=warning",
            // The test process may hold many descriptors that the server inherits; with the
            // default of 1,000 per process, ~950 of them stop it ("insufficient file
            // descriptors available to start server process").
            "-c", "max_files_per_process=10000",
        ]
        let argv = wrap(getuid() == 0, binaries.postgres.path, arguments)
        let process = try SpawnedProcess(executable: argv[0], arguments: Array(argv.dropFirst()),
                                         outputPath: directory + "/postgres.log")
        ChildRegistry.shared.add(process.pid)
        return process
    }

    /// Takes the server down as an outage would, `immediate`ly (SIGQUIT: no checkpoint,
    /// clients cut off; crash recovery at the next start) or by a fast shutdown, keeping
    /// its data for ``resume(timeout:)``.
    public func pause(immediate: Bool = true) {
        let process = lock.withLock { self.process }
        guard process.isRunning else { return }
        kill(process.pid, immediate ? SIGQUIT : SIGINT)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(10_000) }
        process.terminate(grace: 1)
        ChildRegistry.shared.remove(process.pid)
    }

    /// Starts the paused server again on the same port and data; returns once it accepts
    /// connections.
    public func resume(timeout: Double = 60) async throws {
        let process = try Self.spawn(binaries, directory: directory, port: port)
        lock.withLock { self.process = process }
        guard try await Self.waitUntilReady(directory: directory, process: process, timeout: timeout) else {
            throw PostgresServerError(message: "postgres did not start again: \(log.suffix(2000))")
        }
    }

    /// Stops the server (fast shutdown, then SIGKILL after 10 s) and removes its
    /// directory. Idempotent.
    public func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        pause(immediate: false)   // fast shutdown: disconnects clients, no waiting for them
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - One server per test process

    private static let sharedState = SharedState()

    /// A server shared by every test of this process, started at first use and stopped
    /// when the process exits. Give each test its own database (``createDatabase(prefix:)``).
    public static func shared() async throws -> PostgresServer {
        try await sharedState.server()
    }

    private actor SharedState {
        private var starting: Task<PostgresServer, Error>?

        func server() async throws -> PostgresServer {
            if let starting, let server = try? await starting.value, server.isRunning { return server }
            let task = Task { try await PostgresServer.start() }
            starting = task
            let server = try await task.value
            SharedServerCleanup.register(server)
            return server
        }
    }

    /// Creates a new, empty database (with `createdb`) and returns its URL.
    public func createDatabase(prefix: String = "test") async throws -> String {
        let number = lock.withLock { () -> Int in
            databases += 1
            return databases
        }
        let name = "\(prefix)_\(number)_\(UUID().uuidString.prefix(8).lowercased())"
        guard let createdb = binaries.createdb else {
            throw PostgresServerError(message: "createdb not found next to \(binaries.postgres.path)")
        }
        let result = try await Command.run(createdb.path, ["-h", "127.0.0.1", "-p", String(port), "-U", Self.user, name],
                                           timeout: 60)
        guard result.termination.succeeded else { throw PostgresServerError(message: "createdb failed: \(result)") }
        return url(database: name)
    }

    // MARK: - Helpers

    struct Binaries {
        var initdb: URL
        var postgres: URL
        var createdb: URL?

        static func find() throws -> Binaries {
            var candidates: [String] = []
            if let dir = ProcessInfo.processInfo.environment["HERALD_PG_BINDIR"], !dir.isEmpty { candidates.append(dir) }
            if let dir = pgConfigBindir() { candidates.append(dir) }
            let debian = "/usr/lib/postgresql"
            let versions = ((try? FileManager.default.contentsOfDirectory(atPath: debian)) ?? [])
                .compactMap { Int($0) }.sorted(by: >)
            candidates += versions.map { "\(debian)/\($0)/bin" }
            for dir in candidates {
                let initdb = dir + "/initdb", postgres = dir + "/postgres"
                if access(initdb, X_OK) == 0 && access(postgres, X_OK) == 0 {
                    let createdb = dir + "/createdb"
                    return Binaries(initdb: URL(fileURLWithPath: initdb), postgres: URL(fileURLWithPath: postgres),
                                    createdb: access(createdb, X_OK) == 0 ? URL(fileURLWithPath: createdb) : nil)
                }
            }
            if let initdb = try? Executables.resolve("initdb"), let postgres = try? Executables.resolve("postgres") {
                let createdb = try? Executables.resolve("createdb")
                return Binaries(initdb: URL(fileURLWithPath: initdb).resolvingSymlinksInPath(),
                                postgres: URL(fileURLWithPath: postgres).resolvingSymlinksInPath(),
                                createdb: createdb.map { URL(fileURLWithPath: $0) })
            }
            throw PostgresServerError(message: "PostgreSQL server binaries (initdb, postgres) not found: install the postgresql package")
        }

        private static func pgConfigBindir() -> String? {
            guard let pgConfig = try? Executables.resolve("pg_config") else { return nil }
            let process = Process()
            let pipe = Pipe()
            process.executableURL = URL(fileURLWithPath: pgConfig)
            process.arguments = ["--bindir"]
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return nil }
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { return nil }
            let dir = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return dir.isEmpty ? nil : dir
        }
    }

    /// The program that runs a PostgreSQL binary as the `postgres` user when we are root.
    private static func wrapper(_ asRoot: Bool) -> String? {
        guard asRoot else { return nil }
        if let setpriv = try? Executables.resolve("setpriv") { return setpriv }
        for path in ["/usr/bin/setpriv", "/usr/sbin/runuser", "/sbin/runuser"] where access(path, X_OK) == 0 {
            return path
        }
        return nil
    }

    /// The full argv for `executable arguments`, wrapped to run as `postgres` when root.
    /// `setpriv` execs the program (its pid is the server's); `runuser` is the fallback.
    private static func wrap(_ asRoot: Bool, _ executable: String, _ arguments: [String]) -> [String] {
        guard let wrapper = wrapper(asRoot) else { return [executable] + arguments }
        if wrapper.hasSuffix("setpriv") {
            return [wrapper, "--reuid=postgres", "--regid=postgres", "--init-groups", "--", executable] + arguments
        }
        return [wrapper, "-u", "postgres", "--", executable] + arguments
    }

    private static func makeDirectory(asRoot: Bool) throws -> String {
        guard asRoot else { return try TemporaryDirectory.make(prefix: "herald-pg") }
        guard let entry = getpwnam("postgres") else {
            throw PostgresServerError(message: "running as root, and there is no postgres user to run PostgreSQL as")
        }
        guard wrapper(true) != nil else {
            throw PostgresServerError(message: "running as root, and neither setpriv nor runuser is installed")
        }
        // /tmp rather than $TMPDIR: the postgres user must be able to reach the directory.
        let path = "/tmp/herald-pg-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        guard chown(path, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
            let error = errno
            try? FileManager.default.removeItem(atPath: path)
            throw PostgresServerError(message: "chown \(path) to postgres: errno \(error)")
        }
        return path
    }

    private static func freeTCPPort() throws -> Int {
        let socket = try StubDNSServer.BoundSocket(datagram: false, port: 0)
        defer { socket.close() }
        return socket.port
    }

    /// Waits until `postmaster.pid` says "ready" (PostgreSQL 10+ writes its status on
    /// line 8) while the process lives.
    private static func waitUntilReady(directory: String, process: SpawnedProcess, timeout: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard process.isRunning else { return false }
            if let text = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8) {
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                if lines.count >= 8, lines[7].trimmingCharacters(in: .whitespaces) == "ready" { return true }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// Stops the shared server when the test process exits.
enum SharedServerCleanup {
    nonisolated(unsafe) private static var servers: [PostgresServer] = []
    private static let lock = NSLock()
    nonisolated(unsafe) private static var registered = false

    static func register(_ server: PostgresServer) {
        lock.withLock {
            servers.append(server)
            if !registered {
                registered = true
                atexit { SharedServerCleanup.stopAll() }
            }
        }
    }

    static func stopAll() {
        let all = lock.withLock { () -> [PostgresServer] in
            defer { servers = [] }
            return servers
        }
        for server in all { server.stop() }
    }
}

public struct PostgresServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
