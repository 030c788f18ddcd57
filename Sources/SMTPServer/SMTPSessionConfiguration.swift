/// SMTPServer — Herald's ESMTP listener.
///
/// Summary: accepts mail over SMTP (RFC 5321) on several listeners and acknowledges a
/// message with `250` only once `Spool` has committed it durably.
///
/// Description: `SMTPSession` is the whole protocol as a value-type state machine
/// (bytes and results in, actions out), with strict CRLF framing inside it so that
/// STARTTLS can see and discard pipelined plaintext. `SMTPSessionHandler` is a thin
/// NIO interpreter of those actions; `SMTPServer` binds the listeners, enforces the
/// connection limits and drains sessions on shutdown.
///
/// Security: everything a client sends is untrusted. Relaying needs AUTH or (on a
/// `relay` listener) a client address inside `trusted_networks`; nothing else.
/// AUTH is refused before TLS unless the listener allows plaintext AUTH.

/// What a listener is for.
public enum ListenerRole: String, Sendable, Codable, CaseIterable {
    /// Clients in `trusted_networks` may relay without AUTH; others must authenticate.
    case relay
    /// Every client must authenticate before any recipient is accepted.
    case submission
}

/// How a listener offers TLS.
public enum ListenerTLSMode: String, Sendable, Codable, CaseIterable {
    case off
    case starttls
    case implicit
}

/// The per-listener settings a session needs. Limits are explicit; each has a config key.
public struct SMTPSessionConfiguration: Sendable {
    public var hostname: String
    public var role: ListenerRole
    public var tls: ListenerTLSMode
    /// False when the listener wants TLS but no certificate could be loaded.
    public var tlsAvailable: Bool
    /// AUTH over a connection that is not (yet) encrypted.
    public var allowPlaintextAuth: Bool
    /// False when no users are configured: AUTH is then not offered.
    public var authAvailable: Bool
    /// Octets; `SIZE` advertises it; larger messages get `552 5.3.4`.
    public var maxMessageSize: Int
    /// Recipients per message; more get `452 4.5.3`.
    public var maxRecipients: Int
    /// Command line length including CRLF (RFC 5321 §4.5.3.1.4: 512).
    public var maxCommandLineLength: Int
    /// Text line length in DATA including CRLF (RFC 5321 §4.5.3.1.6: 1000).
    public var maxTextLineLength: Int
    /// Error replies tolerated in one session before it is closed with `421 4.7.0`.
    public var maxErrors: Int
    /// `452 4.5.3` replies for recipients past `maxRecipients` that do not count as
    /// errors, per transaction (a pipelining client's overshoot).
    public var recipientOvershootLimit: Int = 1000
    /// Herald's own domains (`[bounce] domains`, lower-cased): recipients there are
    /// accepted from any client, without relay rights, like a mail server's local
    /// domains. Their mail is consumed by Herald (bounce and complaint processing).
    public var localDomains: Set<String> = []

    public init(
        hostname: String = "localhost",
        role: ListenerRole = .relay,
        tls: ListenerTLSMode = .off,
        tlsAvailable: Bool = false,
        allowPlaintextAuth: Bool = false,
        authAvailable: Bool = false,
        maxMessageSize: Int = 25 * 1024 * 1024,
        maxRecipients: Int = 1000,
        maxCommandLineLength: Int = 512,
        maxTextLineLength: Int = 1000,
        maxErrors: Int = 20,
        recipientOvershootLimit: Int = 1000,
        localDomains: Set<String> = []
    ) {
        self.recipientOvershootLimit = recipientOvershootLimit
        self.localDomains = localDomains
        self.hostname = hostname
        self.role = role
        self.tls = tls
        self.tlsAvailable = tlsAvailable
        self.allowPlaintextAuth = allowPlaintextAuth
        self.authAvailable = authAvailable
        self.maxMessageSize = maxMessageSize
        self.maxRecipients = maxRecipients
        self.maxCommandLineLength = maxCommandLineLength
        self.maxTextLineLength = maxTextLineLength
        self.maxErrors = maxErrors
    }
}
