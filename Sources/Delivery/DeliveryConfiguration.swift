/// Delivery — Herald's queue manager.
///
/// Summary: delivers what the spool holds to the recipients' mail exchangers (or to a
/// configured smart host), at the pace each destination allows, retries what is
/// deferred, bounces what fails, and logs every attempt.
///
/// Strategies (each in its own file):
/// - `QueueManager`: the in-memory index is a cache rebuilt from a spool scan at start-up
///   and fed by new commits; ready recipients are grouped per destination domain into
///   `DestinationQueue`s served round-robin, so a slow or throttled domain never holds
///   back the others (no head-of-line blocking).
/// - `DestinationQueue`: a concurrency window with slow start (grows by one per success
///   up to the limit) and a backoff mode entered on throttle replies (421, 451 4.7.x,
///   "rate limit", "too many connections"): the window halves and the queue pauses.
/// - `RateLimiter`: GCRA buckets for the global rate, each route, each destination domain
///   and each MX site; a message is dispatched only when all its buckets allow. A
///   campaign's pace and a tenant's rate are pacing stages before the destination
///   queues (see `DeliveryScheduler`), and a tenant's connections are capped there too.
/// - `RetrySchedule`: exponential backoff with jitter, 5 minutes doubling to a cap of
///   about 67 minutes, give up after 5 days (Postfix's defaults), all configurable.
/// - `BounceBuilder`: RFC 3464 delivery status notifications to the envelope sender,
///   never for a null sender (no bounce loops).
/// - `DeliveryLog`: one JSON line per attempt outcome, rotated by size.
///
/// Durability: each outcome is written to the envelope (atomic replace) before the
/// next step, so a crash re-sends at most the transactions in flight.

import Foundation
import Spool
import NIOCore
import SMTPClient

/// A `[[route]]`: a domain pattern sent to a fixed smart host instead of its MX.
public struct Route: Sendable {
    public var pattern: DomainPattern
    public var host: String?          // nil = MX delivery for the matching domains
    public var port: Int
    public var tls: OutboundTLSPolicy
    public var username: String?
    public var password: String?
    /// Allow AUTH over a connection without TLS (default false).
    public var authWithoutTLS: Bool
    /// Messages per time unit over this route (a provider's limit), nil = unlimited.
    public var rate: Rate?
    /// Concurrent deliveries over this route (default: `connections_per_destination`).
    public var connections: Int?
    /// Attempts per recipient over this route before it fails (instead of `[delivery] max_attempts`).
    public var maxAttempts: Int?
    /// Trust roots (PEM) for `tls = verify` instead of the system's.
    public var caFile: String?
    /// False only when the route says `tls_verify = false`: credentials may then go over
    /// TLS whose certificate was not verified.
    public var tlsVerify: Bool

    public init(pattern: DomainPattern, host: String?, port: Int, tls: OutboundTLSPolicy,
                username: String? = nil, password: String? = nil, authWithoutTLS: Bool = false,
                rate: Rate? = nil, connections: Int? = nil, caFile: String? = nil, tlsVerify: Bool = true,
                maxAttempts: Int? = nil) {
        self.maxAttempts = maxAttempts
        self.caFile = caFile
        self.tlsVerify = tlsVerify
        self.rate = rate
        self.connections = connections
        self.pattern = pattern
        self.host = host
        self.port = port
        self.tls = tls
        self.username = username
        self.password = password
        self.authWithoutTLS = authWithoutTLS
    }
}

/// `example.com` (exactly), `*.example.com` (subdomains and the domain itself), `*` (all).
public struct DomainPattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    public init?(_ text: String) {
        let t = text.lowercased()
        guard !t.isEmpty, t == "*" || !t.dropFirst(t.hasPrefix("*.") ? 2 : 0).contains("*") else { return nil }
        self.text = t
    }

    public func matches(_ domain: String) -> Bool {
        let d = domain.lowercased()
        if text == "*" { return true }
        if text.hasPrefix("*.") {
            let base = text.dropFirst(2)
            return d == base || d.hasSuffix("." + base)
        }
        return d == text
    }

    /// More specific patterns win: exact > longer wildcard > shorter wildcard > `*`.
    public var specificity: Int {
        if text == "*" { return 0 }
        if text.hasPrefix("*.") { return text.count }
        return 10_000 + text.count
    }

    public var description: String { text }
}

/// A `[[throttle]]`: `match` is a domain pattern or `mx:<pattern>` for an MX site.
public struct ThrottleRule: Sendable {
    public enum Target: Sendable, Hashable {
        case domain(DomainPattern)
        case mxSite(DomainPattern)
        case tenant(String)
    }
    public var target: Target
    public var rate: Rate?
    public var connections: Int?

    public init(target: Target, rate: Rate?, connections: Int?) {
        self.target = target
        self.rate = rate
        self.connections = connections
    }
}

/// A database tenant's delivery limits (set by the operator, `herald tenant limits`),
/// which the queue manager applies to mail whose envelope carries the tenant's tag.
public struct TenantDeliveryLimits: Sendable, Equatable {
    /// The tenant's name, so that `[[throttle]] match = "tenant:NAME"` finds its mail
    /// (tagged with the tenant's id).
    public var name: String?
    /// Messages per time unit over all destinations (a pacing stage); nil = unlimited.
    public var rate: Rate?
    /// Delivery attempts in flight at once over all destinations; nil = unlimited.
    public var maxConnections: Int?

