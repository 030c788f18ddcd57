import Foundation
import MailFormat

/// The unsubscribe targets of one message: the HTTPS URL (one-click POST, RFC 8058, and
/// the confirmation page on GET) and optionally a `mailto:` URI.
public struct ListUnsubscribe: Sendable, Hashable {
    public var url: String
    public var mailto: String?
    public init(url: String, mailto: String? = nil) {
        self.url = url
        self.mailto = mailto
    }
}

/// A header field added to every message of a campaign, e.g. `X-Herald-Campaign`.
public struct ExtraHeader: Sendable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One rendered message, ready for the spool.
public struct RenderedMessage: Sendable {
    /// The RFC 5322 message, CRLF line endings, ending in CRLF.
    public var bytes: [UInt8]
    /// The Message-ID without angle brackets (`random@domain`).
    public var messageID: String
    /// True when an address holds UTF-8 (RFC 6532 header): the message needs SMTPUTF8.
    public var needsSMTPUTF8: Bool
    /// The templates as rendered (before MIME encoding), for tests and previews.
    public var parts: RenderedParts
}

/// Why a message could not be rendered.
public enum RenderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An address (`From`, `Reply-To`, `To`) is unusable.
    case invalidAddress(field: String, AddressError)
    /// An extra header has a bad name or collides with one the renderer writes.
    case invalidHeader(name: String, reason: String)
    /// The Message-ID domain is not a host name.
    case invalidMessageIDDomain(String)
    /// A List-Unsubscribe URI is not usable in the header.
    case invalidUnsubscribeURI(String, reason: String)
    /// The final check of the header section failed (a bug: no input may cause this).
    case malformedHeader(String)

    public var description: String {
        switch self {
        case .invalidAddress(let field, let error): return "\(field): \(error)"
        case .invalidHeader(let name, let reason): return "header \"\(MIME.sanitizeHeaderText(name))\": \(reason)"
        case .invalidMessageIDDomain(let d): return "Message-ID domain \"\(MIME.sanitizeHeaderText(d))\" is not a host name"
        case .invalidUnsubscribeURI(let u, let reason): return "List-Unsubscribe \"\(MIME.sanitizeHeaderText(u))\": \(reason)"
        case .malformedHeader(let why): return "rendered header section is malformed: \(why)"
        }
    }
}

/// Renders a campaign's messages: one `MessageRenderer` per campaign (the From, Reply-To
/// and extra headers are encoded once), `render(recipient:…)` per recipient.
///
/// The message: `From`, `To`, `Reply-To`, `Subject`, `Date`, `Message-ID`,
/// `MIME-Version`, `List-Unsubscribe`, `List-Unsubscribe-Post`, the extra headers, then
/// either `multipart/alternative` (text/plain, then text/html) or a single text/plain
/// part. Each part is UTF-8, quoted-printable, or base64 when it is mostly non-ASCII.
/// Header lines stay within 78 characters where the content allows (a long URL in
/// List-Unsubscribe may be longer) and never reach 998; body lines are at most 76.
///
/// Header injection: text that comes from templates or variables (subject, display
/// names, extra header values) is sanitized (CR, LF and other controls removed or made
/// spaces) and encoded; addresses are validated; and the finished header section is
/// parsed once more (`HeaderCheck`) — if it does not hold exactly the fields the renderer
/// meant to write, rendering fails instead of producing the message.
public struct MessageRenderer: Sendable {
    public let template: CampaignTemplate
    public let campaign: [String: TemplateValue]
    public let from: MailAddress
    public let replyTo: MailAddress?
    public let messageIDDomain: String
    public let extraHeaders: [ExtraHeader]

    private let fromField: [UInt8]
    private let replyToField: [UInt8]?
    private let extraFields: [[UInt8]]
    private let extraNames: [String]

