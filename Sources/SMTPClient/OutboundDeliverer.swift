import DNS
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SMTPCore

/// Where one attempt goes: the recipient domain's mail exchangers, or a fixed smart
/// host (a `[[route]]`), with the TLS policy and credentials for it.
public struct OutboundDestination: Sendable {
    /// The recipients' domain: MX lookups, and the name in replies made up locally.
    public var domain: String
    /// A smart host instead of the domain's MX hosts.
    public var host: String?
    /// The smart host's port (MX hosts use ``OutboundSettings/mxPort``).
    public var port: Int
    public var tls: OutboundTLSPolicy
    public var username: String?
    public var password: String?
    /// Allow AUTH over a connection without TLS.
    public var authWithoutTLS: Bool
    /// Trust roots for `.verify` (PEM), instead of the system's.
    public var caFile: String?
    /// With credentials, the certificate must be verified before the password goes out
    /// (the policy becomes `.verify`) unless this is false (the route's explicit
    /// `tls_verify = false`).
    public var tlsVerify: Bool

    /// The policy connections follow: `.verify` whenever a password would be sent over
    /// TLS and `tlsVerify` stands.
    public var effectiveTLS: OutboundTLSPolicy {
        if tls == .verify { return .verify }
        if username != nil && tlsVerify && tls != .off { return .verify }
        return tls
    }

    public init(domain: String, host: String? = nil, port: Int = 25, tls: OutboundTLSPolicy = .opportunistic,
                username: String? = nil, password: String? = nil, authWithoutTLS: Bool = false,
                caFile: String? = nil, tlsVerify: Bool = true) {
        self.caFile = caFile
        self.tlsVerify = tlsVerify
        self.domain = domain
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.authWithoutTLS = authWithoutTLS
    }
}

/// What every outbound connection shares.
public struct OutboundSettings: Sendable {
    public var heloName: String
    public var mxPort: Int
    public var timeouts: SMTPClientTimeouts
    public var sourceAddress: String?
    /// At most this many addresses are tried per attempt (Postfix smtp_mx_address_limit).
    public var addressLimit: Int

    public init(heloName: String, mxPort: Int = 25, timeouts: SMTPClientTimeouts = SMTPClientTimeouts(),
                sourceAddress: String? = nil, addressLimit: Int = 5) {
        self.heloName = heloName
        self.mxPort = mxPort
        self.timeouts = timeouts
        self.sourceAddress = sourceAddress
        self.addressLimit = addressLimit
    }
}

/// The result of one delivery attempt of one message to one destination domain.
public struct AttemptResult: Sendable {
    public var outcomes: [RecipientOutcome]
    public var mxHost: String?
    public var ip: String?
    public var tls: Bool
    /// The session broke after the final dot was sent: the message may have been
    /// delivered and will be sent again.
    public var mayBeDuplicate = false
    /// The destination answered with a throttling reply.
    public var throttled = false
    /// The MX host names, for the MX-site throttle key.
    public var mxSite: String?

    public init(outcomes: [RecipientOutcome], mxHost: String? = nil, ip: String? = nil, tls: Bool) {
        self.outcomes = outcomes
        self.mxHost = mxHost
        self.ip = ip
        self.tls = tls
    }
}

/// Runs one attempt: MX lookup (or the smart host), address lookup, a pooled or new
/// connection, STARTTLS per policy, AUTH for smart hosts, the transaction. Tries the
/// next address or MX host when one refuses or times out before the message was sent.
public final class OutboundDeliverer: Sendable {
    let settings: OutboundSettings
    let resolver: any MXResolver
    let group: any EventLoopGroup
    public let pool: SMTPConnectionPool
    let tlsContext: NIOSSLContext?
    let logger: Logger

    public init(settings: OutboundSettings, resolver: any MXResolver, group: any EventLoopGroup,
                pool: SMTPConnectionPool, logger: Logger) {
        self.settings = settings
        self.resolver = resolver
        self.group = group
        self.logger = logger
        self.pool = pool
        var tls = TLSConfiguration.makeClientConfiguration()
        // Opportunistic and "required" TLS encrypt without authenticating the MX host,
        // like Postfix's "may" and "encrypt" levels: MX names cannot be verified without
        // DANE or MTA-STS.
        tls.certificateVerification = .none
        tls.minimumTLSVersion = .tlsv12
        self.tlsContext = try? NIOSSLContext(configuration: tls)
    }

    /// Verifying contexts by CA file ("" = the system's trust store), made once each.
    private let verifyingContexts = NIOLockedValueBox<[String: NIOSSLContext]>([:])