    public init(name: String? = nil, rate: Rate? = nil, maxConnections: Int? = nil) {
        self.name = name
        self.rate = rate
        self.maxConnections = maxConnections
    }
}

public struct DeliveryConfiguration: Sendable {
    public var heloName: String
    public var mxPort: Int
    public var routes: [Route]
    public var throttles: [ThrottleRule]
    /// Global messages per second (a provider limit such as 14/s); nil = unlimited.
    public var globalRate: Rate?
    /// Deliveries in flight over all destinations.
    public var maxConcurrentDeliveries: Int
    /// Default concurrent connections per destination domain.
    public var connectionsPerDestination: Int
    /// Slow start: the window a destination starts with.
    public var initialWindow: Int
    public var messagesPerConnection: Int
    public var connectionIdleTimeout: TimeAmount
    public var timeouts: SMTPClientTimeouts
    public var retry: RetrySchedule
    /// How long a destination pauses after a throttle reply.
    public var throttleBackoff: TimeAmount
    /// How often the spool is rescanned for changes made by `herald queue …`.
    public var rescanInterval: TimeAmount
    /// Messages whose envelopes the queue manager holds in memory at once. Beyond it,
    /// queued messages wait on disk, known only by a small record each (id, campaign,
    /// size, next attempt), and are read in as room frees up; so are messages waiting
    /// for a retry or a paused campaign once the limit is reached.
    public var activeLimit: Int = 20_000
    /// Send a delay notice (DSN action=delayed) once a message has waited this long; nil = never.
    public var delayWarning: TimeInterval?
    public var logPath: String?
    public var logMaxBytes: Int
    public var sourceAddress: String?
    /// Domains whose mail is Herald's own (`[bounce] domains`, lower-cased): handed to
    /// the queue manager's ``LocalDeliveryAgent`` instead of being relayed.
    public var localDomains: Set<String> = []

    public init(heloName: String, mxPort: Int = 25, routes: [Route] = [], throttles: [ThrottleRule] = [],
                globalRate: Rate? = nil, maxConcurrentDeliveries: Int = 200, connectionsPerDestination: Int = 20,
                initialWindow: Int = 5, messagesPerConnection: Int = 100,
                connectionIdleTimeout: TimeAmount = .seconds(10), timeouts: SMTPClientTimeouts = SMTPClientTimeouts(),
                retry: RetrySchedule = RetrySchedule(), throttleBackoff: TimeAmount = .seconds(60),
                rescanInterval: TimeAmount = .seconds(30), delayWarning: TimeInterval? = nil,
                logPath: String? = nil, logMaxBytes: Int = 100 * 1024 * 1024, sourceAddress: String? = nil) {
        self.heloName = heloName
        self.mxPort = mxPort
        self.routes = routes
        self.throttles = throttles
        self.globalRate = globalRate
        self.maxConcurrentDeliveries = maxConcurrentDeliveries
        self.connectionsPerDestination = connectionsPerDestination
        self.initialWindow = initialWindow
        self.messagesPerConnection = messagesPerConnection
        self.connectionIdleTimeout = connectionIdleTimeout
        self.timeouts = timeouts
        self.retry = retry
        self.throttleBackoff = throttleBackoff
        self.rescanInterval = rescanInterval
        self.delayWarning = delayWarning
        self.logPath = logPath
        self.logMaxBytes = logMaxBytes
        self.sourceAddress = sourceAddress
    }

    /// The most specific route for `domain`, if any.
    public func isLocal(_ domain: String) -> Bool {
        !localDomains.isEmpty && localDomains.contains(domain.lowercased())
    }

    public func route(for domain: String) -> Route? {
        routes.filter { $0.pattern.matches(domain) }.max { $0.pattern.specificity < $1.pattern.specificity }
    }
}

/// Exponential backoff with jitter. Attempt n (1-based) waits
/// `min(minimal × 2^(n-1), maximal)`, then ±`jitter` of that. Defaults follow Postfix:
///
/// | attempt | 1 | 2 | 3 | 4 | 5 | 6+ |
/// |---|---|---|---|---|---|---|
/// | wait | 5 min | 10 min | 20 min | 40 min | 66.7 min | 66.7 min |
///
/// A recipient still deferred `maxLifetime` after arrival fails (bounces); so does one
/// deferred on its `maxAttempts`-th attempt, when a limit is set (here or on its route).
public struct RetrySchedule: Sendable {
    public var minimal: TimeInterval
    public var maximal: TimeInterval
    public var maxLifetime: TimeInterval
    public var jitter: Double
    /// Attempts after which a recipient still deferred fails; nil = only `maxLifetime` ends it.
    public var maxAttempts: Int?

    public init(minimal: TimeInterval = 300, maximal: TimeInterval = 4000, maxLifetime: TimeInterval = 5 * 86400,
                jitter: Double = 0.1, maxAttempts: Int? = nil) {
        self.maxAttempts = maxAttempts
        self.minimal = minimal
        self.maximal = maximal
        self.maxLifetime = maxLifetime
        self.jitter = jitter
    }

    public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: -1...1)) -> TimeInterval {
        let base = min(minimal * pow(2, Double(max(0, attempt - 1))), maximal)
        return max(0, base * (1 + jitter * random))
    }
}
