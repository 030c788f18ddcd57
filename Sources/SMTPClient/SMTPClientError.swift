import NIOCore
import SMTPCore

/// The phases of an outbound SMTP session, in protocol order, with the time-out each
/// gets (RFC 5321 §4.5.3.2) and a description a postmaster can read in the log.
public enum ClientPhase: Int, Comparable, Sendable, CustomStringConvertible {
    case connect, greeting, ehlo, starttls, tlsHandshake, auth, mailFrom, rcptTo, data, dot, rset, quit

    public static func < (a: ClientPhase, b: ClientPhase) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .connect: return "connecting"
        case .greeting: return "waiting for the greeting"
        case .ehlo: return "sending EHLO/HELO"
        case .starttls: return "sending STARTTLS"
        case .tlsHandshake: return "during the TLS handshake"
        case .auth: return "authenticating"
        case .mailFrom: return "sending MAIL FROM"
        case .rcptTo: return "sending RCPT TO"
        case .data: return "sending DATA"
        case .dot: return "sending end of data — message may be sent more than once"
        case .rset: return "sending RSET"
        case .quit: return "sending QUIT"
        }
    }
}

/// Per-phase time-outs. Defaults follow RFC 5321 §4.5.3.2 and Postfix's smtp_*_timeout.
public struct SMTPClientTimeouts: Sendable {
    public var connect: TimeAmount = .seconds(30)
    public var greeting: TimeAmount = .seconds(300)
    public var ehlo: TimeAmount = .seconds(300)
    public var starttls: TimeAmount = .seconds(300)
    public var mailFrom: TimeAmount = .seconds(300)
    public var rcptTo: TimeAmount = .seconds(300)
    public var data: TimeAmount = .seconds(120)
    public var dot: TimeAmount = .seconds(600)
    public var rset: TimeAmount = .seconds(20)
    public var quit: TimeAmount = .seconds(20)
    public init() {}

    /// Every phase the same (tests).
    public init(all: TimeAmount) {
        connect = all; greeting = all; ehlo = all; starttls = all; mailFrom = all
        rcptTo = all; data = all; dot = all; rset = all; quit = all
    }

    public func timeout(for phase: ClientPhase) -> TimeAmount {
        switch phase {
        case .connect: return connect
        case .greeting: return greeting
        case .ehlo, .auth: return ehlo
        case .starttls, .tlsHandshake: return starttls
        case .mailFrom: return mailFrom
        case .rcptTo: return rcptTo
        case .data: return data
        case .dot: return dot
        case .rset: return rset
        case .quit: return quit
        }
    }
}

/// Why a connection or a transaction did not complete: the phase, the remote reply
/// if there was one, and what happened. `description` is the short text that ends up in
/// the delivery log and a recipient's last reply: `connect to 127.0.0.1:2600: connection
/// refused`, `mx.example.com[192.0.2.1]:25: timed out waiting for the greeting`.
public struct SMTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case connectFailed(String)
        case timeout
        case connectionClosed
        case protocolError(String)
        /// The connection failed under the session (reset, closed during TLS…), in a few words.
        case networkError(String)
        case tlsFailed(String)
        /// The server answered with a failure at a phase that concerns the whole session.
        case rejected
        /// TLS was required but the server does not offer STARTTLS.
        case tlsUnavailable
        /// The message needs an extension the server lacks (SMTPUTF8, 8BITMIME, SIZE).
        case extensionMissing(String)
    }

    public var kind: Kind
    public var phase: ClientPhase
    public var reply: SMTPReply?
    public var host: String

    public init(_ kind: Kind, phase: ClientPhase, reply: SMTPReply? = nil, host: String) {
        self.kind = kind
        self.phase = phase
        self.reply = reply
        self.host = host
    }

    /// Permanent: only a 5xx reply, or a message the server can never take.
    public var isPermanent: Bool {
        if let reply { return reply.isPermanentFailure }
        if case .extensionMissing = kind { return true }
        return false
    }

    public var description: String {
        if case .connectFailed(let why) = kind { return "connect to \(host): \(why)" }
        var text = host.isEmpty ? "" : "\(host): "
        switch kind {
        case .connectFailed: break
        case .timeout: text += "timed out \(phase)"
        case .connectionClosed: text += "connection closed \(phase)"
        case .networkError(let why): text += "\(why) \(phase)"
        case .protocolError(let why): text += "protocol error \(phase): \(why)"
        case .tlsFailed(let why): text += why.hasPrefix("TLS") ? why : "TLS failed: \(why)"
        case .rejected: text += "rejected \(phase): \(reply?.description ?? "")"
        case .tlsUnavailable: text += "TLS required but STARTTLS not offered"
        case .extensionMissing(let ext): text += "server lacks \(ext)"
        }
        return text
    }
}
