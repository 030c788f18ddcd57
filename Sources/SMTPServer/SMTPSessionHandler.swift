import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore

/// Interprets `SMTPSession` actions on a NIO channel. Framing stays inside the session
/// (not in a decoder in front of TLS), so STARTTLS discards pipelined plaintext.
/// While a commit or an AUTH check is pending the handler stops reading (back-pressure).
final class SMTPSessionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: SMTPSession
    private let settings: SMTPListenerSettings
    private let shared: SMTPServerShared
    private let info: SMTPSessionInfo
    private var logger: Logger
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var timeout: Scheduled<Void>?
    private var outbound: ByteBuffer?
    private var closed = false

    init(session: SMTPSession, settings: SMTPListenerSettings, shared: SMTPServerShared, info: SMTPSessionInfo) {
        self.session = session
        self.settings = settings
        self.shared = shared
        self.info = info
        var logger = shared.logger
        logger[metadataKey: "session"] = "\(info.sessionID)"
        logger[metadataKey: "client"] = "\(info.clientAddress)"
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    /// Drops the context: the context holds this handler, so keeping it past removal is a
    /// reference cycle that kept every finished session (handler, session, context and
    /// pipeline, about 2 KB) alive for the life of the process.
    func handlerRemoved(context: ChannelHandlerContext) {
        closed = true
        timeout?.cancel()
        timeout = nil
        outbound = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false
    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        logger.debug("connect", metadata: ["listener": "\(info.listener)"])
        let delay = settings.timeouts.greetingDelay
        if delay > .zero {
            context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
                run(session.greet())
                armTimeout()
            }
        } else {
            run(session.greet())
            armTimeout()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let user = session.authenticatedUser, let tenants = shared.tenants {
            session.recipientRefusal = tenants.knownRefusal(forUser: user)
        }
        let actions = buffer.withUnsafeReadableBytes { session.receive($0) }
        run(actions)
        armTimeout()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
    }

    func read(context: ChannelHandlerContext) {
        if holdsInput {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        timeout?.cancel()
        if session.inTransaction {
            logger.info("lost connection in a transaction")
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error: \(error)")
        closed = true
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            awaitingTLS = false
            logger.debug("TLS established")
            run(session.tlsEstablished())
            armTimeout()
        } else if event is SMTPShutdownEvent {
            run(session.shutdownRequested())
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private var holdsInput: Bool {
        session.isWaiting && !awaitingTLS
    }

    private var awaitingTLS = false

    // MARK: - Actions

    private func run(_ actions: [SMTPSessionAction]) {
        guard let context, !closed else { return }
        for action in actions {
            switch action {
            case .reply(let reply):
                write(reply)
            case .replyAndClose(let reply):
                write(reply)
                closeAfterFlush(context)
                return
            case .startTLS:
                flush()
                startTLS(context)
            case .commit(let transaction):
                commit(transaction, context)
            case .verifyCredentials(let username, let password):
                verify(username, password, context)
            case .discardedPlaintextAfterSTARTTLS(let n):
                logger.warning("improper command pipelining after STARTTLS: \(n) plaintext octets discarded")
            }
        }
        flush()
        if readPending && !holdsInput {
            readPending = false
            context.read()
        }
    }

    private func write(_ reply: SMTPReply) {
        guard let context else { return }
        let text = reply.encoded
        if outbound == nil { outbound = context.channel.allocator.buffer(capacity: 256) }
        outbound!.writeString(text)
    }

    private func flush() {
        guard let context, let buffer = outbound, buffer.readableBytes > 0 else { return }
        outbound = nil
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    private func closeAfterFlush(_ context: ChannelHandlerContext) {
        closed = true
        timeout?.cancel()
        if let buffer = outbound {
            outbound = nil
            context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        } else {
            context.close(promise: nil)
        }
    }

    private func startTLS(_ context: ChannelHandlerContext) {
        guard let tls = settings.tlsContext else {
            closeAfterFlush(context)
            return
        }
        awaitingTLS = true
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
        } catch {
            logger.error("cannot start TLS: \(error)")
            closed = true
            context.close(promise: nil)
        }
    }

    private func commit(_ transaction: SMTPTransaction, _ context: ChannelHandlerContext) {
        timeout?.cancel()
        let sink = shared.sink
        let info = self.info
        let promise = context.eventLoop.makePromise(of: String.self)
        promise.completeWithTask {
            try await sink.commit(transaction, session: info)
        }
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let id):
                let sender = transaction.sender.description
                logger.info("queued", metadata: [
                    "id": "\(id)", "user": "\(transaction.authenticatedUser ?? "-")",
                    "from": "<\(sender)>", "nrcpt": "\(transaction.recipients.count)",
                    "size": "\(transaction.message.count)", "tls": "\(transaction.tls)",
                ])
                guard !closed else {
                    logger.info("queued after the client left", metadata: ["id": "\(id)"])
                    return
                }
                run(session.commitSucceeded(queueID: id))
            case .failure(let refusal as SubmissionRefused):
                logger.info("refused", metadata: [
                    "user": "\(transaction.authenticatedUser ?? "-")", "reply": "\(refusal.reply.description)",
                ])
                guard !closed else { return }
                run(session.commitRefused(refusal.reply))
            case .failure(let error):
                logger.error("spool commit failed: \(error)")
                guard !closed else { return }
                run(session.commitFailed())
            }
            armTimeout()
        }
    }

    private func verify(_ username: String, _ password: String, _ context: ChannelHandlerContext) {
        timeout?.cancel()
        let authenticator = shared.authenticator
        let promise = context.eventLoop.makePromise(of: Bool.self)
        promise.completeWithTask {
            await authenticator.verify(username: username, password: password)
        }
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            let ok = (try? result.get()) ?? false
            if ok {
                // A success does not clear the address's failure count: one valid
                // account must not reset the brake on guessing others.
                logger.info("authenticated", metadata: ["user": "\(username)"])
                guard !closed else { return }
                run(session.authenticationFinished(user: username))
                armTimeout()
            } else {
                let delay = shared.authThrottle.failed(info.clientIP)
                logger.warning("authentication failed", metadata: ["user": "\(username)", "delay": "\(delay)"])
                context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
                    guard !closed else { return }
                    run(session.authenticationFinished(user: nil))
                    armTimeout()
                }
            }
        }
    }

    private func armTimeout() {
        guard let context, !closed else { return }
        timeout?.cancel()
        if session.isWaiting && !awaitingTLS { return }
        let amount = session.receivingData ? settings.timeouts.data : settings.timeouts.command
        timeout = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [self] in
            logger.info("timeout")
            run(session.timedOut())
        }
    }
}

/// Answers `421` to a connection over the limits and closes it.
final class SMTPRejectHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reply: SMTPReply

    init(reply: SMTPReply) { self.reply = reply }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 96)
        buffer.writeString(reply.encoded)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { channelActive(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