    /// Field names the renderer writes itself (extra headers may not repeat them).
    static let reservedNames: Set<String> = [
        "from", "to", "cc", "bcc", "reply-to", "sender", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "list-unsubscribe", "list-unsubscribe-post", "return-path",
        "received", "resent-from", "resent-to", "resent-date",
    ]

    public init(template: CampaignTemplate, campaign: [String: TemplateValue] = [:], from: MailAddress,
                replyTo: MailAddress? = nil, messageIDDomain: String, extraHeaders: [ExtraHeader] = []) throws(RenderError) {
        guard messageIDDomain.utf8.count <= 253, AddressSyntax.isDomain(Array(messageIDDomain.utf8)[...]),
              messageIDDomain.utf8.allSatisfy({ $0 < 0x80 }) else {
            throw .invalidMessageIDDomain(messageIDDomain)
        }
        var fields: [[UInt8]] = []
        var names: [String] = []
        var seen: Set<String> = []
        for header in extraHeaders {
            let lower = header.name.lowercased()
            guard !header.name.isEmpty, header.name.utf8.count <= 76,
                  header.name.utf8.allSatisfy({ (33...126).contains($0) && $0 != UInt8(ascii: ":") })
            else { throw .invalidHeader(name: header.name, reason: "not a valid field name") }
            guard !Self.reservedNames.contains(lower) && !lower.hasPrefix("content-") else {
                throw .invalidHeader(name: header.name, reason: "written by the renderer")
            }
            guard seen.insert(lower).inserted else { throw .invalidHeader(name: header.name, reason: "given twice") }
            fields.append(MIME.unstructuredField(name: header.name, value: header.value))
            names.append(header.name)
        }
        self.template = template
        self.campaign = campaign
        self.from = from
        self.replyTo = replyTo
        self.messageIDDomain = messageIDDomain
        self.extraHeaders = extraHeaders
        self.fromField = from.headerField("From")
        self.replyToField = replyTo?.headerField("Reply-To")
        self.extraFields = fields
        self.extraNames = names
    }

