import DNS
import Foundation
import Logging
import NIOCore
import SMTPClient

/// Delivery's side of an attempt: which destination a recipient domain goes to (its
/// `[[route]]`, else its MX hosts), handed to SMTPClient's ``OutboundDeliverer``, which
/// owns the connection pool and the MX/address walk.
final class Deliverer: Sendable {
    let config: DeliveryConfiguration
    let outbound: OutboundDeliverer

    var pool: SMTPConnectionPool { outbound.pool }

    init(config: DeliveryConfiguration, resolver: any MXResolver, group: any EventLoopGroup, logger: Logger) {
        self.config = config
        let pool = SMTPConnectionPool(maxMessages: config.messagesPerConnection,
                                      idleTimeout: config.connectionIdleTimeout)
        self.outbound = OutboundDeliverer(
            settings: OutboundSettings(heloName: config.heloName, mxPort: config.mxPort, timeouts: config.timeouts,
                                       sourceAddress: config.sourceAddress),
            resolver: resolver, group: group, pool: pool, logger: logger)
    }

    func attempt(domain: String, tx: OutboundTransaction) async -> AttemptResult {
        await outbound.attempt(tx, to: config.destination(for: domain))
    }
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
