/// Mailboxes and paths, RFC 5321 §4.1.2, with the RFC 6531 (SMTPUTF8) extensions.

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
    static let maxLocalPart = 64
    static let maxDomain = 255
    static let maxPath = 256

    /// `atext` of RFC 5322 §3.2.3, plus UTF-8 octets when SMTPUTF8 is allowed.
    static func isAtext(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(b) || b >= 0x80
        }
    }

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
                guard hop.first == UInt8(ascii: "@"), isDomain(Array(hop.dropFirst())) else {
                    throw .syntax("bad source route")
                }
            }
            inner = Array(inner[(colon + 1)...])
        }
        return try parseMailbox(inner)
    }

    static func parseMailbox(_ bytes: [UInt8]) throws(PathError) -> Mailbox {
        guard !bytes.isEmpty else { throw .syntax("empty address") }
        var i = 0
        // Local part.
        if bytes[0] == UInt8(ascii: "\"") {
            i = 1
            var closed = false
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\\") {
                    guard i + 1 < bytes.count, (32...126).contains(bytes[i + 1]) || bytes[i + 1] >= 0x80 else {
                        throw .syntax("bad quoted pair")
                    }
                    i += 2
                    continue
                }
                if b == UInt8(ascii: "\"") { closed = true; i += 1; break }
                guard b == 32 || b == 33 || (35...91).contains(b) || (93...126).contains(b) || b >= 0x80 else {
                    throw .syntax("bad character in quoted local part")
                }
                i += 1
            }
            guard closed else { throw .syntax("unterminated quoted local part") }
        } else {
            var atomLength = 0
            while i < bytes.count, bytes[i] != UInt8(ascii: "@") {
                let b = bytes[i]
                if b == UInt8(ascii: ".") {
                    guard atomLength > 0 else { throw .syntax("empty atom in local part") }
                    atomLength = 0
                } else {
                    guard isAtext(b) else { throw .syntax("bad character in local part") }
                    atomLength += 1
                }
                i += 1
            }
            guard atomLength > 0 else { throw .syntax("empty atom in local part") }
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "@") else {
            throw .syntax("missing @domain")
        }
        let local = Array(bytes[0..<i])
        let domain = Array(bytes[(i + 1)...])
        if local.count > maxLocalPart { throw .tooLong }
        if domain.count > maxDomain { throw .tooLong }
        guard isDomain(domain) || isAddressLiteral(domain) else { throw .syntax("bad domain") }
        guard let l = String(validating: local, as: UTF8.self),
              let d = String(validating: domain, as: UTF8.self)
        else { throw .syntax("invalid UTF-8") }
        return Mailbox(localPart: l, domain: d)
    }

    /// `sub-domain *("." sub-domain)`; U-labels allowed (validated as UTF-8 by the caller).
    static func isDomain(_ d: [UInt8]) -> Bool {
        guard !d.isEmpty, d.count <= maxDomain else { return false }
        for label in d.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63 else { return false }
            guard label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { return false }
            for b in label {
                let ok = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b)
                    || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
                    || b == UInt8(ascii: "-") || b >= 0x80
                guard ok else { return false }
            }
        }
        return true
    }

    /// `[1.2.3.4]`, `[IPv6:…]` or a general literal `[tag:…]`.
    static func isAddressLiteral(_ d: [UInt8]) -> Bool {
        guard d.count >= 3, d.first == UInt8(ascii: "["), d.last == UInt8(ascii: "]") else { return false }
        let inner = d[1..<(d.count - 1)]
        guard let text = String(validating: inner, as: UTF8.self) else { return false }
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        if octets.count == 4, octets.allSatisfy({ o in
            o.count >= 1 && o.count <= 3 && o.allSatisfy(\.isASCII) && o.allSatisfy(\.isNumber) && Int(o)! <= 255
        }) { return true }
        if text.lowercased().hasPrefix("ipv6:") {
            let v6 = text.dropFirst(5)
            return !v6.isEmpty && v6.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        }
        guard let colon = text.firstIndex(of: ":") else { return false }
        let tag = text[..<colon]
        let content = text[text.index(after: colon)...]
        return !tag.isEmpty && tag.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
            && !content.isEmpty && content.unicodeScalars.allSatisfy { (33...90).contains($0.value) || (94...126).contains($0.value) }
    }
}
