/// The grammar of `local-part@domain`, written once for every place an address comes
/// in: SMTP paths (RFC 5321 §4.1.2, via SMTPCore's `Mailbox`), header addresses (RFC 5322
/// §3.4.1, Rendering's `MailAddress`) and subscriber addresses.
///
/// - The local part is a dot-atom (`atext` runs joined by single dots) or a quoted
///   string (`qtext` and quoted pairs); at most 64 octets.
/// - The domain is LDH labels of 1 to 63 octets joined by dots, no label starting or
///   ending with `-`, at most 255 octets; or a bracketed literal (which literals depend
///   on the caller, see ``Literals``).
/// - UTF-8 (RFC 6531/6532) is allowed in both parts, and only valid UTF-8.
///
/// The checks run in a fixed order and the first that fails is reported, so that each
/// caller can word the failure in its own terms (an SMTP reply, an API error).
public enum AddressSyntax {
    public static let maxLocalPart = 64
    public static let maxDomain = 255
    public static let maxLabel = 63

    /// Which bracketed domains an address may have.
    public enum Literals: Sendable, Hashable {
        /// RFC 5321 §4.1.3 address literals: `[192.0.2.1]`, `[IPv6:…]` or `[tag:content]`.
        /// What SMTP accepts, and so what can be delivered to.
        case address
        /// RFC 5322 §3.4.1 domain literals: any printable ASCII but `[`, `]` and `\`
        /// between the brackets. What a message header may hold.
        case domain
    }

    /// The first thing wrong with an address.
    public enum Failure: Error, Hashable, Sendable {
        case empty
        /// Longer than the caller's limit (`maxLength`).
        case tooLong
        case invalidUTF8
        /// `\` at the end of a quoted local part, or before a control character.
        case badQuotedPair
        /// A control character in a quoted local part.
        case badQuotedCharacter
        case unterminatedQuote
        /// Nothing before the `@`.
        case emptyLocalPart
        /// A dot-atom local part starting with `.` or holding `..`.
        case emptyAtom
        /// A dot-atom local part ending with `.`.
        case trailingDot
        /// A character that is not `atext` in a dot-atom local part.
        case badLocalCharacter(UInt8)
        /// No `@` after the local part (or something after a closing quote).
        case missingDomain
        case localPartTooLong
        case domainTooLong
        case badDomain
    }

    /// Checks `bytes` as `local-part@domain`; returns the index of the `@` that ends the
    /// local part.
    public static func check(_ bytes: [UInt8], maxLength: Int, literals: Literals) throws(Failure) -> Int {
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= maxLength else { throw .tooLong }
        guard bytes.allSatisfy({ $0 < 0x80 }) || String(validating: bytes, as: UTF8.self) != nil else {
            throw .invalidUTF8
        }
        let at = try localPartEnd(bytes)
        guard at < bytes.count, bytes[at] == UInt8(ascii: "@") else { throw .missingDomain }
        guard at <= maxLocalPart else { throw .localPartTooLong }
        let domain = bytes[(at + 1)...]
        guard domain.count <= maxDomain else { throw .domainTooLong }
        let literal: Bool
        switch literals {
        case .address: literal = isAddressLiteral(domain)
        case .domain: literal = isDomainLiteral(domain)
        }
        guard literal || isDomain(domain) else { throw .badDomain }
        return at
    }

    /// Scans the local part (dot-atom or quoted string) from the start of `b`; returns the
    /// index just after it.
    static func localPartEnd(_ b: [UInt8]) throws(Failure) -> Int {
        var i = 0
        if b[0] == UInt8(ascii: "\"") {
            i = 1
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\\") {
                    guard i + 1 < b.count, (0x20...0x7E).contains(b[i + 1]) || b[i + 1] >= 0x80 else {
                        throw .badQuotedPair
                    }
                    i += 2
                } else if c == UInt8(ascii: "\"") {
                    return i + 1
                } else {
                    guard isQtext(c) else { throw .badQuotedCharacter }
                    i += 1
                }
            }
            throw .unterminatedQuote
        }
        var atom = 0
        while i < b.count, b[i] != UInt8(ascii: "@") {
            let c = b[i]
            if c == UInt8(ascii: ".") {
                guard atom > 0 else { throw .emptyAtom }
                atom = 0
            } else {
                guard isAtext(c) else { throw .badLocalCharacter(c) }
                atom += 1
            }
            i += 1
        }
        guard atom > 0 else { throw i == 0 ? .emptyLocalPart : .trailingDot }
        return i
    }

    /// `atext` of RFC 5322 §3.2.3, plus UTF-8 octets (RFC 6532 §3.2).
    @inlinable
    public static func isAtext(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...0xFF,
             UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"),
             UInt8(ascii: "="), UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
             UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// `qtextSMTP` of RFC 5321 §4.1.2 (space and printable ASCII but `"` and `\`), plus
    /// UTF-8 octets.
    static func isQtext(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x21 || (0x23...0x5B).contains(c) || (0x5D...0x7E).contains(c) || c >= 0x80
    }

    /// A domain name: LDH labels (UTF-8 U-labels allowed) of 1 to 63 octets joined by
    /// single dots, none starting or ending with `-`, at most 255 octets in all.
    public static func isDomain(_ d: ArraySlice<UInt8>) -> Bool {
        guard !d.isEmpty, d.count <= maxDomain else { return false }
        for label in d.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= maxLabel,
                  label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-")
            else { return false }
            for c in label {
                switch c {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                     UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), 0x80...0xFF:
                    continue
                default:
                    return false
                }
            }
        }
        return true
    }

    /// An RFC 5321 §4.1.3 address literal: `[1.2.3.4]` (four decimal octets up to 255),
    /// `[IPv6:…]` (hex digits, `:` and `.`), or a general literal `[tag:content]`.
    public static func isAddressLiteral(_ d: ArraySlice<UInt8>) -> Bool {
        guard d.count >= 3, d.first == UInt8(ascii: "["), d.last == UInt8(ascii: "]") else { return false }
        guard let text = String(validating: d.dropFirst().dropLast(), as: UTF8.self) else { return false }
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
            && !content.isEmpty
            && content.unicodeScalars.allSatisfy { (33...90).contains($0.value) || (94...126).contains($0.value) }
    }

    /// An RFC 5322 §3.4.1 domain literal without folding white space: `[` dtext… `]`,
    /// dtext being printable ASCII but `[`, `]` and `\`.
    public static func isDomainLiteral(_ d: ArraySlice<UInt8>) -> Bool {
        guard d.count >= 3, d.first == UInt8(ascii: "["), d.last == UInt8(ascii: "]") else { return false }
        return d.dropFirst().dropLast().allSatisfy { (0x21...0x5A).contains($0) || (0x5E...0x7E).contains($0) }
    }
}
