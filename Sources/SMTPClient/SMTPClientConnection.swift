import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SMTPCore

/// Reads replies off the wire and hands them to the commands waiting for them, in order.
final class SMTPClientReplyHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var parser = SMTPReplyParser()
    private var waiting = CircularBuffer<EventLoopPromise<SMTPReply>>()
    private var failure: SMTPClientError.Kind?
    var tlsPromise: EventLoopPromise<Void>?
    var timedOut = false

    /// Replies that arrived before anyone asked (the greeting can beat the first `expect`).
    private var early = CircularBuffer<SMTPReply>()

    func expect(_ promise: EventLoopPromise<SMTPReply>, host: String, phase: ClientPhase) {
        if let reply = early.popFirst() {
            promise.succeed(reply)
        } else if let failure {
            promise.fail(SMTPClientError(timedOut ? .timeout : failure, phase: phase, host: host))
        } else {
            waiting.append(promise)
        }
    }

    var isBroken: Bool { failure != nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            let replies = try buffer.withUnsafeReadableBytes { try parser.feed($0) }
            for reply in replies {
                if let promise = waiting.popFirst() {
                    promise.succeed(reply)
                } else if early.count < 16 {
                    // Not asked for yet: the greeting racing the first `expect`, or a
                    // server's 421 before it closes (the next command then sees it).
                    early.append(reply)
                } else {
                    failAll(.protocolError("unsolicited replies"), context: context)
                }
            }
        } catch {
            failAll(.protocolError("unparsable reply (\(error))"), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed, context: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tlsPromise {
            self.tlsPromise = nil
            tlsPromise.fail(SMTPClientError(.tlsFailed(ErrorText.describe(error)), phase: .tlsHandshake, host: ""))
        }
        failAll(.networkError(ErrorText.describe(error)), context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, let tlsPromise {
            self.tlsPromise = nil
            tlsPromise.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func failAll(_ kind: SMTPClientError.Kind, context: ChannelHandlerContext?) {
        if failure == nil { failure = kind }
        let k = timedOut ? SMTPClientError.Kind.timeout : (failure ?? kind)
        while let promise = waiting.popFirst() {
            promise.fail(SMTPClientError(k, phase: .connect, host: ""))
        }
        if let tlsPromise {
            self.tlsPromise = nil
            tlsPromise.fail(SMTPClientError(k, phase: .tlsHandshake, host: ""))
        }
        context?.close(promise: nil)
    }
}

/// One outbound SMTP connection. Methods must not be called concurrently (one
/// transaction at a time per connection); the pool guarantees that.
public final class SMTPClientConnection: Sendable {
    public let host: String
    public let address: String
    public let port: Int
    let channel: any Channel
    private let handler: NIOLoopBound<SMTPClientReplyHandler>
    private let state = NIOLockedValueBox(State())
    public let timeouts: SMTPClientTimeouts

    struct State {
        var extensions: [String: String] = [:]
        var esmtp = false
        var tls = false
        var messages = 0
        var lastUsed = NIODeadline.now()
    }

    /// EHLO keywords (upper case) and their parameters.
    public var extensions: [String: String] { state.withLockedValue { $0.extensions } }
    public var isTLS: Bool { state.withLockedValue { $0.tls } }
    public var messagesSent: Int { state.withLockedValue { $0.messages } }
    public var lastUsed: NIODeadline { state.withLockedValue { $0.lastUsed } }
    public var isActive: Bool { channel.isActive }

    init(host: String, address: String, port: Int, channel: any Channel, handler: NIOLoopBound<SMTPClientReplyHandler>,
         timeouts: SMTPClientTimeouts) {
        self.host = host
        self.address = address
        self.port = port
        self.channel = channel
        self.handler = handler
        self.timeouts = timeouts
    }

    /// Connects to `address:port` and reads the greeting; a non-2xx greeting is an error.
    public static func connect(host: String, address: String, port: Int, group: any EventLoopGroup,
                               timeouts: SMTPClientTimeouts, sourceAddress: String? = nil) async throws -> SMTPClientConnection {
        let box = NIOLockedValueBox<NIOLoopBound<SMTPClientReplyHandler>?>(nil)
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeouts.connect)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = SMTPClientReplyHandler()
                    try channel.pipeline.syncOperations.addHandler(handler)
                    box.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                }
            }
        if let sourceAddress {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: sourceAddress, port: 0))
        }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: address, port: port).get()
        } catch {
            throw SMTPClientError(.connectFailed(ErrorText.describe(error)), phase: .connect,
                                  host: Self.peerName(host: host, address: address, port: port))
        }
        guard let handler = box.withLockedValue({ $0 }) else {
            channel.close(promise: nil)
            throw SMTPClientError(.connectFailed("channel initializer did not run"), phase: .connect,
                                  host: Self.peerName(host: host, address: address, port: port))
        }
        let connection = SMTPClientConnection(host: host, address: address, port: port, channel: channel,
                                              handler: handler, timeouts: timeouts)
        let greeting = try await connection.exchange(nil, replies: 1, phase: .greeting)[0]
        guard greeting.code / 100 == 2 else {
            connection.close()
            throw SMTPClientError(.rejected, phase: .greeting, reply: greeting, host: connection.peer)
        }
        return connection
    }

    public var peer: String { Self.peerName(host: host, address: address, port: port) }

    /// `mx.example.com[192.0.2.1]:25`, or `127.0.0.1:2600` (`[::1]:25`) when the host is the address.
    public static func peerName(host: String, address: String, port: Int) -> String {
        if host == address || host.isEmpty { return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)" }
        return "\(host)[\(address)]:\(port)"
    }

    /// Writes `bytes` (if any) and waits for `replies` replies, within the phase's time-out.
    /// On time-out the connection is closed: its state is unknown.
    public func exchange(_ bytes: [UInt8]?, replies: Int, phase: ClientPhase) async throws -> [SMTPReply] {
        let loop = channel.eventLoop
        let timeout = timeouts.timeout(for: phase)
        let handler = self.handler
        let channel = self.channel
        let peer = self.peer
        let futures: [EventLoopFuture<SMTPReply>] = try await loop.submit {
            let h = handler.value
            var futures: [EventLoopFuture<SMTPReply>] = []
            for _ in 0..<replies {
                let p = loop.makePromise(of: SMTPReply.self)
                h.expect(p, host: peer, phase: phase)
                futures.append(p.futureResult)
            }
            if let bytes {
                var buffer = channel.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                channel.writeAndFlush(buffer, promise: nil)
            }
            if replies > 0 {
                let all = EventLoopFuture.andAllComplete(futures, on: loop)
                let task = loop.scheduleTask(in: timeout) {
                    handler.value.timedOut = true
                    channel.close(promise: nil)
                }
                all.whenComplete { _ in task.cancel() }
            }
            return futures
        }.get()
        var out: [SMTPReply] = []
        for f in futures {
            do {
                out.append(try await f.get())
            } catch var error as SMTPClientError {
                error.phase = phase
                error.host = peer
                throw error
            }
        }
        state.withLockedValue { $0.lastUsed = .now() }
        return out
    }

    func command(_ line: String, phase: ClientPhase) async throws -> SMTPReply {
        try await exchange(Array((line + "\r\n").utf8), replies: 1, phase: phase)[0]
    }

    /// EHLO, falling back to HELO when the server refuses EHLO.
    public func hello(_ name: String) async throws {
        let reply = try await command("EHLO \(name)", phase: .ehlo)
        if reply.code == 250 {
            var ext: [String: String] = [:]
            for line in reply.lines.dropFirst() {
                let parts = line.split(separator: " ", maxSplits: 1)
                guard let key = parts.first else { continue }
                ext[key.uppercased()] = parts.count > 1 ? String(parts[1]) : ""
            }
            state.withLockedValue {
                $0.extensions = ext
                $0.esmtp = true
            }
            return
        }
        guard reply.code / 100 == 5 else {
            throw SMTPClientError(.rejected, phase: .ehlo, reply: reply, host: peer)
        }
        let helo = try await command("HELO \(name)", phase: .ehlo)
        guard helo.code == 250 else { throw SMTPClientError(.rejected, phase: .ehlo, reply: helo, host: peer) }
        state.withLockedValue {
            $0.extensions = [:]
            $0.esmtp = false
        }
    }

    /// STARTTLS and the handshake. The caller says EHLO again afterwards (RFC 3207 §4.2).
    public func startTLS(context: NIOSSLContext, serverName: String?) async throws {
        let reply = try await command("STARTTLS", phase: .starttls)
        guard reply.code == 220 else { throw SMTPClientError(.rejected, phase: .starttls, reply: reply, host: peer) }
        let handler = self.handler
        let channel = self.channel
        let peer = self.peer
        let timeout = timeouts.timeout(for: .tlsHandshake)
        let done: EventLoopFuture<Void> = try await channel.eventLoop.submit {
            let name = serverName.flatMap { $0.isEmpty || $0.first!.isNumber ? nil : $0 }
            // Build the TLS handler first: a failure here must not leave a promise behind.
            let ssl = try NIOSSLClientHandler(context: context, serverHostname: name)
            guard channel.isActive, !handler.value.isBroken else {
                throw SMTPClientError(.connectionClosed, phase: .tlsHandshake, host: peer)
            }
            let promise = channel.eventLoop.makePromise(of: Void.self)
            handler.value.tlsPromise = promise
            do {
                try channel.pipeline.syncOperations.addHandler(ssl, position: .first)
            } catch {
                // The server hung up after its 220: complete the promise, report the error.
                handler.value.tlsPromise = nil
                promise.fail(error)
                throw SMTPClientError(.tlsFailed(ErrorText.describe(error)), phase: .tlsHandshake, host: peer)
            }
            let task = channel.eventLoop.scheduleTask(in: timeout) {
                handler.value.timedOut = true
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in task.cancel() }
            return promise.futureResult
        }.get()
        do {
            try await done.get()
        } catch var error as SMTPClientError {
            error.host = peer
            throw error
        }
        state.withLockedValue { $0.tls = true }
    }

    /// AUTH PLAIN (or LOGIN when only that is offered).
    public func authenticate(user: String, password: String) async throws {
        let mechanisms = (extensions["AUTH"] ?? "").uppercased().split(separator: " ").map(String.init)
        if mechanisms.contains("PLAIN") || !mechanisms.contains("LOGIN") {
            let token = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            let reply = try await command("AUTH PLAIN \(token)", phase: .auth)
            guard reply.code == 235 else { throw SMTPClientError(.rejected, phase: .auth, reply: reply, host: peer) }
            return
        }
        var reply = try await command("AUTH LOGIN", phase: .auth)
        guard reply.code == 334 else { throw SMTPClientError(.rejected, phase: .auth, reply: reply, host: peer) }
        reply = try await command(Data(user.utf8).base64EncodedString(), phase: .auth)
        guard reply.code == 334 else { throw SMTPClientError(.rejected, phase: .auth, reply: reply, host: peer) }
        reply = try await command(Data(password.utf8).base64EncodedString(), phase: .auth)
        guard reply.code == 235 else { throw SMTPClientError(.rejected, phase: .auth, reply: reply, host: peer) }
    }

    func countMessage() { state.withLockedValue { $0.messages += 1 } }

    public func rset() async throws {
        let reply = try await command("RSET", phase: .rset)
        guard reply.code == 250 else { throw SMTPClientError(.rejected, phase: .rset, reply: reply, host: peer) }
    }

    /// QUIT, politely, then close; errors are ignored.
    public func quit() async {
        _ = try? await command("QUIT", phase: .quit)
        close()
    }

    public func close() {
        channel.close(promise: nil)
    }
}
