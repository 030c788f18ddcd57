/// SMTP commands (RFC 5321 §4.1.1 plus STARTTLS, AUTH) and their parser.

/// An ESMTP parameter of MAIL or RCPT: `KEYWORD[=value]`, keyword upper-cased.
public struct ESMTPParameter: Hashable, Sendable {
    public var keyword: String
    public var value: String?
    public init(_ keyword: String, _ value: String? = nil) {
        self.keyword = keyword
        self.value = value
    }
}

public enum SMTPCommand: Hashable, Sendable {
    case helo(String)
    case ehlo(String)
    case mail(ReversePath, [ESMTPParameter])
    case rcpt(ForwardPath, [ESMTPParameter])
    case data
    case bdat
    case rset
    case noop
    case quit
    case vrfy(String)
    case expn(String)
    case help(String?)
    case starttls
    case auth(mechanism: String, initialResponse: String?)
}

/// A command line that did not parse, with the reply it earns.
public struct SMTPCommandError: Error, Equatable, Sendable {
    public var reply: SMTPReply
    public init(_ reply: SMTPReply) { self.reply = reply }

    static func syntax(_ text: String) -> SMTPCommandError {
        SMTPCommandError(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax error: \(text)"))
    }
    static let unrecognized = SMTPCommandError(SMTPReply(500, EnhancedStatusCode(5, 5, 1), "Command unrecognized"))
}

public enum SMTPCommandParser {
    /// Parses one command line (without its CRLF).
    public static func parse(_ line: [UInt8]) -> Result<SMTPCommand, SMTPCommandError> {
        do {
            return .success(try parseOrThrow(line))
        } catch {
            return .failure(error)
        }
    }

    static func parseOrThrow(_ line: [UInt8]) throws(SMTPCommandError) -> SMTPCommand {
        if line.contains(0) {
            throw SMTPCommandError(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "NUL character in command"))
        }
        let verbEnd = line.firstIndex(of: UInt8(ascii: " ")) ?? line.endIndex
        guard verbEnd - line.startIndex <= 10,
              let verb = String(validating: line[..<verbEnd], as: UTF8.self)?.uppercased()
        else { throw .unrecognized }
        let rest = verbEnd < line.endIndex ? Array(line[(verbEnd + 1)...]) : []
        let argument = String(decoding: rest, as: UTF8.self).trimmingSpaces()

        switch verb {
        case "HELO", "EHLO":
            guard !argument.isEmpty, !argument.contains(" ") || verb == "HELO" else {
                throw .syntax("\(verb) needs a domain name or address literal")
            }
            guard rest.allSatisfy({ $0 >= 0x20 && $0 != 0x7F }) else { throw .syntax("bad characters in \(verb)") }
            let name = String(argument.split(separator: " ").first ?? "")
            return verb == "HELO" ? .helo(name) : .ehlo(name)
        case "MAIL":
            let (path, params) = try splitPathAndParameters(rest, prefix: "FROM:")
            do {
                if let mailbox = try PathParser.parseBracketed(path) {
                    return .mail(.mailbox(mailbox), params)
                }
                return .mail(.null, params)
            } catch {
                throw SMTPCommandError(error.reply)
            }
        case "RCPT":
            let (path, params) = try splitPathAndParameters(rest, prefix: "TO:")
            let inner = String(decoding: path, as: UTF8.self)
            if inner.lowercased() == "<postmaster>" { return .rcpt(.postmaster, params) }
            let parsed: Mailbox?
            do {
                parsed = try PathParser.parseBracketed(path)
            } catch {
                throw SMTPCommandError(error.reply)
            }
            guard let mailbox = parsed else { throw .syntax("empty recipient") }
            return .rcpt(.mailbox(mailbox), params)
        case "DATA":
            guard argument.isEmpty else { throw .syntax("DATA takes no argument") }
            return .data
        case "BDAT":
            return .bdat
        case "RSET":
            guard argument.isEmpty else { throw .syntax("RSET takes no argument") }
            return .rset
        case "NOOP":
            return .noop
        case "QUIT":
            guard argument.isEmpty else { throw .syntax("QUIT takes no argument") }
            return .quit
        case "VRFY":
            guard !argument.isEmpty else { throw .syntax("VRFY needs an argument") }
            return .vrfy(argument)
        case "EXPN":
            guard !argument.isEmpty else { throw .syntax("EXPN needs an argument") }
            return .expn(argument)
        case "HELP":
            return .help(argument.isEmpty ? nil : argument)
        case "STARTTLS":
            guard argument.isEmpty else { throw .syntax("STARTTLS takes no argument") }
            return .starttls
        case "AUTH":
            let parts = argument.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 1 || parts.count == 2 else { throw .syntax("AUTH mechanism [initial-response]") }
            return .auth(mechanism: parts[0].uppercased(), initialResponse: parts.count == 2 ? String(parts[1]) : nil)
        default:
            throw .unrecognized
        }
    }

