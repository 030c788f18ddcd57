import MailFormat

/// Mailboxes and paths, RFC 5321 §4.1.2, with the RFC 6531 (SMTPUTF8) extensions. The
/// address grammar itself is MailFormat's ``AddressSyntax``; paths add the brackets, the
/// null path, source routes and the 256-octet limit.

/// `local-part@domain`, as the client wrote it (a quoted local part keeps its quotes).
public struct Mailbox: Hashable, Sendable, CustomStringConvertible {
    public var localPart: String
    public var domain: String
    /// True when the local part or the domain holds non-ASCII characters: such an
    /// address may only be used in an SMTPUTF8 transaction.
    public var needsSMTPUTF8: Bool {
        localPart.utf8.contains(where: { $0 >= 0x80 }) || domain.utf8.contains(where: { $0 >= 0x80 })
    }
    public init(localPart: String, domain: String) {
        self.localPart = localPart
        self.domain = domain
    }
    public var description: String { "\(localPart)@\(domain)" }

    /// Parses `local@domain` as RFC 5321 §4.1.2 allows it in a path (no brackets, no
    /// route); nil when it is not a valid mailbox. For addresses that come from
    /// applications (HTTP API, imports) rather than from an SMTP command.
    public init?(parsing text: String) {
        guard text.utf8.count <= PathParser.maxPath, let m = try? PathParser.parseMailbox(Array(text.utf8)) else {
            return nil
        }
        self = m
    }
}

/// Why a path did not parse.
public enum PathError: Error, Equatable, Sendable {
    case syntax(String)
    case tooLong

    public var reply: SMTPReply {
        switch self {
        case .syntax(let why):
            return SMTPReply(501, EnhancedStatusCode(5, 1, 3), "Bad address syntax: \(why)")
        case .tooLong:
            return SMTPReply(501, EnhancedStatusCode(5, 1, 3), "Address too long")
        }
    }
}

/// The argument of MAIL FROM: a mailbox or the null path `<>`.
public enum ReversePath: Hashable, Sendable, CustomStringConvertible {
    case null
    case mailbox(Mailbox)

    public var description: String {
        switch self {
        case .null: return ""
        case .mailbox(let m): return m.description
        }
    }
}

/// The argument of RCPT TO: a mailbox, or the bare `<Postmaster>` of §4.1.1.3.
public enum ForwardPath: Hashable, Sendable, CustomStringConvertible {
    case postmaster
    case mailbox(Mailbox)

    public var description: String {
        switch self {
        case .postmaster: return "Postmaster"
        case .mailbox(let m): return m.description
        }
    }
}

enum PathParser {
    static let maxPath = 256

    /// Parses `<…>` (already cut out of the command, brackets included) into a mailbox.
    /// A source route (`<@a,@b:user@c>`) is accepted and ignored, as §4.1.1.3 asks; the
    /// mailbox is what Herald delivers to.
    static func parseBracketed(_ text: [UInt8]) throws(PathError) -> Mailbox? {
        guard text.count >= 2, text.first == UInt8(ascii: "<"), text.last == UInt8(ascii: ">") else {
            throw .syntax("the address must be enclosed in <>")
        }
        if text.count - 2 > maxPath { throw .tooLong }
        var inner = Array(text[1..<(text.count - 1)])
        if inner.isEmpty { return nil }
        if inner.first == UInt8(ascii: "@") {
            // A-d-l ":" — skip the route after checking its shape.
            guard let colon = inner.firstIndex(of: UInt8(ascii: ":")) else {
                throw .syntax("source route without ':'")
            }
            let route = inner[..<colon]
            for hop in route.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                guard hop.first == UInt8(ascii: "@"), AddressSyntax.isDomain(hop.dropFirst()) else {
                    throw .syntax("bad source route")
                }
            }
            inner = Array(inner[(colon + 1)...])
        }
        return try parseMailbox(inner)
    }

    /// `Local-part "@" ( Domain / address-literal )`, checked by MailFormat's
    /// ``AddressSyntax`` with RFC 5321's address literals.
    static func parseMailbox(_ bytes: [UInt8]) throws(PathError) -> Mailbox {
        let at: Int
        do {
            at = try AddressSyntax.check(bytes, maxLength: maxPath, literals: .address)
        } catch {
            throw PathError(error)
        }
        // Valid UTF-8 as a whole, so also on either side of the ASCII "@".
        return Mailbox(localPart: String(decoding: bytes[..<at], as: UTF8.self),
                       domain: String(decoding: bytes[(at + 1)...], as: UTF8.self))
    }
}

extension PathError {
    init(_ failure: AddressSyntax.Failure) {
        switch failure {
        case .empty: self = .syntax("empty address")
        case .tooLong, .localPartTooLong, .domainTooLong: self = .tooLong
        case .invalidUTF8: self = .syntax("invalid UTF-8")
        case .badQuotedPair: self = .syntax("bad quoted pair")
        case .badQuotedCharacter: self = .syntax("bad character in quoted local part")
        case .unterminatedQuote: self = .syntax("unterminated quoted local part")
        case .emptyLocalPart, .emptyAtom, .trailingDot: self = .syntax("empty atom in local part")
        case .badLocalCharacter: self = .syntax("bad character in local part")
        case .missingDomain: self = .syntax("missing @domain")
        case .badDomain: self = .syntax("bad domain")
        }
    }
}
