import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private dnsmasq on 127.0.0.1 and a free port, serving the records a test gives it.
///
/// ```swift
/// let dns = try Dnsmasq([
///     .mx("example.test", host: "mx1.example.test", preference: 10),
///     .address("mx1.example.test", "127.0.0.1"),
///     .nullMX("null.test"),
///     .servfail("broken.test"),
/// ])
/// defer { dns.stop() }
/// let resolver = try CAresResolver(servers: [dns.server])
/// ```
/// Every name under the `localDomains` ("test" by default) that has no record is
/// NXDOMAIN (`--local=/test/`); a name that has some records but not the asked type is
/// NODATA. Names outside those domains get REFUSED (there is no upstream). Records have a
/// TTL of `ttl` seconds (`--local-ttl`, dnsmasq's default would be 0). SERVFAIL and
/// no-answer domains are forwarded to in-process ``StubDNSServer``s.
public final class Dnsmasq: @unchecked Sendable {
    public enum Record: Hashable, Sendable {
        /// `--mx-host=domain,host,preference`.
        case mx(String, host: String, preference: Int)
        /// A null MX ("0 ." RFC 7505) for the domain.
        case nullMX(String)
        /// An A or AAAA record (by the address' syntax), `--host-record=name,address`.
        case address(String, String)
        /// Every name under the domain answers SERVFAIL.
        case servfail(String)
        /// Questions for names under the domain are never answered (clients time out).
        case noAnswer(String)
        /// Any other dnsmasq option, e.g. "--txt-record=example.test,hello".
        case option(String)
    }

    public static let executable = "/usr/sbin/dnsmasq"

    /// Whether dnsmasq is installed (tests that need it can be skipped otherwise).
    public static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: self.executable)
    }

    /// The UDP and TCP port dnsmasq listens on, on 127.0.0.1.
    public let port: Int
    /// "127.0.0.1:<port>", as resolver configuration wants it.
    public var server: String { "127.0.0.1:\(self.port)" }
    /// The arguments dnsmasq was started with (for failure messages).
    public let arguments: [String]

    private let process: SpawnedProcess
    private let logPath: String
    private let stubs: [StubDNSServer]
    private let lock = NSLock()
    private var stopped = false

    /// Starts dnsmasq and returns once it answers queries.
    public init(_ records: [Record], localDomains: [String] = ["test"], ttl: Int = 300) throws {
        var stubs: [StubDNSServer] = []
        var recordOptions: [String] = []
        var servfailStub: StubDNSServer?
        var silentStub: StubDNSServer?
        for record in records {
            switch record {
            case .mx(let domain, let host, let preference):
                recordOptions.append("--mx-host=\(domain),\(host),\(preference)")
            case .nullMX(let domain):
                // dnsmasq 2.90 accepts "." as the target: it sends the root name.
                recordOptions.append("--mx-host=\(domain),.,0")
            case .address(let name, let address):
                recordOptions.append("--host-record=\(name),\(address)")
            case .servfail(let domain):
                if servfailStub == nil {
                    servfailStub = try StubDNSServer(.servfail)
                    stubs.append(servfailStub!)
                }
                recordOptions.append("--server=/\(domain)/127.0.0.1#\(servfailStub!.port)")
            case .noAnswer(let domain):
                if silentStub == nil {
                    silentStub = try StubDNSServer(.silent)
                    stubs.append(silentStub!)
                }
                recordOptions.append("--server=/\(domain)/127.0.0.1#\(silentStub!.port)")
            case .option(let option):
                recordOptions.append(option)
            }
        }
        self.stubs = stubs

        var lastFailure = "dnsmasq did not start"
        for _ in 0..<8 {
            let port = try Self.freePort()
            var arguments = [
                "--no-daemon", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--listen-address=127.0.0.1", "--bind-interfaces", "--port=\(port)", "--pid-file=",
                "--log-facility=-", "--cache-size=0", "--local-ttl=\(ttl)",
            ]
            if getuid() == 0 {
                arguments.append("--user=root")  // nothing to drop to in a container; keep root
            }
            arguments += localDomains.map { "--local=/\($0)/" }
            arguments += recordOptions

            let logPath = FileManager.default.temporaryDirectory
                .appendingPathComponent("herald-dnsmasq-\(UUID().uuidString).log").path
            let process: SpawnedProcess
            do {
                process = try SpawnedProcess(executable: Self.executable, arguments: arguments, outputPath: logPath)
            } catch {
                for stub in stubs { stub.stop() }
                throw error
            }
            if Self.waitUntilAnswering(port: port, process: process, deadline: Date().addingTimeInterval(10)) {
                self.port = port
                self.arguments = arguments
                self.process = process
                self.logPath = logPath
                return
            }
            process.terminate()
            let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: logPath)
            lastFailure = "dnsmasq \(arguments.joined(separator: " ")) failed: \(output)"
            if !output.contains("in use") {
                break
            }
        }
        for stub in stubs { stub.stop() }
        throw DnsmasqError(message: lastFailure)
    }

    deinit {
        self.stop()
    }

    /// True until ``stop()``, unless dnsmasq died.
    public var isRunning: Bool { self.process.isRunning }

    /// What dnsmasq logged so far.
    public var log: String {
        (try? String(contentsOfFile: self.logPath, encoding: .utf8)) ?? ""
    }

    /// Stops dnsmasq (SIGTERM, then SIGKILL after 2 s) and the stub servers. Idempotent.
    public func stop() {
        let first = self.lock.withLock { () -> Bool in
            defer { self.stopped = true }
            return !self.stopped
        }
        guard first else { return }
        self.process.terminate()
        for stub in self.stubs { stub.stop() }
        try? FileManager.default.removeItem(atPath: self.logPath)
    }

    /// A port that is free for both UDP and TCP on 127.0.0.1 right now.
    public static func freePort() throws -> Int {
        for _ in 0..<20 {
            let udp = try StubDNSServer.BoundSocket(datagram: true, port: 0)
            if let tcp = try? StubDNSServer.BoundSocket(datagram: false, port: udp.port) {
                tcp.close()
                udp.close()
                return udp.port
            }
            udp.close()
        }
        throw DnsmasqError(message: "no free port on 127.0.0.1")
    }

    private static func waitUntilAnswering(port: Int, process: SpawnedProcess, deadline: Date) -> Bool {
        guard let socket = try? StubDNSServer.BoundSocket(datagram: true, port: 0) else { return false }
        defer { socket.close() }
        let query = StubDNSServer.Probe.query(id: 0x4852, name: "herald-probe.invalid")
        while Date() < deadline, process.isRunning {
            socket.send(query, toPort: port)
            if let reply = socket.receive(timeoutMS: 100), reply.count >= 12, reply[0] == 0x48, reply[1] == 0x52 {
                return true
            }
        }
        return false
    }
}

