/// Why a lookup gave no usable answer, and what that means for a recipient.
///
/// Permanent errors fail the recipient at once (a `5.x.x` DSN), temporary ones defer it.
/// `description` is meant for logs and for the text of a DSN's diagnostic: short and
/// human, naming the domain or host and the cause (`example.invalid: no such domain`,
/// `broken.example: temporary DNS failure (SERVFAIL)`).
public struct DNSError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        /// RFC 7505 null MX: the domain says it accepts no mail.
        case nullMX
        /// NXDOMAIN, or a name that is not a valid domain name.
        case noSuchDomain
        /// The domain exists but has neither MX nor A/AAAA records (no implicit MX either).
        case noMailExchanger
        /// A host (an MX target) without any A or AAAA record.
        case noAddress
        /// SERVFAIL, REFUSED, time-out, network error, resolver shut down.
        case temporary
    }

    private var code: Code
    /// The domain or host name the error is about (lower-case, no trailing dot).
    public private(set) var name: String
    /// The cause, in a few words (e.g. "SERVFAIL", "timed out", "NXDOMAIN").
    public private(set) var reason: String

    private init(_ code: Code, name: String, reason: String) {
        self.code = code
        self.name = name
        self.reason = reason
    }

    // MARK: constructors

    /// The domain publishes a null MX ("0 .", RFC 7505).
    public static func nullMX(_ domain: String) -> DNSError {
        DNSError(.nullMX, name: domain, reason: "null MX")
    }

    /// The domain does not exist (NXDOMAIN).
    public static func noSuchDomain(_ domain: String, reason: String = "NXDOMAIN") -> DNSError {
        DNSError(.noSuchDomain, name: domain, reason: reason)
    }

    /// The domain exists but has no MX record and no A/AAAA record to use as implicit MX.
    public static func noMailExchanger(_ domain: String) -> DNSError {
        DNSError(.noMailExchanger, name: domain, reason: "no MX and no A/AAAA records")
    }

    /// The host has no A and no AAAA record (or does not exist).
    public static func noAddress(_ host: String, reason: String = "no A or AAAA records") -> DNSError {
        DNSError(.noAddress, name: host, reason: reason)
    }

    /// A failure worth retrying later: SERVFAIL, time-out, refused, network trouble.
    public static func temporary(_ reason: String, name: String = "") -> DNSError {
        DNSError(.temporary, name: name, reason: reason)
    }

    // MARK: predicates

    /// Permanent errors fail the recipient now: null MX, NXDOMAIN, no MX/A/AAAA, no address.
    public var isPermanent: Bool {
        switch self.code {
        case .nullMX, .noSuchDomain, .noMailExchanger, .noAddress: return true
        case .temporary: return false
        }
    }

    public var isTemporary: Bool { !self.isPermanent }
    public var isNullMX: Bool { self.code == .nullMX }
    public var isNoSuchDomain: Bool { self.code == .noSuchDomain }
    public var isNoMailExchanger: Bool { self.code == .noMailExchanger }
    public var isNoAddress: Bool { self.code == .noAddress }

    /// The RFC 3463 enhanced status code for a DSN or a log line: `5.1.10` for a null MX
    /// (RFC 7505 §4.2), `5.1.2` ("bad destination system address") for a domain or host
    /// that does not exist or has no way to receive mail, `4.4.3` ("directory server
    /// failure") for temporary failures.
    public var enhancedStatus: String {
        switch self.code {
        case .nullMX: return "5.1.10"
        case .noSuchDomain, .noMailExchanger, .noAddress: return "5.1.2"
        case .temporary: return "4.4.3"
        }
    }

    public var description: String {
        let subject = self.name.isEmpty ? "" : "\(self.name): "
        switch self.code {
        case .nullMX:
            return "\(subject)domain accepts no mail (null MX)"
        case .noSuchDomain:
            return subject + (self.reason == "NXDOMAIN" ? "no such domain" : self.reason)
        case .noMailExchanger:
            return "\(subject)no mail exchanger (no MX and no A/AAAA records)"
        case .noAddress:
            switch self.reason {
            case "NXDOMAIN": return "\(subject)no such host"
            case "no A or AAAA records": return "\(subject)host has no A or AAAA records"
            default: return subject + self.reason
            }
        case .temporary:
            return "\(subject)temporary DNS failure (\(self.reason))"
        }
    }
}

/// A resolver could not be set up (bad server address, c-ares initialisation failure).
public struct DNSConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { self.message }
}
