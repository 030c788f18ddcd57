import DNS
import Foundation
import HeraldTestSupport
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SMTPClient
import SMTPCore
import Testing

/// The reply text made up for local failures (it becomes the recipient's last reply,
/// the delivery log's `reply` and a campaign's `failures` reason) is short and human:
/// `connect to 127.0.0.1:2600: connection refused`, `example.invalid: no such domain`,
/// never a dump of NIO or c-ares error values.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct LocalFailureTextTests {
    let group = MultiThreadedEventLoopGroup.singleton

    static let quiet: Logger = {
        var logger = Logger(label: "herald.smtpclient.test")
        logger.logLevel = .critical
        return logger
    }()

    func deliverer(_ resolver: any MXResolver, timeouts: SMTPClientTimeouts = SMTPClientTimeouts(all: .seconds(5)))
        -> OutboundDeliverer {
        OutboundDeliverer(settings: OutboundSettings(heloName: "client.test", timeouts: timeouts), resolver: resolver,
                          group: group, pool: SMTPConnectionPool(maxMessages: 10, idleTimeout: .seconds(1)),
                          logger: Self.quiet)
    }

    static let transaction = OutboundTransaction(
        sender: "a@client.test", recipients: [.init(address: "b@example.invalid"), .init(address: "c@example.invalid")],
        message: Array("Subject: t\r\n\r\nbody\r\n".utf8))

    /// A loopback port nothing listens on.
    static func closedPort() throws -> Int {
        try HeraldProcess.freeLoopbackPort()
    }

    /// Internal error values that must not reach a reason.
    static func looksInternal(_ text: String) -> Bool {
        ["NIOConnectionError", "SingleConnectionFailure", "IOError", "CAresError", "errno:", "connectionErrors",
         "ChannelError", "NIOSSLError", "BoringSSL"].contains { text.contains($0) }
    }

    @Test func connectionRefusedBySmartHost() async throws {
        let port = try Self.closedPort()
        let result = await deliverer(try ZoneResolver(zone: ""))
            .attempt(Self.transaction, to: OutboundDestination(domain: "example.invalid", host: "127.0.0.1", port: port, tls: .off))
        #expect(result.outcomes.count == 2)
        for outcome in result.outcomes {
            guard case .deferred(let reply) = outcome else {
                Issue.record("a refused connection defers: \(outcome)")
                continue
            }
            #expect(reply.description == "451 4.4.1 connect to 127.0.0.1:\(port): connection refused")
            #expect(!Self.looksInternal(reply.description), "\(reply)")
        }
    }

    @Test func connectionRefusedNamesHostAndAddress() async throws {
        let port = try Self.closedPort()
        let error = await #expect(throws: SMTPClientError.self) {
            _ = try await SMTPClientConnection.connect(host: "mx.example.test", address: "127.0.0.1", port: port,
                                                       group: group, timeouts: SMTPClientTimeouts(all: .seconds(5)))
        }
        #expect(error?.description == "connect to mx.example.test[127.0.0.1]:\(port): connection refused")
    }

    @Test func silentServerTimesOutWaitingForTheGreeting() async throws {
        // A socket that listens but never accepts: the kernel completes the handshake,
        // no greeting ever comes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        #expect(bound == 0 && listen(fd, 4) == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let result = await deliverer(try ZoneResolver(zone: ""), timeouts: SMTPClientTimeouts(all: .milliseconds(500)))
            .attempt(Self.transaction, to: OutboundDestination(domain: "example.invalid", host: "127.0.0.1", port: port, tls: .off))
        let reply = result.outcomes.first?.reply
        #expect(reply?.description == "451 4.4.1 127.0.0.1:\(port): timed out waiting for the greeting",
                "\(String(describing: reply))")
    }

    @Test(.enabled(if: Dnsmasq.isAvailable))
    func unknownDomainFailsWithoutRepeatingItself() async throws {
        let dns = try Dnsmasq([.servfail("broken.test")], localDomains: ["test", "invalid"])
        defer { dns.stop() }
        let resolver = try CAresResolver(servers: [dns.server], timeout: .seconds(3), logger: Self.quiet)
        defer { resolver.shutdown() }
        let nx = await deliverer(resolver).attempt(Self.transaction, to: OutboundDestination(domain: "example.invalid"))
        #expect(nx.outcomes.count == 2)
        for outcome in nx.outcomes {
            guard case .failed(let reply) = outcome else {
                Issue.record("NXDOMAIN fails at once: \(outcome)")
                continue
            }
            #expect(reply.description == "550 5.1.2 example.invalid: no such domain")
        }
        let servfail = await deliverer(resolver).attempt(Self.transaction, to: OutboundDestination(domain: "broken.test"))
        let reply = servfail.outcomes.first?.reply
        #expect(reply?.code == 451)
        #expect(reply?.description == "451 4.4.3 broken.test: temporary DNS failure (MX lookup: SERVFAIL)",
                "\(String(describing: reply))")
    }

    /// A one-file server: `badtls` offers STARTTLS and answers the client's hello with text;
    /// `reset` resets the connection (SO_LINGER 0) when DATA comes.
    static let script = #"""
