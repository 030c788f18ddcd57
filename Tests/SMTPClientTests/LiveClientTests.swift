import Foundation
import HeraldTestSupport
import NIOCore
import NIOPosix
import NIOSSL
import SMTPClient
import SMTPCore
import Testing

/// The client against real servers on loopback: the scripted aiosmtpd sink and
/// Postfix's smtp-sink.
@Suite(.serialized) struct LiveClientTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func connect(_ port: Int, timeouts: SMTPClientTimeouts = SMTPClientTimeouts(all: .seconds(10))) async throws -> SMTPClientConnection {
        let c = try await SMTPClientConnection.connect(host: "sink.test", address: "127.0.0.1", port: port,
                                                       group: group, timeouts: timeouts)
        try await c.hello("client.test")
        return c
    }

    func message(_ id: String) -> [UInt8] {
        Array("From: a@client.test\r\nTo: b@sink.test\r\nMessage-ID: <\(id)@client.test>\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n".utf8)
    }

    @Test func pipelinedTransactionWithMixedRecipients() async throws {
        let sink = try await SinkProcess()
        defer { Task { await sink.stop() } }
        let c = try await connect(sink.port)
        // aiosmtpd does not offer PIPELINING: this is the one-command-at-a-time path.
        #expect(c.extensions["PIPELINING"] == nil)
        let tx = OutboundTransaction(sender: "a@client.test", recipients: [
            .init(address: "ok@sink.test"), .init(address: "tempfail@sink.test"),
            .init(address: "permfail@sink.test"), .init(address: "ok2@sink.test"),
        ], message: message("mixed"))
        let outcomes = try await c.send(tx)
        #expect(outcomes.map { $0.reply.code } == [250, 450, 550, 250])
        if case .delivered = outcomes[0] {} else { Issue.record("first should be delivered") }
        if case .deferred = outcomes[1] {} else { Issue.record("second should be deferred") }
        if case .failed = outcomes[2] {} else { Issue.record("third should be failed") }
        #expect(await sink.waitForMessages(1, timeout: 5) == 1)
        let got = sink.messages()[0]
        // Dot-stuffing was undone by the server: the bytes are the message's own.
        #expect(got == message("mixed"))
        #expect(sink.index()[0].rcpts == ["ok@sink.test", "ok2@sink.test"])
        // The connection is reusable after RSET-free success.
        let second = try await c.send(OutboundTransaction(sender: "", recipients: [.init(address: "x@sink.test")],
                                                          message: message("second")))
        #expect(second.map { $0.reply.code } == [250])
        #expect(c.messagesSent == 2)
        await c.quit()
    }

    @Test func dataRejectionFailsAllAcceptedRecipients() async throws {
        let sink = try await SinkProcess()
        defer { Task { await sink.stop() } }
        let c = try await connect(sink.port)
        let outcomes = try await c.send(OutboundTransaction(sender: "a@client.test", recipients: [
            .init(address: "datafail@sink.test"), .init(address: "other@sink.test"),
        ], message: message("df")))
        #expect(outcomes.map { $0.reply.code } == [554, 554])
        // Every RCPT refused: DATA is still answered cleanly and the session stays usable.
        let none = try await c.send(OutboundTransaction(sender: "a@client.test", recipients: [
            .init(address: "permfail@sink.test"),
        ], message: message("none")))
        #expect(none.map { $0.reply.code } == [550])
        let ok = try await c.send(OutboundTransaction(sender: "a@client.test", recipients: [.init(address: "ok@sink.test")],
                                                      message: message("ok")))
        #expect(ok.map { $0.reply.code } == [250])
        await c.quit()
    }

    @Test func disconnectInDataThrowsAtTheDotPhase() async throws {
        let sink = try await SinkProcess()
        defer { Task { await sink.stop() } }
        let c = try await connect(sink.port)
        var big = message("big")
        big += Array(repeating: UInt8(ascii: "x"), count: 200_000) + [0x0D, 0x0A]
        do {
            _ = try await c.send(OutboundTransaction(sender: "a@client.test",
                                                     recipients: [.init(address: "disconnect-in-data@sink.test")],
                                                     message: big))
            Issue.record("expected an error")
        } catch let e as SMTPClientError {
            #expect(e.phase == .dot)
            #expect(e.reply == nil)
            #expect(!e.isPermanent)
        }
    }

    @Test func startTLSWithSelfSignedCertificate() async throws {
        let dir = NSTemporaryDirectory() + "herald-tls-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pair = try makeSelfSignedCertificate(in: dir)
        let sink = try await SinkProcess(tls: pair)
        defer { Task { await sink.stop() } }
        let c = try await connect(sink.port)
        #expect(c.extensions["STARTTLS"] != nil)
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .none
        try await c.startTLS(context: try NIOSSLContext(configuration: config), serverName: "localhost")
        try await c.hello("client.test")
        #expect(c.isTLS)
        #expect(c.extensions["STARTTLS"] == nil)
        let outcomes = try await c.send(OutboundTransaction(sender: "a@client.test", recipients: [.init(address: "t@sink.test")],
                                                            message: message("tls")))
        #expect(outcomes.map { $0.reply.code } == [250])
        #expect(await sink.waitForMessages(1, timeout: 5) == 1)
        #expect(sink.index()[0].tls)
        await c.quit()
    }

    @Test func sizeAndSMTPUTF8PrechecksNeedNoRoundTrip() async throws {
        let sink = try await SinkProcess()
        defer { Task { await sink.stop() } }
        let c = try await connect(sink.port)
        // aiosmtpd advertises SIZE 50000000 and SMTPUTF8; fake a smaller server limit
        // by sending more than it allows.
        let huge = Array(repeating: UInt8(ascii: "y"), count: 50_000_001)
        let outcomes = try await c.send(OutboundTransaction(sender: "a@client.test",
                                                            recipients: [.init(address: "a@sink.test")], message: huge))
        #expect(outcomes.map { $0.reply.code } == [552])
        #expect(outcomes[0].reply.enhanced == EnhancedStatusCode(5, 3, 4))
        await c.quit()
    }

    @Test func smtpSinkFromPostfix() async throws {
        // smtp-sink (Postfix) as the peer: PIPELINING, many messages on one connection.
        let port = try freeLoopbackPort()
        let proc = try ChildProcess(executable: "smtp-sink", arguments: ["-u", "postfix", "-c", "127.0.0.1:\(port)", "64"])
        defer { Task { await proc.killAndWait() } }
        // smtp-sink listens a moment after it starts: connect until it answers, for at
        // most ten seconds.
        var conn: SMTPClientConnection?
        let deadline = ContinuousClock.now + .seconds(10)
        while conn == nil, ContinuousClock.now < deadline {
            conn = try? await connect(port)
            if conn == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let c = try #require(conn, "smtp-sink did not answer within ten seconds")
        #expect(c.extensions["PIPELINING"] != nil)
        for i in 0..<50 {
            let r = try await c.send(OutboundTransaction(sender: "a@client.test",
                                                         recipients: [.init(address: "r\(i)@sink.test"), .init(address: "s\(i)@sink.test")],
                                                         message: message("m\(i)")))
            #expect(r.map { $0.reply.code } == [250, 250])
        }
        #expect(c.messagesSent == 50)
        await c.quit()
    }

    @Test func greetingTimeout() async throws {
        // A listener that accepts and never speaks.
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { _ in group.next().makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let port = server.localAddress!.port!
        let start = Date()
        do {
            _ = try await SMTPClientConnection.connect(host: "silent.test", address: "127.0.0.1", port: port, group: group,
                                                       timeouts: SMTPClientTimeouts(all: .milliseconds(300)))
            Issue.record("expected a timeout")
        } catch let e as SMTPClientError {
            #expect(e.kind == .timeout)
            #expect(e.phase == .greeting)
        }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func connectionRefused() async throws {
        let port = try freeLoopbackPort()
        do {
            _ = try await SMTPClientConnection.connect(host: "closed.test", address: "127.0.0.1", port: port, group: group,
                                                       timeouts: SMTPClientTimeouts(all: .seconds(2)))
            Issue.record("expected a connect failure")
        } catch let e as SMTPClientError {
            if case .connectFailed = e.kind {} else { Issue.record("unexpected \(e)") }
        }
    }
}

/// A port nobody listens on right now.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