    func verifyingContext(caFile: String?) throws -> NIOSSLContext {
        try verifyingContexts.withLockedValue { contexts in
            if let context = contexts[caFile ?? ""] { return context }
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .fullVerification
            tls.minimumTLSVersion = .tlsv12
            if let caFile { tls.trustRoots = .file(caFile) }
            let context = try NIOSSLContext(configuration: tls)
            contexts[caFile ?? ""] = context
            return context
        }
    }

    /// A reply that asks the client to slow down (421, 45x 4.7.x, "rate limit", …).
    public static func isThrottleReply(_ reply: SMTPReply) -> Bool {
        if reply.code == 421 { return true }
        if reply.code == 451 || reply.code == 450 || reply.code == 452, reply.enhanced?.subject == 7 { return true }
        let text = reply.lines.joined(separator: " ").lowercased()
        return reply.code / 100 == 4 && ["rate limit", "too many connections", "too many messages", "throttl",
                                         "try again later", "slow down"].contains { text.contains($0) }
    }

    public func attempt(_ tx: OutboundTransaction, to destination: OutboundDestination) async -> AttemptResult {
        let domain = destination.domain
        let policy = destination.effectiveTLS
        var targets: [(name: String, port: Int)] = []
        var site: String?
        if let host = destination.host {
            targets = [(host, destination.port)]
        } else {
            do {
                let hosts = try await resolver.mx(for: domain)
                targets = hosts.map { ($0.name, settings.mxPort) }
                site = hosts.map { $0.name.lowercased() }.sorted().joined(separator: ",")
            } catch let error as DNSError {
                let reply = error.isPermanent
                    ? SMTPReply(550, EnhancedStatusCode(parsing: error.enhancedStatus), Self.reason(domain, error))
                    : SMTPReply(451, EnhancedStatusCode(4, 4, 3), Self.reason(domain, error))
                return AttemptResult(outcomes: all(tx, reply), tls: false)
            } catch {
                return AttemptResult(outcomes: all(tx, SMTPReply(451, EnhancedStatusCode(4, 4, 3), Self.reason(domain, error))), tls: false)
            }
        }
        var lastReply = SMTPReply(451, EnhancedStatusCode(4, 4, 1), "\(domain): no reachable mail exchanger")
        var tried = 0
        var throttled = false
        for target in targets {
            let addresses: [String]
            if IPNetworkLiteral.isIP(target.name) {
                addresses = [target.name]
            } else {
                do {
                    addresses = try await resolver.addresses(for: target.name)
                } catch {
                    lastReply = SMTPReply(451, EnhancedStatusCode(4, 4, 3), Self.reason(target.name, error))
                    continue
                }
            }
            for address in addresses {
                guard tried < settings.addressLimit else { break }
                tried += 1
                let key = SMTPConnectionPool.Key(address: address, port: target.port, tls: policy,
                                                 user: destination.username, caFile: destination.caFile)
                var reused = false
                do {
                    let conn: SMTPClientConnection
                    if let pooled = await pool.take(key) {
                        conn = pooled
                        reused = true
                    } else {
                        conn = try await open(name: target.name, address: address, port: target.port,
                                              policy: policy, destination: destination)
                        await pool.noteOpened()
                    }
                    var result: [RecipientOutcome]
                    do {
                        result = try await conn.send(tx)
                    } catch let e as SMTPClientError where reused && e.phase < .dot {
                        // A stale pooled connection: try once more on a fresh one.
                        conn.close()
                        let fresh = try await open(name: target.name, address: address, port: target.port,
                                                   policy: policy, destination: destination)
                        await pool.noteOpened()
                        result = try await fresh.send(tx)
                        await pool.put(fresh, key)
                        return finish(result, target.name, address, fresh.isTLS, site)
                    }
                    await pool.put(conn, key)
                    return finish(result, target.name, address, conn.isTLS, site)
                } catch let e as SMTPClientError {
                    if e.phase >= .dot {
                        let reply = SMTPReply(451, EnhancedStatusCode(4, 4, 2), e.description)
                        var r = AttemptResult(outcomes: all(tx, reply), mxHost: target.name, ip: address, tls: false)
                        r.mayBeDuplicate = true
                        r.mxSite = site
                        return r
                    }
                    if let reply = e.reply {
                        lastReply = reply
                        if Self.isThrottleReply(reply) { throttled = true }
                        // A 5xx at the greeting or EHLO concerns this host only: try the next.
                    } else {
                        let enhanced = e.kind == .tlsUnavailable ? EnhancedStatusCode(4, 7, 4) : EnhancedStatusCode(4, 4, 1)
                        lastReply = SMTPReply(451, enhanced, e.description)
                    }
                    logger.debug("attempt failed", metadata: ["host": "\(target.name)", "ip": "\(address)", "error": "\(e)"])
                } catch {
                    lastReply = SMTPReply(451, EnhancedStatusCode(4, 4, 1), Self.reason(
                        SMTPClientConnection.peerName(host: target.name, address: address, port: target.port), error))
                }
            }
        }
        // No host took the transaction: a 5xx session-level reply still only defers,
        // because another MX (or a later try) may accept.
        let deferReply = lastReply.code / 100 == 4 ? lastReply
            : SMTPReply(451, EnhancedStatusCode(4, 4, 1), "all mail exchangers refused: \(lastReply)")
        var r = AttemptResult(outcomes: all(tx, deferReply), tls: false)
        r.throttled = throttled
        r.mxSite = site
        return r
    }

