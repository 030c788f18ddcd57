import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOSSL
import HeraldTestSupport
import SMTPCore
import Testing

@testable import SMTPServer

/// `SMTPSessionHandler` on an in-memory channel with a hand-driven clock: what it writes,
/// when it reads, when it times out, and that a finished session is freed.
@Suite struct SMTPSessionHandlerTests {
    /// A sink whose commits wait until the test opens the gate.
    final class GatedSink: SMTPMessageSink, @unchecked Sendable {
        private let lock = NIOLock()
        private var waiting: [CheckedContinuation<Void, Never>] = []
        private var open = false
        private(set) var committed: [SMTPTransaction] = []

        var pending: Int { lock.withLock { waiting.count } }

        func commit(_ transaction: SMTPTransaction, session: SMTPSessionInfo) async throws -> String {
            await withCheckedContinuation { continuation in
                let go = lock.withLock { () -> Bool in
                    if open { return true }
                    waiting.append(continuation)
                    return false
                }
                if go { continuation.resume() }
            }
            lock.withLock { committed.append(transaction) }
            return "QUEUEID0000000000001"
        }

        func openGate() {
            let resumed = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
                open = true
                defer { waiting = [] }
                return waiting
            }
            for continuation in resumed { continuation.resume() }
        }
    }

    /// Counts `read` requests the session handler lets through to the socket.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        let reads = NIOLockedValueBox(0)
        func read(context: ChannelHandlerContext) {
            reads.withLockedValue { $0 += 1 }
            context.read()
        }
    }

    /// Holds the handler weakly, to see whether anything keeps it alive.
    final class WeakHandler: @unchecked Sendable {
        weak var handler: SMTPSessionHandler?
    }

    struct NoUsers: SMTPAuthenticator {
        var hasUsers: Bool { false }
        func verify(username: String, password: String) async -> Bool { false }
    }

    let timeouts = SMTPTimeouts(command: .seconds(60), data: .seconds(120))

    func makeChannel(sink: any SMTPMessageSink, counter: ReadCounter = ReadCounter(),
                     weak: WeakHandler = WeakHandler(), tls: NIOSSLContext? = nil) async throws -> NIOAsyncTestingChannel {
        var logger = Logger(label: "herald.smtp.test")
        logger.logLevel = .critical
        let config = tls == nil ? sessionConfig() : sessionConfig(tls: .starttls, tlsAvailable: true)
        let settings = SMTPListenerSettings(
            host: "127.0.0.1", port: 25, session: config, trustedNetworks: [try #require(IPNetwork("127.0.0.0/8"))],
            tlsContext: tls, timeouts: timeouts)
        let shared = SMTPServerShared(sink: sink, authenticator: NoUsers(), authThrottle: AuthFailureThrottle(),
                                      limiter: ConnectionLimiter(maxTotal: 10, maxPerClient: 10), logger: logger)
        let info = SMTPSessionInfo(sessionID: 1, listener: "127.0.0.1:25", clientIP: "127.0.0.1",
                                   clientAddress: "127.0.0.1:40000")
        let channel = try await NIOAsyncTestingChannel { channel in
            let handler = SMTPSessionHandler(
                session: SMTPSession(configuration: settings.session, clientTrusted: true, isTLS: false),
                settings: settings, shared: shared, info: info)
            weak.handler = handler
            try channel.pipeline.syncOperations.addHandler(counter)
            try channel.pipeline.syncOperations.addHandler(handler)
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000))
        return channel
    }

    /// Everything written so far, as text.
    func written(_ channel: NIOAsyncTestingChannel) async throws -> String {
        var text = ""
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: buffer)
        }
        return text
    }

    func send(_ channel: NIOAsyncTestingChannel, _ text: String) async throws {
        try await channel.writeInbound(ByteBuffer(string: text))
    }

    /// Waits until `condition` holds, checking every millisecond, for at most `timeout` of
    /// real time (the commit and the release of a handler happen on other tasks and
    /// threads, not on the test's clock); whether it came.
    func eventually(within timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: .milliseconds(1))
        }
        return true
    }

    @Test("greets on connect and answers pipelined commands in order")
    func greetsAndAnswers() async throws {
        let channel = try await makeChannel(sink: GatedSink())
        #expect(try await written(channel).hasPrefix("220 mx.herald.test"))
        try await send(channel, "EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@example.net>\r\n")
        let replies = try await written(channel).split(separator: "\r\n").map { String($0.prefix(3)) }
        #expect(replies.last == "250")
        #expect(replies.filter { $0 == "250" }.count >= 3)
        _ = try? await channel.close()
    }

    @Test("no read while the message is being committed; reading resumes with the 250")
    func holdsReadsDuringCommit() async throws {
        let sink = GatedSink()
        let counter = ReadCounter()
        let channel = try await makeChannel(sink: sink, counter: counter)
        _ = try await written(channel)
        try await send(channel, "EHLO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        #expect(try await written(channel).contains("354 "))
        try await send(channel, "Subject: t\r\n\r\nbody\r\n.\r\n")
        // The commit is waiting at the gate: reads stop, and nothing is answered yet.
        try #require(try await eventually { sink.pending == 1 }, "the message never reached the sink")
        // The reads are asked for on the event loop and counted there, so a read that the
        // handler let through would be counted before the check.
        let reads = try await channel.testingEventLoop.executeInContext {
            let before = counter.reads.withLockedValue { $0 }
            channel.read()
            channel.read()
            return (before: before, after: counter.reads.withLockedValue { $0 })
        }
        #expect(reads.after == reads.before, "a read went through during the commit")
        #expect(!(try await written(channel)).contains("250 2.0.0"))

        sink.openGate()
        var text = ""
        let answered = try await eventually {
            text += try await written(channel)
            return text.contains("250 2.0.0")
        }
        #expect(answered, "no 250 after the commit: \(text)")
        #expect(text.contains("250 2.0.0 Ok: queued as QUEUEID0000000000001"))
        #expect(counter.reads.withLockedValue { $0 } > reads.before, "the held read is passed on after the commit")
        try await send(channel, "QUIT\r\n")
        #expect(try await written(channel).hasPrefix("221"))
        #expect(sink.committed.count == 1)
        #expect(sink.committed.first?.message == Array("Subject: t\r\n\r\nbody\r\n".utf8))
        _ = try? await channel.close()
    }

    @Test("an idle session gets 421 4.4.2 after the command time-out and is closed")
    func commandTimeout() async throws {
        let channel = try await makeChannel(sink: GatedSink())
        _ = try await written(channel)
        await channel.testingEventLoop.advanceTime(by: .seconds(59))
        #expect(try await written(channel) == "")
        #expect(channel.isActive)
        await channel.testingEventLoop.advanceTime(by: .seconds(2))
        #expect(try await written(channel).hasPrefix("421 4.4.2"))
        try await channel.closeFuture.get()
        #expect(!channel.isActive)
    }

    @Test("the data time-out, not the command time-out, applies inside DATA")
    func dataTimeout() async throws {
        let channel = try await makeChannel(sink: GatedSink())
        _ = try await written(channel)
        try await send(channel, "HELO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\npart of a line")
        _ = try await written(channel)
        await channel.testingEventLoop.advanceTime(by: .seconds(90))
        #expect(channel.isActive, "closed at the command time-out while receiving data")
        await channel.testingEventLoop.advanceTime(by: .seconds(31))
        #expect(try await written(channel).hasPrefix("421 4.4.2"))
        try await channel.closeFuture.get()
    }

    @Test("STARTTLS: TLS goes in front of the session; plaintext pipelined behind it is dropped, not answered")
    func startTLSDiscardsPipelinedPlaintext() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-tls")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await Command.run("openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=mx.herald.test", "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem",
        ], timeout: 30)
        try #require(made.termination.succeeded, "\(made)")
        let context = try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(directory + "/cert.pem").map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: directory + "/key.pem", format: .pem))))
        let channel = try await makeChannel(sink: GatedSink(), tls: context)
        _ = try await written(channel)
        try await send(channel, "EHLO c.test\r\nSTARTTLS\r\nMAIL FROM:<evil@c.test>\r\nRSET\r\n")
        let replies = try await written(channel)
        #expect(replies.contains("250-STARTTLS") || replies.contains("250 STARTTLS"))
        #expect(replies.hasSuffix("\r\n220 2.0.0 Ready to start TLS\r\n"), "\(replies)")
        #expect(!replies.contains("MAIL"))
        #expect(replies.components(separatedBy: "\r\n220 ").count == 2, "one 220 for STARTTLS, nothing after it")
        let hasTLS = try await channel.testingEventLoop.executeInContext {
            (try? channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)) != nil
        }
        #expect(hasTLS, "the TLS handler is in the pipeline")
        _ = try? await channel.close()
    }

    @Test("a finished session is freed: nothing keeps its handler alive after close")
    func handlerIsReleasedAfterClose() async throws {
        let weak = WeakHandler()
        do {
            let channel = try await makeChannel(sink: GatedSink(), weak: weak)
            _ = try await written(channel)
            #expect(weak.handler != nil, "the channel holds its handler while open")
            try await send(channel, "EHLO c.test\r\nQUIT\r\n")
            #expect(try await written(channel).contains("221"))
            try await channel.closeFuture.get()
        }
        // The channel and the test's references are gone; a cycle (handler <-> context)
        // would keep the handler.
        #expect(try await eventually(within: .seconds(5)) { weak.handler == nil }, "the session handler outlived its channel")
    }
}