    /// Splits `FROM:<path> KEY=VALUE …`. Spaces between the colon and the path are
    /// tolerated (many clients send them); the path must be in angle brackets.
    static func splitPathAndParameters(_ rest: [UInt8], prefix: String) throws(SMTPCommandError) -> ([UInt8], [ESMTPParameter]) {
        let p = Array(prefix.utf8)
        guard rest.count >= p.count,
              zip(rest[0..<p.count], p).allSatisfy({ asciiUpper($0) == $1 })
        else { throw .syntax("expected \(prefix)<address>") }
        var i = p.count
        while i < rest.count, rest[i] == UInt8(ascii: " ") { i += 1 }
        guard i < rest.count, rest[i] == UInt8(ascii: "<") else {
            throw .syntax("the address must be enclosed in <>")
        }
        // Find the closing '>' outside a quoted local part and outside an address
        // literal (RFC 5321 dcontent may hold '"' and '>': `user@[tag:a>b]`).
        var j = i + 1
        var quoted = false
        var literal = false
        var close: Int?
        while j < rest.count {
            let b = rest[j]
            if quoted {
                if b == UInt8(ascii: "\\") { j += 2; continue }
                if b == UInt8(ascii: "\"") { quoted = false }
            } else if literal {
                if b == UInt8(ascii: "]") { literal = false }
            } else if b == UInt8(ascii: "\"") {
                quoted = true
            } else if b == UInt8(ascii: "[") {
                literal = true
            } else if b == UInt8(ascii: ">") {
                close = j
                break
            }
            j += 1
        }
        guard let close else { throw .syntax("missing '>'") }
        let path = Array(rest[i...close])
        var params: [ESMTPParameter] = []
        let tail = rest[(close + 1)...]
        if let first = tail.first, first != UInt8(ascii: " ") {
            throw .syntax("garbage after address")
        }
        for word in tail.split(separator: UInt8(ascii: " ")) {
            let eq = word.firstIndex(of: UInt8(ascii: "="))
            let keyBytes = eq.map { word[word.startIndex..<$0] } ?? word[...]
            guard !keyBytes.isEmpty,
                  keyBytes.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") }),
                  isAlnum(keyBytes.first!)
            else { throw SMTPCommandError(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Malformed parameter")) }
            let key = String(decoding: keyBytes, as: UTF8.self).uppercased()
            var value: String?
            if let eq {
                let v = word[(eq + 1)...]
                guard !v.isEmpty, v.allSatisfy({ $0 > 0x20 && $0 != UInt8(ascii: "=") && $0 != 0x7F }),
                      let s = String(validating: v, as: UTF8.self)
                else { throw SMTPCommandError(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Malformed value for \(key)")) }
                value = s
            }
            params.append(ESMTPParameter(key, value))
        }
        return (path, params)
    }

    static func asciiUpper(_ b: UInt8) -> UInt8 {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) ? b - 32 : b
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }
}

/// Decodes RFC 3461 xtext (`+XX` escapes); nil when malformed.
public func decodeXtext(_ text: String) -> String? {
    var out: [UInt8] = []
    var bytes = Array(text.utf8)[...]
    while let b = bytes.popFirst() {
        guard b >= 33, b <= 126, b != UInt8(ascii: "=") else { return nil }
        if b == UInt8(ascii: "+") {
            // Exactly two hex digits: `UInt8(_:radix:)` alone would also take a sign ("+1").
            guard bytes.count >= 2, bytes.prefix(2).allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
                  let v = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16)
            else { return nil }
            bytes = bytes.dropFirst(2)
            out.append(v)
        } else {
            out.append(b)
        }
    }
    return String(validating: out, as: UTF8.self)
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