    /// Renders one message. Throws when the recipient's address is invalid, or an
    /// unsubscribe URI cannot be written into the header.
    /// `htmlTransform` changes the rendered HTML part before it is encoded (open and click
    /// tracking, ``LinkTracking``); the text part is left as rendered.
    public func render(recipient: RecipientVariables, listUnsubscribe: ListUnsubscribe?,
                       date: Date = Date(),
                       htmlTransform: ((String) -> String)? = nil) throws(RenderError) -> RenderedMessage {
        let to: MailAddress
        do {
            to = try MailAddress(recipient.email, name: recipient.displayName)
        } catch {
            throw .invalidAddress(field: "To", error)
        }
        var unsubscribeField: [UInt8]?
        if let listUnsubscribe { unsubscribeField = try Self.listUnsubscribeField(listUnsubscribe) }

        var parts = template.render(recipient: recipient, campaign: campaign, unsubscribeURL: listUnsubscribe?.url)
        if let htmlTransform, let html = parts.html { parts.html = htmlTransform(html) }
        let random = Crypto.randomBytes(32)
        let messageID = Self.base32(random[0..<20]) + "@" + messageIDDomain

        var names: [String] = []
        var header: [UInt8] = []
        header.reserveCapacity(1024)
        func add(_ name: String, _ field: [UInt8]) {
            names.append(name)
            header += field
            header += MIME.crlf
        }
        add("From", fromField)
        add("To", to.headerField("To"))
        if let replyToField { add("Reply-To", replyToField) }
        add("Subject", MIME.unstructuredField(name: "Subject", value: parts.subject))
        add("Date", Array("Date: \(MailDate.rfc5322(date))".utf8))
        add("Message-ID", Array("Message-ID: <\(messageID)>".utf8))
        add("MIME-Version", Array("MIME-Version: 1.0".utf8))
        if let unsubscribeField {
            add("List-Unsubscribe", unsubscribeField)
            add("List-Unsubscribe-Post", Array("List-Unsubscribe-Post: List-Unsubscribe=One-Click".utf8))
        }
        for (name, field) in zip(extraNames, extraFields) { add(name, field) }

        let text = MIME.normalizeLineEndings(parts.text)
        var body: [UInt8] = []
        if let html = parts.html {
            let htmlBytes = MIME.normalizeLineEndings(html)
            var boundary = "=_herald_" + Self.base32(random[20..<32])
            var encodedText = Self.encodePart(text, type: "text/plain")
            var encodedHTML = Self.encodePart(htmlBytes, type: "text/html")
            // Cannot happen ("=_" never occurs in quoted-printable or base64), but cheap to be sure.
            while Self.contains(encodedText, boundary) || Self.contains(encodedHTML, boundary) {
                boundary = "=_herald_" + Self.base32(Crypto.randomBytes(12)[...])
                encodedText = Self.encodePart(text, type: "text/plain")
                encodedHTML = Self.encodePart(htmlBytes, type: "text/html")
            }
            add("Content-Type", Array("Content-Type: multipart/alternative;\r\n boundary=\"\(boundary)\"".utf8))
            let delimiter = Array("--\(boundary)\r\n".utf8)
            body.reserveCapacity(encodedText.count + encodedHTML.count + 200)
            body += delimiter
            body += encodedText
            body += MIME.crlf
            body += delimiter
            body += encodedHTML
            body += MIME.crlf
            body += Array("--\(boundary)--\r\n".utf8)
        } else {
            let part = Self.encodePart(text, type: "text/plain")
            // The part's own header lines become the message's last header fields.
            let split = Self.find(part, [0x0D, 0x0A, 0x0D, 0x0A])!
            for line in part[..<split].split(separator: 0x0A) {
                let field = Array(line.last == 0x0D ? line.dropLast() : line)
                let name = String(decoding: field.prefix(while: { $0 != UInt8(ascii: ":") }), as: UTF8.self)
                add(name, field)
            }
            body += part[(split + 4)...]
            if body.count < 2 || body.suffix(2) != [0x0D, 0x0A] { body += MIME.crlf }
        }
        try HeaderCheck.verify(header, expected: names)

        var message = header
        message.reserveCapacity(header.count + 2 + body.count)
        message += MIME.crlf
        message += body
        return RenderedMessage(bytes: message, messageID: messageID,
                               needsSMTPUTF8: to.needsSMTPUTF8 || from.needsSMTPUTF8 || (replyTo?.needsSMTPUTF8 ?? false),
                               parts: parts)
    }

    /// One-shot form: builds a renderer for this call and returns the message bytes.
    public static func render(_ template: CampaignTemplate, recipient: RecipientVariables,
                              campaign: [String: TemplateValue] = [:], from: MailAddress, replyTo: MailAddress? = nil,
                              listUnsubscribe: ListUnsubscribe?, messageIDDomain: String, date: Date = Date(),
                              extraHeaders: [ExtraHeader] = []) throws(RenderError) -> [UInt8] {
        try MessageRenderer(template: template, campaign: campaign, from: from, replyTo: replyTo,
                            messageIDDomain: messageIDDomain, extraHeaders: extraHeaders)
            .render(recipient: recipient, listUnsubscribe: listUnsubscribe, date: date).bytes
    }

    // MARK: pieces

    /// A part: its Content-Type and Content-Transfer-Encoding lines, a blank line, the
    /// encoded body (not ending in a line break unless the text does).
    static func encodePart(_ body: [UInt8], type: String) -> [UInt8] {
        let base64 = MIME.prefersBase64(body)
        var out = Array("Content-Type: \(type); charset=utf-8\r\nContent-Transfer-Encoding: \(base64 ? "base64" : "quoted-printable")\r\n\r\n".utf8)
        if base64 {
            MIME.base64Lines(body, into: &out)
            if out.suffix(2) == [0x0D, 0x0A] { out.removeLast(2) }
        } else {
            MIME.quotedPrintable(body, into: &out)
        }
        return out
    }