import socket, struct, sys
mode = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print("listening", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    f = c.makefile("rb")
    def send(line): c.sendall((line + "\r\n").encode())
    send("220 fake.test ESMTP")
    try:
        while True:
            line = f.readline()
            if not line: break
            cmd = line.decode().strip().upper()
            if cmd.startswith("EHLO"): send("250-fake.test"); send("250 STARTTLS")
            elif cmd.startswith("STARTTLS"):
                # The text goes only after the client's hello has arrived: sent with the
                # 220, it would be plaintext behind the reply (refused as such, rightly).
                send("220 go ahead"); c.recv(5); c.sendall(b"this is not a TLS server hello\r\n" * 4)
            elif cmd.startswith("DATA") and mode == "reset":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); break
            elif cmd.startswith("QUIT"): send("221 bye"); break
            else: send("250 ok")
    except Exception:
        pass
    f.close(); c.close()
"""#

    static func withServer<T>(_ mode: String, _ body: (Int) async throws -> T) async throws -> T {
        let dir = try TemporaryDirectory.make(prefix: "herald-failtext")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/stdout"
        let child = try ChildProcess(executable: "python3", arguments: ["-u", "-c", script, mode], stdoutPath: out,
                                     stderrPath: dir + "/stderr")
        defer { child.send(SIGKILL) }
        var port: Int?
        let deadline = Date().addingTimeInterval(30)
        while port == nil && Date() < deadline {
            if let text = try? String(contentsOfFile: out, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening ") }) {
                port = Int(line.split(separator: " ")[1])
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        return try await body(try #require(port))
    }

    @Test func failedTLSHandshakeSaysWhy() async throws {
        let result = try await Self.withServer("badtls") { port in
            (port, await deliverer(try ZoneResolver(zone: "")).attempt(
                Self.transaction, to: OutboundDestination(domain: "example.invalid", host: "127.0.0.1", port: port, tls: .required)))
        }
        let reply = result.1.outcomes.first?.reply
        #expect(reply?.code == 451)
        print("local failure text: \(reply?.description ?? "none")")
        // BoringSSL's reason, in words (its error stack says WRONG_VERSION_NUMBER).
        #expect(reply?.description == "451 4.4.1 127.0.0.1:\(result.0): TLS handshake failed: wrong version number",
                "\(String(describing: reply))")
        #expect(!Self.looksInternal(reply?.description ?? ""), "\(String(describing: reply))")
    }

    @Test func resetDuringTheSessionSaysWhen() async throws {
        let result = try await Self.withServer("reset") { port in
            (port, await deliverer(try ZoneResolver(zone: "")).attempt(
                Self.transaction, to: OutboundDestination(domain: "example.invalid", host: "127.0.0.1", port: port, tls: .off)))
        }
        let reply = result.1.outcomes.first?.reply
        #expect(reply?.code == 451)
        let text = reply?.description ?? ""
        print("local failure text: \(text)")
        #expect(text == "451 4.4.1 127.0.0.1:\(result.0): connection reset by peer sending DATA"
                    || text == "451 4.4.1 127.0.0.1:\(result.0): connection closed sending DATA", "\(text)")
        #expect(!Self.looksInternal(text), "\(text)")
    }

    @Test func errorValuesBecomeWords() {
        #expect(ErrorText.describe(IOError(errnoCode: ECONNRESET, reason: "read(descriptor:pointer:size:)"))
                == "connection reset by peer")
        #expect(ErrorText.describe(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == "connection refused")
        #expect(ErrorText.describe(ChannelError.connectTimeout(.seconds(30))) == "timed out after 30 s")
        #expect(ErrorText.describe(ChannelError.ioOnClosedChannel) == "connection closed")
        #expect(ErrorText.describe(NIOSSLError.uncleanShutdown) == "connection closed during TLS")
        #expect(ErrorText.describe(NIOSSLError.handshakeFailed(.zeroReturn))
                == "TLS handshake failed: connection closed by the server")
        let closed = SMTPClientError(.networkError("connection reset by peer"), phase: .data, host: "mx.example.test[192.0.2.1]:25")
        #expect(closed.description == "mx.example.test[192.0.2.1]:25: connection reset by peer sending DATA")
        #expect(SMTPClientConnection.peerName(host: "::1", address: "::1", port: 25) == "[::1]:25")
    }
}
