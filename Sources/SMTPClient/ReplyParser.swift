import SMTPCore

/// Parses server replies (RFC 5321 §4.2), multi-line included, from raw bytes.
/// Tolerant where servers are sloppy (a bare LF ends a line; a missing text is fine),
/// strict where it matters (the code must be three digits, continuation lines must
/// repeat it, lines are capped).
public struct SMTPReplyParser: Sendable {
    public enum ParseError: Error, Equatable, Sendable {
        case malformed(String)
        case lineTooLong
    }

    public static let maxLineLength = 4096
    private var pending: [UInt8] = []
    private var lines: [String] = []
    private var code: Int?

    public init() {}

    /// Feeds bytes; returns the complete replies they finish.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(ParseError) -> [SMTPReply] {
        var replies: [SMTPReply] = []
        for byte in bytes {
            if byte == 0x0A {
                var line = pending
                pending.removeAll(keepingCapacity: true)
                if line.last == 0x0D { line.removeLast() }
                if let reply = try take(line) { replies.append(reply) }
            } else {
                pending.append(byte)
                if pending.count > Self.maxLineLength { throw .lineTooLong }
            }
        }
        return replies
    }

    private mutating func take(_ line: [UInt8]) throws(ParseError) -> SMTPReply? {
        guard line.count >= 3, line[0..<3].allSatisfy({ (0x30...0x39).contains($0) }),
              let c = Int(String(decoding: line[0..<3], as: UTF8.self)), (200...599).contains(c)
        else { throw .malformed(String(decoding: line.prefix(80), as: UTF8.self)) }
        if let code, code != c { throw .malformed("continuation line changed the code") }
        code = c
        var last = true
        var text = ""
        if line.count > 3 {
            guard line[3] == UInt8(ascii: "-") || line[3] == UInt8(ascii: " ") else {
                throw .malformed("bad separator after the reply code")
            }
            last = line[3] == UInt8(ascii: " ")
            text = String(decoding: line[4...], as: UTF8.self)
        }
        lines.append(text)
        guard last else { return nil }
        defer {
            lines = []
            code = nil
        }
        // The enhanced code, when present, leads each line (RFC 2034 §4).
        var enhanced: EnhancedStatusCode?
        var texts = lines
        if let first = lines.first, let space = first.firstIndex(of: " ") ?? (first.isEmpty ? nil : first.endIndex),
           let e = EnhancedStatusCode(parsing: first[..<space]), e.codeClass == c / 100 {
            enhanced = e
            texts = lines.map { l in
                if l.hasPrefix(e.description) { return String(l.dropFirst(e.description.count).drop(while: { $0 == " " })) }
                return l
            }
        }
        return SMTPReply(c, enhanced, texts)
    }
}
