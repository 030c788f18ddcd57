/// SMTPCore — the SMTP grammar without I/O.
///
/// Summary: commands, replies, enhanced status codes (RFC 3463), paths and mailboxes
/// (RFC 5321 §4.1.2, SMTPUTF8 per RFC 6531), strict CRLF line framing, the DATA reader
/// with dot-unstuffing, and dot-stuffing for the client side.
///
/// Trust: every byte handed to this module comes from the network and is untrusted.
/// Parsers never trap on input; they return typed errors that know their SMTP reply.
/// Only `CRLF.CRLF` ends DATA, and bare CR or LF anywhere is reported, never treated as
/// a line ending (the SMTP smuggling class of bugs, CVE-2023-51764).

/// An RFC 3463 enhanced status code, `class.subject.detail`.
public struct EnhancedStatusCode: Hashable, Sendable, CustomStringConvertible {
    public var codeClass: Int
    public var subject: Int
    public var detail: Int

    public init(_ codeClass: Int, _ subject: Int, _ detail: Int) {
        self.codeClass = codeClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `2.0.0`-style text; nil when it is not one.
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let c = Int(parts[0]), [2, 4, 5].contains(c),
              let s = Int(parts[1]), (0...999).contains(s),
              let d = Int(parts[2]), (0...999).contains(d)
        else { return nil }
        self.init(c, s, d)
    }

    public var description: String { "\(codeClass).\(subject).\(detail)" }
}

/// One SMTP reply: a three-digit code, an optional enhanced status code and one or
/// more lines of text.
public struct SMTPReply: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var enhanced: EnhancedStatusCode?
    public var lines: [String]

    public init(_ code: Int, _ enhanced: EnhancedStatusCode?, _ lines: [String]) {
        precondition((200...599).contains(code), "SMTP reply code out of range: \(code)")
        self.code = code
        self.enhanced = enhanced
        self.lines = lines.isEmpty ? [""] : lines
    }

    public init(_ code: Int, _ enhanced: EnhancedStatusCode?, _ text: String) {
        self.init(code, enhanced, [text])
    }

    public var isPositive: Bool { code < 400 }
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    public var isPermanentFailure: Bool { code >= 500 }

    /// The wire form: `250-first\r\n250 last\r\n`. Text never carries CR or LF: any
    /// that slipped in are replaced by spaces so a reply can never split itself.
    public var encoded: String {
        var out = ""
        for (index, line) in lines.enumerated() {
            let separator = index == lines.count - 1 ? " " : "-"
            out += String(code)
            out += separator
            if let enhanced { out += enhanced.description + " " }
            out += Self.sanitize(line)
            out += "\r\n"
        }
        return out
    }

    public var description: String {
        let text = lines.joined(separator: " / ")
        if let enhanced { return "\(code) \(enhanced) \(text)" }
        return "\(code) \(text)"
    }

    static func sanitize(_ line: String) -> String {
        guard line.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return line }
        return String(line.map { ($0 == "\r" || $0 == "\n" || $0 == "\r\n") ? " " : $0 })
    }
}
