@testable import Delivery
import DNS
import Foundation
import HeraldTestSupport
import Logging
import NIOCore
import NIOPosix
import SMTPClient
import SMTPCore
import Testing

/// `Deliverer.attempt` against a tiny scripted server (Python, one file) for what the
/// aiosmtpd sink cannot do:
///
/// - refuse and then hang up at once (many appliances do after a 5xx, every server
///   after a 421). The refusal is the outcome: a 5xx fails the recipients, a 4xx defers
///   them with that reply. The RSET that follows finds the connection closed; that must
///   not turn the known outcome into "session broke after the dot, may be a duplicate"
///   (451 4.4.2), which would retry a permanently refused message until it expires.
/// - offer STARTTLS and then fail the handshake: `opportunistic` retries once in plain
///   text (Postfix's "may"), `required` defers.
@Suite(.serialized) struct ScriptedServerTests {
    /// A one-file scripted server: `mode` picks where it refuses and closes.
    static let script = #"""
import socket, sys
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
            if cmd.startswith("EHLO"):
                send("250-fake.test")
                if mode == "badtls": send("250-STARTTLS")
                send("250 8BITMIME")
            elif cmd.startswith("STARTTLS"):
                send("220 go ahead"); c.sendall(b"this is not a TLS server hello\r\n" * 4)
            elif cmd.startswith("MAIL"):
                if mode == "mail": send("550 5.7.1 sender blocked"); break
                send("250 2.1.0 ok")
            elif cmd.startswith("RCPT"):
                if mode == "rcpt": send("550 5.1.1 no such user"); break
                send("250 2.1.5 ok")
            elif cmd.startswith("DATA"):
                send("354 go ahead")
                while f.readline() not in (b".\r\n", b""): pass
                if mode == "dot5": send("554 5.7.1 message refused as spam"); break
                if mode == "dot4": send("451 4.3.0 try later"); break
                if mode == "dothang":
                    import time; time.sleep(3600)
                send("250 2.0.0 queued")
            elif cmd.startswith("RSET"): send("250 ok")
            elif cmd.startswith("QUIT"): send("221 bye"); break
            else: send("502 5.5.2 what")
    except Exception:
        pass
    try: c.shutdown(socket.SHUT_RDWR)
    except OSError: pass
    f.close(); c.close()
"""#

    static func withServer<T>(_ mode: String, _ body: (Int) async throws -> T) async throws -> T {
        let dir = try TemporaryDirectory.make(prefix: "herald-refuse")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/stdout"
        let child = try ChildProcess(executable: "python3", arguments: ["-u", "-c", script, mode], stdoutPath: out,
                                     stderrPath: dir + "/stderr")
        defer { child.send(SIGKILL) }
        var port: Int?
        // Generous: under a full test run on 2 cores, starting python3 can take seconds.
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

    static func attempt(port: Int, tls: OutboundTLSPolicy = .off,
                        timeouts: SMTPClientTimeouts = SMTPClientTimeouts(all: .seconds(5))) async throws -> AttemptResult {
        var config = DeliveryConfiguration(heloName: "herald.test")
        config.routes = [Route(pattern: DomainPattern("*")!, host: "127.0.0.1", port: port, tls: tls)]
        config.timeouts = timeouts
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let deliverer = Deliverer(config: config, resolver: try ZoneResolver(zone: ""),
                                  group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let tx = OutboundTransaction(sender: "a@client.test", recipients: [.init(address: "b@dest.test")],
                                     message: Array("Subject: x\r\n\r\nbody\r\n".utf8))
        let result = await deliverer.attempt(domain: "dest.test", tx: tx)
        await deliverer.pool.closeAll()
        return result
    }

    @Test("a refusal followed by a hang-up keeps the refusal as the outcome", arguments: [
        ("mail", 550, "5.7.1"), ("rcpt", 550, "5.1.1"), ("dot5", 554, "5.7.1"), ("dot4", 451, "4.3.0"),
    ])
    func refusalThenClose(mode: String, code: Int, enhanced: String) async throws {
        let result = try await Self.withServer(mode) { try await Self.attempt(port: $0) }
        #expect(result.outcomes.map(\.reply.code) == [code], "\(mode): \(result.outcomes)")
        #expect(result.outcomes.first?.reply.enhanced?.description == enhanced)
        #expect(!result.mayBeDuplicate)
        if code / 100 == 5 {
            #expect(result.outcomes.allSatisfy { if case .failed = $0 { true } else { false } })
        } else {
            #expect(result.outcomes.allSatisfy { if case .deferred = $0 { true } else { false } })
        }
    }

    /// The server takes the whole message and never answers the dot: the dot time-out
    /// defers the recipient (it may have been delivered: the attempt says so, and the
    /// retry may duplicate it, the RFC 1047 trade-off every MTA makes).
    @Test func noAnswerToTheDotDefersAsAPossibleDuplicate() async throws {
        var timeouts = SMTPClientTimeouts(all: .seconds(5))
        timeouts.dot = .seconds(1)
        let clock = ContinuousClock()
        let start = clock.now
        let result = try await Self.withServer("dothang") { try await Self.attempt(port: $0, timeouts: timeouts) }
        let elapsed = start.duration(to: clock.now)
        #expect(result.outcomes.allSatisfy { if case .deferred = $0 { true } else { false } }, "\(result.outcomes)")
        #expect(result.mayBeDuplicate)
        #expect(elapsed < .seconds(20), "\(elapsed)")
    }

    @Test func acceptedThenCloseIsDelivered() async throws {
        let result = try await Self.withServer("ok") { try await Self.attempt(port: $0) }
        #expect(result.outcomes.map(\.reply.code) == [250])
    }

    @Test func failedHandshakeFallsBackToPlainTextOnlyWhenOpportunistic() async throws {
        let opportunistic = try await Self.withServer("badtls") { try await Self.attempt(port: $0, tls: .opportunistic) }
        #expect(opportunistic.outcomes.map(\.reply.code) == [250], "\(opportunistic.outcomes)")
        #expect(!opportunistic.tls)
        let required = try await Self.withServer("badtls") { try await Self.attempt(port: $0, tls: .required) }
        #expect(required.outcomes.allSatisfy { if case .deferred = $0 { true } else { false } }, "\(required.outcomes)")
    }
}
