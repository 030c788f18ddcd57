import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SMTPCore

/// Who is on the other end of a session, for the envelope and the log.
public struct SMTPSessionInfo: Sendable {
    public var sessionID: UInt64
    public var listener: String
    public var clientIP: String
    public var clientAddress: String
}

/// Where finished transactions go. `commit` returns the queue id only once the message
/// is durable: the `250` waits for it.
public protocol SMTPMessageSink: Sendable {
    func commit(_ transaction: SMTPTransaction, session: SMTPSessionInfo) async throws -> String
}

/// The tenants SMTP AUTH users belong to, and their submission quotas. Mail of an
/// authenticated user is tagged with the user's tenant (the envelope's `tenant`) and
/// counted against the tenant's quota before it is spooled.
public protocol SubmissionTenants: Sendable {
    /// The envelope tenant tag of `user`'s mail; nil when the user has no tenant.
    func tenant(ofUser user: String) async -> String?
    /// Counts a message to `recipients` recipients against the tenant's quota.
    func admit(tenant: String, recipients: Int) async -> SubmissionAdmission
    /// A refusal this node already knows for `user`'s tenant (over its quota until some
    /// time), answered at RCPT without waiting for DATA; nil when none is known.
    func knownRefusal(forUser user: String) -> SMTPReply?
}

/// ``SubmissionTenants/admit(tenant:recipients:)``'s answer.
public enum SubmissionAdmission: Sendable {
    /// Counted; `release` gives the count back if the message is not spooled after all.
    case admitted(release: (@Sendable () async -> Void)?)
    /// Over the quota: this reply ends the transaction (`452 4.7.1`).
    case refused(SMTPReply)
}

/// Thrown by a sink when a transaction is refused for a reason it can say to the client.
public struct SubmissionRefused: Error, Sendable {
    public var reply: SMTPReply
    public init(_ reply: SMTPReply) { self.reply = reply }
}

/// Checks AUTH credentials. Called off the event loop; may be slow (key stretching).
public protocol SMTPAuthenticator: Sendable {
    var hasUsers: Bool { get }
    func verify(username: String, password: String) async -> Bool
}

/// Users and salted hashes from config.
public struct StaticUserAuthenticator: SMTPAuthenticator {
    let users: [String: String]
    public init(users: [String: String]) { self.users = users }
    public var hasUsers: Bool { !users.isEmpty }
    public func verify(username: String, password: String) async -> Bool {
        guard let hash = users[username] else {
            // Spend the same effort for unknown users, so timing tells nothing.
            _ = PasswordHash.verify(password: password, against: Self.dummyHash)
            return false
        }
        return PasswordHash.verify(password: password, against: hash)
    }
    static let dummyHash = PasswordHash.make(password: "herald-dummy-password")
}

/// Counts failed AUTH attempts per client address and says how long to hold back the
/// next failure reply: `step × failures`, capped, forgotten after `window` of quiet.
public final class AuthFailureThrottle: Sendable {
    struct Entry { var failures: Int; var last: NIODeadline }
    private let state = NIOLockedValueBox([String: Entry]())
    public let step: TimeAmount
    public let cap: TimeAmount
    public let window: TimeAmount

    public init(step: TimeAmount = .seconds(1), cap: TimeAmount = .seconds(10), window: TimeAmount = .minutes(10)) {
        self.step = step
        self.cap = cap
        self.window = window
    }

    /// Records a failure from `ip`; returns the delay before answering it.
    public func failed(_ ip: String, now: NIODeadline = .now()) -> TimeAmount {
        state.withLockedValue { table in
            var e = table[ip] ?? Entry(failures: 0, last: now)
            if now - e.last > window { e.failures = 0 }
            e.failures += 1
            e.last = now
            table[ip] = e
            if table.count > 100_000 { table = table.filter { now - $0.value.last <= window } }
            return .nanoseconds(min(step.nanoseconds * Int64(e.failures), cap.nanoseconds))
        }
    }

    public func failures(_ ip: String) -> Int {
        state.withLockedValue { $0[ip]?.failures ?? 0 }
    }

    public func succeeded(_ ip: String) {
        _ = state.withLockedValue { $0.removeValue(forKey: ip) }
    }
}

/// Caps connections overall and per client address, across all listeners.
public final class ConnectionLimiter: Sendable {
    private let state = NIOLockedValueBox((total: 0, perClient: [String: Int]()))
    public let maxTotal: Int
    public let maxPerClient: Int

    public init(maxTotal: Int, maxPerClient: Int) {
        self.maxTotal = maxTotal
        self.maxPerClient = maxPerClient
    }

    public func acquire(_ ip: String) -> Bool {
        state.withLockedValue { s in
            guard s.total < maxTotal, s.perClient[ip, default: 0] < maxPerClient else { return false }
            s.total += 1
            s.perClient[ip, default: 0] += 1
            return true
        }
    }

    public func release(_ ip: String) {
        state.withLockedValue { s in
            s.total -= 1
            let n = s.perClient[ip, default: 1] - 1
            s.perClient[ip] = n > 0 ? n : nil
        }
    }

    public var current: Int { state.withLockedValue { $0.total } }
}

/// Time-outs of one listener (RFC 5321 §4.5.3.2: at least 5 minutes server side).
public struct SMTPTimeouts: Sendable {
    public var command: TimeAmount
    public var data: TimeAmount
    public var greetingDelay: TimeAmount
    public init(command: TimeAmount = .minutes(5), data: TimeAmount = .minutes(5), greetingDelay: TimeAmount = .zero) {
        self.command = command
        self.data = data
        self.greetingDelay = greetingDelay
    }
}

/// Everything one listener needs.
public struct SMTPListenerSettings: Sendable {
    public var host: String
    public var port: Int
    public var session: SMTPSessionConfiguration
    public var trustedNetworks: [IPNetwork]
    public var tlsContext: NIOSSLContext?
    public var timeouts: SMTPTimeouts

    public init(host: String, port: Int, session: SMTPSessionConfiguration, trustedNetworks: [IPNetwork],
                tlsContext: NIOSSLContext?, timeouts: SMTPTimeouts) {
        self.host = host
        self.port = port
        self.session = session
        self.trustedNetworks = trustedNetworks
        self.tlsContext = tlsContext
        self.timeouts = timeouts
    }

    public var name: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Shared by all sessions of a server.
struct SMTPServerShared: Sendable {
    let sink: any SMTPMessageSink
    let authenticator: any SMTPAuthenticator
    var tenants: (any SubmissionTenants)? = nil
    let authThrottle: AuthFailureThrottle
    let limiter: ConnectionLimiter
    let logger: Logger
    let sessionIDs = NIOLockedValueBox<UInt64>(0)

    func nextSessionID() -> UInt64 {
        sessionIDs.withLockedValue { $0 += 1; return $0 }
    }
}

/// Sent down a session's pipeline when the server stops.
struct SMTPShutdownEvent: Sendable {}
