import MailFormat

/// A mailbox for a header: an optional display name and a validated addr-spec.
///
/// The address is checked when the value is made (`init(_:name:)` throws), so a
/// `MailAddress` always holds something that can be written into `From:`/`To:` as is:
/// a dot-atom or quoted local part (at most 64 octets), `@`, and a host name of LDH
/// labels (or an address literal), at most 254 octets in all, with no white space or
/// control character anywhere. UTF-8 in the local part or domain (RFC 6531/6532) is
/// accepted; such a message must go out with SMTPUTF8 (`needsSMTPUTF8`).
public struct MailAddress: Sendable, Hashable, CustomStringConvertible {
    public let address: String
    /// The display name as given (it is sanitized and encoded when written).
    public let name: String?

    public init(_ address: String, name: String? = nil) throws(AddressError) {
        try MailAddress.validate(address)
        self.address = address
        let trimmed = name.map(MIME.sanitizeHeaderText)
        self.name = (trimmed?.isEmpty ?? true) ? nil : name
    }

    /// Parses `Name <addr>`, `"Quoted, Name" <addr>`, `<addr>` or a bare `addr`.
    public init(parsing text: String) throws(AddressError) {
        let t = text.heraldTrimmed
        guard t.hasSuffix(">"), let open = MailAddress.angleOpening(t) else {
            try self.init(t)
            return
        }
        let address = String(t[t.index(after: open)..<t.index(before: t.endIndex)])
        var name = String(t[..<open]).heraldTrimmed
        if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
            var unquoted = ""
            var escaped = false
            for ch in name.dropFirst().dropLast() {
                if escaped { unquoted.append(ch); escaped = false } else if ch == "\\" { escaped = true } else { unquoted.append(ch) }
            }
            name = unquoted
        }
        try self.init(address, name: name.isEmpty ? nil : name)
    }

    /// The `<` that opens the angle-addr of `Name <addr>`: the first one outside the
    /// display name's quoted strings (the address itself may hold `<` in a quoted local
    /// part, `Doe <"a<b"@example.com>`, which is what ``headerField`` writes for it).
    private static func angleOpening(_ text: String) -> String.Index? {
        var quoted = false
        var escaped = false
        var i = text.startIndex
        while i < text.endIndex {
            let ch = text[i]
            if escaped {
                escaped = false
            } else if quoted {
                if ch == "\\" { escaped = true } else if ch == "\"" { quoted = false }
            } else if ch == "\"" {
                quoted = true
            } else if ch == "<" {
                return i
            }
            i = text.index(after: i)
        }
        return nil
    }

    public var description: String {
        if let name { return "\(name) <\(address)>" }
        return address
    }

    /// True when the address holds non-ASCII (needs an SMTPUTF8 transaction).
    public var needsSMTPUTF8: Bool { address.utf8.contains { $0 >= 0x80 } }

    /// The domain part (after the last `@`).
    public var domain: String {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return String(address[address.index(after: at)...])
    }

    // MARK: validation

    /// Checks `address` with MailFormat's ``AddressSyntax``: at most 254 octets (what fits
    /// in a 256-octet SMTP path), literals only as RFC 5321 address literals (`[192.0.2.1]`,
    /// `[IPv6:…]`, `[tag:…]`), since the address may become an envelope address that
    /// SMTP servers must accept in `RCPT TO:<…>`; an RFC 5322 domain literal such as
    /// `[a>b]` is refused.
    public static func validate(_ address: String) throws(AddressError) {
        do {
            _ = try AddressSyntax.check(Array(address.utf8), maxLength: 254, literals: .address)
        } catch {
            throw AddressError(address, reason(error))
        }
    }

    private static func reason(_ failure: AddressSyntax.Failure) -> String {
        switch failure {
        case .empty: return "empty address"
        case .tooLong: return "longer than 254 octets"
        case .invalidUTF8: return "invalid UTF-8"
        case .badQuotedPair: return "bad quoted pair"
        case .badQuotedCharacter: return "control character in the quoted local part"
        case .unterminatedQuote: return "unterminated quoted local part"
        case .emptyLocalPart: return "empty local part"
        case .emptyAtom: return "empty part in the local part"
        case .trailingDot: return "local part ends with '.'"
        case .badLocalCharacter(let c): return "character \(describe(c)) not allowed in the local part"
        case .missingDomain: return "missing @domain"
        case .localPartTooLong: return "local part longer than 64 octets"
        case .domainTooLong, .badDomain: return "bad domain"
        }
    }

    private static func describe(_ c: UInt8) -> String {
        if (0x21...0x7E).contains(c) { return "'\(Character(Unicode.Scalar(c)))'" }
        let digits = Array("0123456789ABCDEF")
        return "0x\(digits[Int(c >> 4)])\(digits[Int(c & 0xF)])"
    }

    // MARK: header form

    /// The mailbox as written after `Name: ` (RFC 5322 §3.4): `addr`, `Name <addr>`,
    /// `"Quoted \"name\"" <addr>` or `=?UTF-8?…?= <addr>`, folded to 78 columns where
    /// possible. The display name is sanitized first, so no CR, LF or other control
    /// character reaches the header whatever the name holds.
    func headerField(_ fieldName: String) -> [UInt8] {
        let head = Array((fieldName + ":").utf8)
        let angle = Array("<\(address)>".utf8)
        guard let name, case let text = MIME.sanitizeHeaderText(name), !text.isEmpty else {
            return MIME.fold(head: head, tokens: [Array(address.utf8)])
        }
        let words = text.utf8.split(separator: 0x20).map(Array.init)
        let ascii = text.utf8.allSatisfy { (0x20...0x7E).contains($0) }
        func plain(_ word: [UInt8]) -> Bool {
            word.allSatisfy { $0 < 0x80 && AddressSyntax.isAtext($0) } && !MIME.containsEncodedWordStart(word)
        }
        var tokens: [[UInt8]] = []
        if ascii && !text.contains("=?") {
            if words.allSatisfy(plain) {
                // A phrase of atoms.
                tokens = words
            } else {
                // One quoted-string, folded at its spaces (FWS inside a quoted-string
                // unfolds to the space it replaced).
                for (n, word) in words.enumerated() {
                    var token: [UInt8] = n == 0 ? [UInt8(ascii: "\"")] : []
                    for c in word {
                        if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { token.append(UInt8(ascii: "\\")) }
                        token.append(c)
                    }
                    if n == words.count - 1 { token.append(UInt8(ascii: "\"")) }
                    tokens.append(token)
                }
            }
            // A word too long to fold (over 76 characters) is only safe as encoded-words.
            if tokens.contains(where: { $0.count > 76 }) {
                tokens = MIME.encodedWords(text, firstLimit: 78 - head.count - 1)
            }
        } else {
            // Atoms stay readable; each run of words that need encoding becomes encoded-
            // words holding the run's spaces. (White space *between* two encoded-words is
            // not part of the name, RFC 2047 §6.2; a run is only split into several words
            // when it is longer than one encoded-word can hold.)
            var run: [[UInt8]] = []
            func flushRun() {
                guard !run.isEmpty else { return }
                let runText = String(decoding: Array(run.joined(separator: [0x20])), as: UTF8.self)
                tokens += MIME.encodedWords(runText, firstLimit: tokens.isEmpty ? 78 - head.count - 1 : 75)
                run = []
            }
            for word in words {
                if plain(word) {
                    flushRun()
                    tokens.append(word)
                } else {
                    run.append(word)
                }
            }
            flushRun()
        }
        return MIME.fold(head: head, tokens: tokens + [angle])
    }
}

/// An address that cannot be used in a message header, and why.
public struct AddressError: Error, Sendable, Hashable, CustomStringConvertible {
    public var address: String
    public var reason: String
    public init(_ address: String, _ reason: String) {
        self.address = address
        self.reason = reason
    }
    public var description: String {
        let shown = MIME.sanitizeHeaderText(address)
        return "invalid address \"\(shown)\": \(reason)"
    }
}