    static func listUnsubscribeField(_ l: ListUnsubscribe) throws(RenderError) -> [UInt8] {
        func check(_ uri: String, schemes: [String]) throws(RenderError) -> [UInt8] {
            let lower = uri.lowercased()
            guard schemes.contains(where: { lower.hasPrefix($0) }) else {
                throw .invalidUnsubscribeURI(uri, reason: "must start with \(schemes.joined(separator: " or "))")
            }
            let bytes = Array(uri.utf8)
            guard bytes.count <= 900 else { throw .invalidUnsubscribeURI(uri, reason: "longer than 900 characters") }
            guard bytes.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">")
                && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: ",") })
            else { throw .invalidUnsubscribeURI(uri, reason: "holds a space, control character, quote, comma or angle bracket") }
            return [UInt8(ascii: "<")] + bytes + [UInt8(ascii: ">")]
        }
        var tokens = [try check(l.url, schemes: ["https://", "http://"])]
        if let mailto = l.mailto { tokens.append(try check(mailto, schemes: ["mailto:"])) }
        // "<a>, <b>": the comma belongs to the first token so a fold lands after it.
        if tokens.count == 2 { tokens[0].append(UInt8(ascii: ",")) }
        return MIME.fold(head: Array("List-Unsubscribe:".utf8), tokens: tokens)
    }

    private static let base32Alphabet: [UInt8] = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    /// Lower-case base32 without padding: safe in Message-IDs and boundaries.
    static func base32(_ bytes: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for b in bytes {
            buffer = buffer << 8 | UInt32(b)
            bits += 8
            while bits >= 5 {
                bits -= 5
                out.append(base32Alphabet[Int((buffer >> UInt32(bits)) & 31)])
            }
            buffer &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 { out.append(base32Alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        TemplateChecker.find(needle, in: hay, from: 0)
    }

    static func contains(_ hay: [UInt8], _ needle: String) -> Bool {
        find(hay, Array(needle.utf8)) != nil
    }
}

/// The last line of defence against header injection: the finished header section is
/// split into fields again, and must consist of exactly the expected fields, in order,
/// each line ending in CRLF, no bare CR or LF, no NUL or other control character except
/// the tab, a continuation line never blank, and no line over 998 octets.
enum HeaderCheck {
    static func verify(_ header: [UInt8], expected: [String]) throws(RenderError) {
        guard header.count >= 2, header.suffix(2) == [0x0D, 0x0A] else { throw .malformedHeader("does not end in CRLF") }
        var names: [String] = []
        var lineStart = 0
        var i = 0
        while i < header.count {
            let c = header[i]
            if c == 0x0D {
                guard i + 1 < header.count, header[i + 1] == 0x0A else { throw .malformedHeader("bare CR") }
                let line = header[lineStart..<i]
                guard line.count <= 998 else { throw .malformedHeader("line longer than 998 octets") }
                guard let first = line.first else { throw .malformedHeader("empty line inside the header") }
                if first == 0x20 || first == 0x09 {
                    guard !names.isEmpty else { throw .malformedHeader("continuation before the first field") }
                    guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }) else {
                        throw .malformedHeader("white-space-only continuation line")
                    }
                } else {
                    guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                          line[line.startIndex..<colon].allSatisfy({ (33...126).contains($0) })
                    else { throw .malformedHeader("a line that is neither a field nor a continuation") }
                    names.append(String(decoding: line[line.startIndex..<colon], as: UTF8.self))
                }
                i += 2
                lineStart = i
                continue
            }
            if c == 0x0A { throw .malformedHeader("bare LF") }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw .malformedHeader("control character 0x\(String(c, radix: 16))") }
            i += 1
        }
        guard names == expected else {
            throw .malformedHeader("fields \(names) instead of \(expected)")
        }
    }
}
