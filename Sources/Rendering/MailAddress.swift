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
        guard t.hasSuffix(">"), let open = t.lastIndex(of: "<") else {
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

    public static func validate(_ address: String) throws(AddressError) {
        let b = Array(address.utf8)
        guard !b.isEmpty else { throw .init(address, "empty address") }
        guard b.count <= 254 else { throw .init(address, "longer than 254 octets") }
        guard String(validating: b, as: UTF8.self) != nil else { throw .init(address, "invalid UTF-8") }
        var i = 0
        if b[0] == UInt8(ascii: "\"") {
            i = 1
            var closed = false
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\\") {
                    guard i + 1 < b.count, (0x20...0x7E).contains(b[i + 1]) || b[i + 1] >= 0x80 else {
                        throw .init(address, "bad quoted pair")
                    }
                    i += 2
                    continue
                }
                if c == UInt8(ascii: "\"") { closed = true; i += 1; break }
                guard c == 0x20 || c == 0x21 || (0x23...0x5B).contains(c) || (0x5D...0x7E).contains(c) || c >= 0x80 else {
                    throw .init(address, "control character in the quoted local part")
                }
                i += 1
            }
            guard closed else { throw .init(address, "unterminated quoted local part") }
        } else {
            var atom = 0
            while i < b.count, b[i] != UInt8(ascii: "@") {
                let c = b[i]
                if c == UInt8(ascii: ".") {
                    guard atom > 0 else { throw .init(address, "empty part in the local part") }
                    atom = 0
                } else {
                    guard isAtext(c) else { throw .init(address, "character \(describe(c)) not allowed in the local part") }
                    atom += 1
                }
                i += 1
            }
            guard atom > 0 else { throw .init(address, i == 0 ? "empty local part" : "local part ends with '.'") }
        }
        guard i < b.count, b[i] == UInt8(ascii: "@") else { throw .init(address, "missing @domain") }
        guard i <= 64 else { throw .init(address, "local part longer than 64 octets") }
        let domain = Array(b[(i + 1)...])
        guard isHostName(domain) || isAddressLiteral(domain) else { throw .init(address, "bad domain") }
    }

    static func isAtext(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return c >= 0x80 || "!#$%&'*+-/=?^_`{|}~".utf8.contains(c)
        }
    }

    /// LDH labels (UTF-8 U-labels allowed), dot-separated, no empty label, ≤ 63 per label.
    static func isHostName(_ d: [UInt8]) -> Bool {
        guard !d.isEmpty, d.count <= 253 else { return false }
        for label in d.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.count <= 63, label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-")
            else { return false }
            for c in label {
                let ok = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "-") || c >= 0x80
                guard ok else { return false }
            }
        }
        return true
    }

    static func isAddressLiteral(_ d: [UInt8]) -> Bool {
        guard d.count >= 3, d.first == UInt8(ascii: "["), d.last == UInt8(ascii: "]") else { return false }
        return d.dropFirst().dropLast().allSatisfy { (0x21...0x5A).contains($0) || (0x5E...0x7E).contains($0) }
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
            word.allSatisfy { $0 < 0x80 && Self.isAtext($0) } && !MIME.containsEncodedWordStart(word)
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