public struct DnsmasqError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { self.message }
}

/// A tiny UDP DNS server on 127.0.0.1 that answers every question the same bad way:
/// SERVFAIL, REFUSED, not at all (a black hole, so that clients time out), or with
/// garbage: a reply that matches the query (same id and question) and claims answers
/// whose records are malformed (a compression pointer into itself, then truncation).
/// Runs on its own thread until ``stop()``.
public final class StubDNSServer: Sendable {
    public enum Behaviour: Sendable {
        case servfail, refused, silent, garbage
    }

    public let port: Int
    /// "127.0.0.1:<port>".
    public var server: String { "127.0.0.1:\(self.port)" }

    /// What the serving thread holds: the server object itself is not retained by the
    /// thread, so dropping the last reference stops it (deinit calls ``stop()``).
    private final class Loop: @unchecked Sendable {
        let socket: StubDNSServer.BoundSocket
        let behaviour: Behaviour
        let lock = NSCondition()
        var stopping = false
        var running = true
        var queries = 0

        init(socket: StubDNSServer.BoundSocket, behaviour: Behaviour) {
            self.socket = socket
            self.behaviour = behaviour
        }

        func serve() {
            while !self.lock.withLock({ self.stopping }) {
                guard let (query, peer) = self.socket.receiveWithPeer(timeoutMS: 50) else { continue }
                self.lock.withLock { self.queries += 1 }
                let code: UInt8
                switch self.behaviour {
                case .servfail: code = 2
                case .refused: code = 5
                case .silent: continue
                case .garbage:
                    if var reply = StubDNSServer.Probe.errorReply(to: query, responseCode: 0) {
                        reply[7] = 3   // three answers claimed
                        // A name that points at itself, a type and class, then the end.
                        let at = reply.count
                        reply += [0xC0 | UInt8(at >> 8 & 0x3F), UInt8(at & 0xFF), 0x00, 0x0F, 0x00, 0x01, 0xFF]
                        self.socket.send(reply, to: peer)
                    }
                    continue
                }
                if let reply = StubDNSServer.Probe.errorReply(to: query, responseCode: code) {
                    self.socket.send(reply, to: peer)
                }
            }
            self.lock.withLock {
                self.running = false
                self.lock.broadcast()
            }
        }
    }

    private let loop: Loop

    public init(_ behaviour: Behaviour) throws {
        let socket = try StubDNSServer.BoundSocket(datagram: true, port: 0)
        self.port = socket.port
        self.loop = Loop(socket: socket, behaviour: behaviour)
        let thread = Thread { [loop] in loop.serve() }
        thread.name = "stub-dns"
        thread.start()
    }

    deinit {
        self.stop()
    }

    /// How many datagrams arrived.
    public var queriesReceived: Int {
        self.loop.lock.withLock { self.loop.queries }
    }

    /// Stops the thread (within 50 ms) and closes the socket. Idempotent.
    public func stop() {
        self.loop.lock.withLock {
            self.loop.stopping = true
            while self.loop.running {
                self.loop.lock.wait()
            }
        }
        self.loop.socket.close()
    }
}