    /// `subject: what went wrong`, in short human words (``ErrorText``); a DNS error or a
    /// client error already names its domain or host, so it is not named twice.
    static func reason(_ subject: String, _ error: any Error) -> String {
        if let e = error as? DNSError, !e.name.isEmpty { return e.description }
        if let e = error as? SMTPClientError, !e.host.isEmpty { return e.description }
        return subject + ": " + ErrorText.describe(error)
    }

    private func finish(_ outcomes: [RecipientOutcome], _ host: String, _ ip: String, _ tls: Bool, _ site: String?) -> AttemptResult {
        var r = AttemptResult(outcomes: outcomes, mxHost: host, ip: ip, tls: tls)
        r.throttled = outcomes.contains { if case .deferred(let reply) = $0 { return Self.isThrottleReply(reply) } else { return false } }
        r.mxSite = site
        return r
    }

    private func all(_ tx: OutboundTransaction, _ reply: SMTPReply) -> [RecipientOutcome] {
        let o: RecipientOutcome = reply.code / 100 == 5 ? .failed(reply) : .deferred(reply)
        return Array(repeating: o, count: tx.recipients.count)
    }

    /// A new connection with EHLO, STARTTLS per policy and AUTH when the destination has credentials.
    func open(name: String, address: String, port: Int, policy: OutboundTLSPolicy, destination: OutboundDestination,
              skipTLS: Bool = false) async throws -> SMTPClientConnection {
        let conn = try await SMTPClientConnection.connect(host: name, address: address, port: port, group: group,
                                                          timeouts: settings.timeouts, sourceAddress: settings.sourceAddress)
        do {
            try await conn.hello(settings.heloName)
            let offered = conn.extensions["STARTTLS"] != nil
            if (policy == .required || policy == .verify) && !offered {
                throw SMTPClientError(.tlsUnavailable, phase: .starttls, host: conn.peer)
            }
            let context: NIOSSLContext?
            if policy == .verify {
                do {
                    context = try verifyingContext(caFile: destination.caFile)
                } catch {
                    throw SMTPClientError(.tlsFailed("cannot load the trust roots \(destination.caFile ?? "of the system"): "
                                                     + ErrorText.describe(error)), phase: .starttls, host: conn.peer)
                }
            } else {
                context = tlsContext
            }
            if policy != .off && offered && !skipTLS, let context {
                do {
                    try await conn.startTLS(context: context, serverName: name)
                    try await conn.hello(settings.heloName)
                } catch let e as SMTPClientError where policy == .opportunistic && e.reply == nil {
                    // Handshake failed: once more in plain text, as Postfix does at "may".
                    conn.close()
                    logger.info("TLS handshake failed; retrying without TLS", metadata: ["host": "\(conn.peer)", "error": "\(e)"])
                    return try await open(name: name, address: address, port: port, policy: policy,
                                          destination: destination, skipTLS: true)
                }
            }
            if let user = destination.username {
                guard conn.isTLS || destination.authWithoutTLS else {
                    throw SMTPClientError(.tlsUnavailable, phase: .auth, host: conn.peer)
                }
                try await conn.authenticate(user: user, password: destination.password ?? "")
            }
            return conn
        } catch {
            conn.close()
            throw error
        }
    }
}

enum IPNetworkLiteral {
    static func isIP(_ s: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, s, &v4) == 1 || inet_pton(AF_INET6, s, &v6) == 1
    }
}
