import DNS
import Foundation
import Logging
import NIOCore
import SMTPClient
import SMTPCore
import Spool

/// Delivery's side of an attempt: which destination a recipient domain goes to (its
/// `[[route]]`, else its MX hosts), handed to SMTPClient's ``OutboundDeliverer``, which
/// owns the connection pool and the MX/address walk.
final class Deliverer: Sendable {
    let config: DeliveryConfiguration
    let outbound: OutboundDeliverer
    let local: (any LocalDeliveryAgent)?

    var pool: SMTPConnectionPool { outbound.pool }

    init(config: DeliveryConfiguration, resolver: any MXResolver, group: any EventLoopGroup, logger: Logger,
         local: (any LocalDeliveryAgent)? = nil) {
        self.config = config
        self.local = local
        let pool = SMTPConnectionPool(maxMessages: config.messagesPerConnection,
                                      idleTimeout: config.connectionIdleTimeout)
        self.outbound = OutboundDeliverer(
            settings: OutboundSettings(heloName: config.heloName, mxPort: config.mxPort, timeouts: config.timeouts,
                                       sourceAddress: config.sourceAddress),
            resolver: resolver, group: group, pool: pool, logger: logger)
    }

    func attempt(domain: String, tx: OutboundTransaction, id: QueueID? = nil) async -> AttemptResult {
        guard config.isLocal(domain) else { return await outbound.attempt(tx, to: config.destination(for: domain)) }
        let recipients = tx.recipients.map(\.address)
        guard let local else {
            let reply = SMTPReply(451, EnhancedStatusCode(4, 3, 0), "no local delivery agent for \(domain) on this node")
            return AttemptResult(outcomes: recipients.map { _ in .deferred(reply) }, mxHost: "local", tls: false)
        }
        let results = await local.deliver(LocalMessage(id: id?.rawValue ?? "", sender: tx.sender, recipients: recipients,
                                                       message: tx.message))
        let outcomes: [RecipientOutcome] = recipients.indices.map { i in
            switch i < results.count ? results[i] : .deferred("no result from the local delivery agent") {
            case .delivered(let text): return .delivered(SMTPReply(250, EnhancedStatusCode(2, 0, 0), text))
            case .deferred(let text): return .deferred(SMTPReply(451, EnhancedStatusCode(4, 3, 0), text))
            case .failed(let text): return .failed(SMTPReply(554, EnhancedStatusCode(5, 3, 0), text))
            }
        }
        return AttemptResult(outcomes: outcomes, mxHost: "local", tls: false)
    }
}

/// A message addressed to Herald itself, as a ``LocalDeliveryAgent`` receives it.
public struct LocalMessage: Sendable {
    /// Its spool id: the same on every attempt.
    public var id: String
    public var sender: String
    public var recipients: [String]
    public var message: [UInt8]

    public init(id: String, sender: String, recipients: [String], message: [UInt8]) {
        self.id = id
        self.sender = sender
        self.recipients = recipients
        self.message = message
    }
}

/// What became of a recipient of a ``LocalMessage``.
public enum LocalDeliveryResult: Sendable, Equatable {
    /// Consumed; the text goes to the delivery log.
    case delivered(String)
    /// Try again later (the usual retry schedule); e.g. the database is unreachable.
    case deferred(String)
    /// Never (a DSN goes to the sender unless it is `<>`).
    case failed(String)
}

/// Consumes mail for the domains in ``DeliveryConfiguration/localDomains`` (Herald's
/// return-path domains) in place of an SMTP delivery. Such mail is spooled and
/// scheduled like any other, so it is acknowledged only once durable, retried while
/// the agent defers it, and logged; the agent must be idempotent, since a crash after
/// it acted and before the spool recorded the outcome delivers the message again.
public protocol LocalDeliveryAgent: Sendable {
    /// One result per recipient, in order.
    func deliver(_ message: LocalMessage) async -> [LocalDeliveryResult]
}

extension DeliveryConfiguration {
    /// Where mail for `domain` goes: its route's smart host, or its MX hosts with the
    /// route's (or the default, opportunistic) TLS policy.
    public func destination(for domain: String) -> OutboundDestination {
        let route = route(for: domain)
        return OutboundDestination(
            domain: domain, host: route?.host, port: route?.port ?? mxPort, tls: route?.tls ?? .opportunistic,
            username: route?.username, password: route?.password, authWithoutTLS: route?.authWithoutTLS ?? false,
            caFile: route?.caFile, tlsVerify: route?.tlsVerify ?? true)
    }
}
