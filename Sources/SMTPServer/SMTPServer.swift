import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore

/// Binds the listeners and runs sessions until `shutdown`.
///
/// Shutdown drains: the listening sockets close first (no new sessions), then every
/// session gets `SMTPShutdownEvent`: an idle one answers `421 4.3.2` and closes, one
/// in DATA or waiting for its commit finishes that transaction first. After the grace
/// period whatever is left is closed; nothing acknowledged is lost, because `250` was
/// only ever sent after the commit.
public final class SMTPServer: Sendable {
    private let listeners: [SMTPListenerSettings]
    private let group: any EventLoopGroup
    private let shared: SMTPServerShared
    private let state = NIOLockedValueBox<(servers: [any Channel], sessions: [ObjectIdentifier: any Channel])>(([], [:]))

    public init(listeners: [SMTPListenerSettings], group: any EventLoopGroup, sink: any SMTPMessageSink,
                authenticator: any SMTPAuthenticator, limiter: ConnectionLimiter,
                authThrottle: AuthFailureThrottle = AuthFailureThrottle(), tenants: (any SubmissionTenants)? = nil,
                logger: Logger) {
        self.listeners = listeners
        self.group = group
        self.shared = SMTPServerShared(sink: sink, authenticator: authenticator, tenants: tenants,
                                       authThrottle: authThrottle, limiter: limiter, logger: logger)
    }

    /// The addresses actually bound (useful with port 0).
    public var boundAddresses: [SocketAddress] {
        state.withLockedValue { $0.servers.compactMap(\.localAddress) }
    }

    public func start() async throws {
        for listener in listeners {
            let channel = try await bootstrap(listener).bind(host: listener.host, port: listener.port).get()
            state.withLockedValue { $0.servers.append(channel) }
            shared.logger.info("listening", metadata: [
                "address": "\(channel.localAddress.map { "\($0.ipAddress ?? listener.host):\($0.port ?? listener.port)" } ?? listener.name)",
                "role": "\(listener.session.role.rawValue)", "tls": "\(listener.session.tls.rawValue)",
            ])
        }
    }

    private func bootstrap(_ listener: SMTPListenerSettings) -> ServerBootstrap {
        let shared = self.shared
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initialize(channel, listener, shared)
                }
            }
    }

    private func initialize(_ channel: any Channel, _ listener: SMTPListenerSettings, _ shared: SMTPServerShared) throws {
        let remote = channel.remoteAddress
        let ip = remote?.ipAddress ?? "unknown"
        let sync = channel.pipeline.syncOperations
        guard shared.limiter.acquire(ip) else {
            shared.logger.warning("connection limit reached", metadata: ["client": "\(ip)"])
            try sync.addHandler(SMTPRejectHandler(reply: SMTPReply(421, EnhancedStatusCode(4, 7, 0),
                "\(listener.session.hostname) Too many connections, try again later")))
            return
        }
        let key = ObjectIdentifier(channel)
        state.withLockedValue { $0.sessions[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            shared.limiter.release(ip)
            _ = state.withLockedValue { $0.sessions.removeValue(forKey: key) }
        }
        if listener.session.tls == .implicit, let tls = listener.tlsContext {
            try sync.addHandler(NIOSSLServerHandler(context: tls))
        }
        let trusted = listener.trustedNetworks.contains { $0.contains(ip) }
        let session = SMTPSession(configuration: listener.session, clientTrusted: trusted,
                                  isTLS: listener.session.tls == .implicit && listener.tlsContext != nil)
        let clientAddress = remote?.port.map { ip.contains(":") ? "[\(ip)]:\($0)" : "\(ip):\($0)" } ?? ip
        // The bound address (a configured port 0 becomes the real one).
        let local = channel.localAddress.flatMap { a in a.port.map { "\(a.ipAddress ?? listener.host):\($0)" } }
        let info = SMTPSessionInfo(sessionID: shared.nextSessionID(), listener: local ?? listener.name, clientIP: ip,
                                   clientAddress: clientAddress)
        try sync.addHandler(SMTPSessionHandler(session: session, settings: listener, shared: shared, info: info))
    }

    /// Stops accepting, lets transactions in flight finish, closes the rest after `grace`.
    public func shutdown(grace: TimeAmount = .seconds(30)) async {
        let servers = state.withLockedValue { s in
            let servers = s.servers
            s.servers = []
            return servers
        }
        for server in servers {
            try? await server.close()
        }
        let sessions = state.withLockedValue { Array($0.sessions.values) }
        shared.logger.info("shutting down", metadata: ["sessions": "\(sessions.count)"])
        for channel in sessions {
            channel.pipeline.fireUserInboundEventTriggered(SMTPShutdownEvent())
        }
        let deadline = NIODeadline.now() + grace
        while NIODeadline.now() < deadline {
            if state.withLockedValue({ $0.sessions.isEmpty }) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
        for channel in state.withLockedValue({ Array($0.sessions.values) }) {
            try? await channel.close()
        }
    }
}