// Helpers nested here so that their names cannot clash with other files of this module.
extension StubDNSServer {
    /// Building the few DNS messages the launchers need, by hand.
    enum Probe {
        /// A recursive query for `name`, type A, class IN.
        static func query(id: UInt16, name: String) -> [UInt8] {
            var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
            for label in name.split(separator: ".") {
                bytes.append(UInt8(label.utf8.count))
                bytes += label.utf8
            }
            bytes += [0, 0, 1, 0, 1]
            return bytes
        }

        /// A reply to `query` carrying only its question and `responseCode`.
        static func errorReply(to query: [UInt8], responseCode: UInt8) -> [UInt8]? {
            guard query.count >= 12, query[2] & 0x80 == 0 else { return nil }
            var end = 12
            if query[4] != 0 || query[5] != 0 {
                while end < query.count, query[end] != 0 {
                    guard query[end] & 0xC0 == 0 else { return nil }
                    end += Int(query[end]) + 1
                }
                end += 5  // root label, QTYPE, QCLASS
                guard end <= query.count else { return nil }
            }
            var reply = Array(query[0..<end])
            reply[2] = 0x80 | (query[2] & 0x79)  // QR, opcode and RD kept
            reply[3] = 0x80 | responseCode  // RA
            reply[4] = 0
            reply[5] = (query[4] != 0 || query[5] != 0) ? 1 : 0
            for index in 6..<12 { reply[index] = 0 }
            return reply
        }
    }

    /// A socket bound to 127.0.0.1, with just enough I/O for the launchers.
    final class BoundSocket: @unchecked Sendable {
        let fd: Int32
        let port: Int
        private let lock = NSLock()
        private var closed = false

        init(datagram: Bool, port: Int) throws {
            let fd = Glibc.socket(AF_INET, Int32((datagram ? SOCK_DGRAM : SOCK_STREAM).rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw DnsmasqError(message: "socket: errno \(errno)") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let error = errno
                Glibc.close(fd)
                throw DnsmasqError(message: "bind 127.0.0.1:\(port): errno \(error)")
            }
            var actual = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &actual) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            self.fd = fd
            self.port = Int(UInt16(bigEndian: actual.sin_port))
        }

        deinit {
            self.close()
        }

        func close() {
            let first = self.lock.withLock { () -> Bool in
                defer { self.closed = true }
                return !self.closed
            }
            if first {
                Glibc.close(self.fd)
            }
        }

        func send(_ bytes: [UInt8], toPort port: Int) {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            self.send(bytes, to: address)
        }

        func send(_ bytes: [UInt8], to address: sockaddr_in) {
            var address = address
            _ = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(self.fd, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }

        func receive(timeoutMS: Int32) -> [UInt8]? {
            self.receiveWithPeer(timeoutMS: timeoutMS)?.0
        }

        func receiveWithPeer(timeoutMS: Int32) -> ([UInt8], sockaddr_in)? {
            var entry = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, timeoutMS) > 0 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            var peer = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = buffer.withUnsafeMutableBytes { bytes in
                withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(self.fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            guard count >= 0 else { return nil }
            return (Array(buffer.prefix(count)), peer)
        }
    }
}

/// A child process started with `posix_spawn`, its output appended to a file.
///
/// Why not Foundation's `Process`: a child inherits the signal mask of the thread that
/// spawns it, and the threads Swift concurrency (and so Swift Testing) runs on block
/// nearly every signal, SIGTERM included, so `Process.terminate()` leaves the child
/// running. Here the child starts with an empty mask and default signal handlers, and
/// is reaped with `waitpid`.
public final class SpawnedProcess: @unchecked Sendable {
    public let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`; stdin is /dev/null, stdout and stderr go to
    /// `outputPath` (created or appended to).
    public init(executable: String, arguments: [String], outputPath: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw DnsmasqError(message: "cannot start \(executable): \(String(cString: strerror(status)))")
        }
        self.pid = pid
    }

    deinit {
        self.terminate()
    }

    /// True while the child has not exited (reaps it if it has).
    public var isRunning: Bool {
        self.lock.withLock {
            if self.exitStatus != nil { return false }
            var status: Int32 = 0
            let result = waitpid(self.pid, &status, WNOHANG)
            if result == self.pid || (result < 0 && errno == ECHILD) {
                self.exitStatus = status
                return false
            }
            return true
        }
    }

    /// SIGTERM, then SIGKILL if the child is still there after `grace`; waits for it.
    public func terminate(grace: TimeInterval = 2) {
        guard self.isRunning else { return }
        kill(self.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while self.isRunning, Date() < deadline {
            usleep(5_000)
        }
        guard self.isRunning else { return }
        kill(self.pid, SIGKILL)
        while self.isRunning {
            usleep(1_000)
        }
    }
}
