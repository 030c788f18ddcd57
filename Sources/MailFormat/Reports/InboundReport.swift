/// A delivery status notification (RFC 3464; RFC 6533 for `message/global-delivery-status`).
///
/// Field values are unfolded with whitespace runs collapsed to one space; address
/// types and diagnostic types (`rfc822;`, `smtp;`, `dns;`, `X-Postfix;`) are removed
/// where the text before the `;` is a bare token, so a Diagnostic-Code without a type
/// ("550 5.1.1 unknown; disabled") is kept whole.
public struct DeliveryStatusReport: Sendable {
    /// One per-recipient group of the status part.
    public struct Recipient: Sendable {
        /// The address of `Final-Recipient`, its address type (`rfc822;`) and any `<>` removed.
        public var finalRecipient: String?
        /// The address of `Original-Recipient`, read the same way.
        public var originalRecipient: String?
        /// The lower-cased first word of `Action`: failed, delayed, delivered, relayed, expanded.
        public var action: String?
        /// The `x.y.z` enhanced status code (RFC 3463) of `Status`; when that field is
        /// missing or holds none, the first one in `Diagnostic-Code`.
        public var status: String?
        /// `Diagnostic-Code` after its type (`smtp;`), whitespace runs collapsed.
        public var diagnosticCode: String?
        /// `Remote-MTA` after its type (`dns;`).
        public var remoteMTA: String?
        public var lastAttemptDate: String?
        public var willRetryUntil: String?

        public init(
            finalRecipient: String? = nil, originalRecipient: String? = nil, action: String? = nil,
            status: String? = nil, diagnosticCode: String? = nil, remoteMTA: String? = nil,
            lastAttemptDate: String? = nil, willRetryUntil: String? = nil
        ) {
            self.finalRecipient = finalRecipient
            self.originalRecipient = originalRecipient
            self.action = action
            self.status = status
            self.diagnosticCode = diagnosticCode
            self.remoteMTA = remoteMTA
            self.lastAttemptDate = lastAttemptDate
            self.willRetryUntil = willRetryUntil
        }
    }

    /// `Reporting-MTA` after its type (`dns;`).
    public var reportingMTA: String?
    public var originalEnvelopeID: String?
    public var arrivalDate: String?
    public var recipients: [Recipient]
    /// The text of the report's first part (its text/plain, or its HTML without tags when
    /// that part is an alternative), line breaks normalized to LF.
    public var humanReadable: String
    /// The header fields of the returned message (the `text/rfc822-headers`,
    /// `message/rfc822` or RFC 6533 `message/global*` part), empty if none.
    public var originalHeaders: [(name: String, value: String)]

    public init(
        reportingMTA: String? = nil, originalEnvelopeID: String? = nil, arrivalDate: String? = nil,
        recipients: [Recipient] = [], humanReadable: String = "",
        originalHeaders: [(name: String, value: String)] = []
    ) {
        self.reportingMTA = reportingMTA
        self.originalEnvelopeID = originalEnvelopeID
        self.arrivalDate = arrivalDate
        self.recipients = recipients
        self.humanReadable = humanReadable
        self.originalHeaders = originalHeaders
    }
}

/// An Abuse Reporting Format feedback report (RFC 5965): a complaint, mostly.
public struct FeedbackReport: Sendable {
    /// The lower-cased `Feedback-Type`: abuse, fraud, virus, other, not-spam,
    /// auth-failure…; "other" when the field is missing.
    public var feedbackType: String
    public var userAgent: String?
    public var version: String?
    /// The `Original-Mail-From` address without `<>`; nil when missing or null (`<>`).
    public var originalMailFrom: String?
    /// Every `Original-Rcpt-To` address, without `<>`.
    public var originalRcptTo: [String]
    public var arrivalDate: String?
    public var sourceIP: String?
    public var reportedDomain: [String]
    public var reportedURI: [String]
    /// `Reporting-MTA` after its type (`dns;`).
    public var reportingMTA: String?
    public var originalEnvelopeID: String?
    public var authenticationResults: String?
    /// The text of the report's first part, line breaks normalized to LF.
    public var humanReadable: String
    /// The header fields of the reported message (its `message/rfc822` or
    /// `text/rfc822-headers` part), empty if none.
    public var originalHeaders: [(name: String, value: String)]

    public init(
        feedbackType: String = "other", userAgent: String? = nil, version: String? = nil,
        originalMailFrom: String? = nil, originalRcptTo: [String] = [], arrivalDate: String? = nil,
        sourceIP: String? = nil, reportedDomain: [String] = [], reportedURI: [String] = [],
        reportingMTA: String? = nil, originalEnvelopeID: String? = nil, authenticationResults: String? = nil,
        humanReadable: String = "", originalHeaders: [(name: String, value: String)] = []
    ) {
        self.feedbackType = feedbackType
        self.userAgent = userAgent
        self.version = version
        self.originalMailFrom = originalMailFrom
        self.originalRcptTo = originalRcptTo
        self.arrivalDate = arrivalDate
        self.sourceIP = sourceIP
        self.reportedDomain = reportedDomain
        self.reportedURI = reportedURI
        self.reportingMTA = reportingMTA
        self.originalEnvelopeID = originalEnvelopeID
        self.authenticationResults = authenticationResults
        self.humanReadable = humanReadable
        self.originalHeaders = originalHeaders
    }
}

/// A bounce in no standard format (qmail, old Exim, Exchange HTML, mailbox providers'
/// own wording), read heuristically.
///
/// The status, reply code and recipients are looked for only in the text before a line
/// that introduces the returned message ("--- Below this line is a copy of the
/// message.", "------ This is a copy of the message, including all the headers. ------",
/// "----- Original message -----", …), so that the returned mail's own content is not
/// mistaken for the diagnosis.
public struct UnstructuredBounce: Sendable {
    /// Every text/plain part (decoded, joined by LF), or the text/html parts with tags
    /// removed when there is no text/plain; attached messages excluded; line breaks
    /// normalized to LF.
    public var text: String
    /// An enhanced status code (`x.y.z`, x in 2, 4, 5): the one right after a reply code
    /// ("550 5.1.1", "550-5.1.1") if there is such a pair, else the first in the text.
    public var status: String?
    /// A 4xx/5xx SMTP reply code: the one paired with `status` if there is such a pair,
    /// else the first standing alone in the text ("said: 550 …", "'550 …").
    public var replyCode: Int?
    /// The addresses the text is about, deduplicated case-insensitively, in order: an
    /// address in `<…>` followed by `:` or `...` (qmail, Postfix, Exim, sendmail), after
    /// `RCPT TO:`, at the start of a line (Exim's indented list), or after "to", "for",
    /// "recipient:" or "address:" ("Your message to jane@example.com couldn't be delivered").
    public var recipients: [String]
    /// The returned message's header fields: from an attached `message/rfc822` or
    /// `text/rfc822-headers` part, else from a header block right after a line that
    /// introduces an inline copy of the message (qmail, old Exim); empty if none.
    public var originalHeaders: [(name: String, value: String)]

    public init(
        text: String = "", status: String? = nil, replyCode: Int? = nil, recipients: [String] = [],
        originalHeaders: [(name: String, value: String)] = []
    ) {
        self.text = text
        self.status = status
        self.replyCode = replyCode
        self.recipients = recipients
        self.originalHeaders = originalHeaders
    }
}

/// Inbound mail about mail we sent: a bounce or a complaint, as found in the return-path
/// or feedback-loop mailbox.
///
/// The report is found by structure, never by wording: a `multipart/report` whose
/// `report-type` is `delivery-status` or `feedback-report`, or any multipart holding a
/// `message/delivery-status`, `message/global-delivery-status` or
/// `message/feedback-report` part (searched depth-first, in order, without looking inside
/// attached messages, so that a bounce of a report is not read as that report). Anything
/// else is an ``UnstructuredBounce``.
public enum InboundReport: Sendable {
    case deliveryStatus(DeliveryStatusReport)
    case feedback(FeedbackReport)
    case unstructured(UnstructuredBounce)

    /// Reads a whole message. Never traps, whatever the bytes.
    public static func parse(_ message: [UInt8]) -> InboundReport {
        parse(MIMEEntity.parse(message))
    }

    /// Reads a message already parsed.
    public static func parse(_ message: MIMEEntity) -> InboundReport {
        guard let found = ReportLocator.locate(in: message) else {
            return .unstructured(BounceHeuristics.bounce(from: message))
        }
        // The human-readable part comes first (RFC 6522); a status part that comes first has none.
        var human = ""
        if let container = found.container, found.index > 0, let first = container.parts.first {
            human = ReportText.readableText(first)
        }
        let original = found.container.map { ReportLocator.originalHeaders(in: $0, skipping: found.index) } ?? []
        let fields = ReportFields.groups(found.statusPart.decodedBody)
        switch found.kind {
        case .deliveryStatus:
            return .deliveryStatus(
                ReportFields.deliveryStatus(fields, humanReadable: human, originalHeaders: original)
            )
        case .feedback:
            return .feedback(
                ReportFields.feedback(fields.flatMap { $0 }, humanReadable: human, originalHeaders: original)
            )
        }
    }
}

// MARK: - Finding the report

enum ReportLocator {
    enum Kind { case deliveryStatus, feedback }

    struct Found {
        var kind: Kind
        /// The multipart holding the status part (nil if the status part is the root).
        var container: MIMEEntity?
        var index: Int
        var statusPart: MIMEEntity
    }

    static func kind(ofPartType type: String) -> Kind? {
        switch type {
        case "message/delivery-status", "message/global-delivery-status": return .deliveryStatus
        case "message/feedback-report": return .feedback
        default: return nil
        }
    }

    static func locate(in root: MIMEEntity) -> Found? {
        if let kind = kind(ofPartType: root.mediaType) {
            return Found(kind: kind, container: nil, index: 0, statusPart: root)
        }
        return search(root)
    }

    private static func search(_ entity: MIMEEntity) -> Found? {
        let type = entity.mediaType
        guard type.hasPrefix("multipart/") else { return nil }
        for (index, part) in entity.parts.enumerated() {
            if let kind = kind(ofPartType: part.mediaType) {
                return Found(kind: kind, container: entity, index: index, statusPart: part)
            }
        }
        // A report whose status part is mislabelled (text/plain, say): RFC 6522 puts it second.
        if type == "multipart/report", entity.parts.count >= 2, isLeaf(entity.parts[1]) {
            switch entity.parameter("report-type").map({ MIMEScan.trimmed($0).lowercased() }) {
            case "delivery-status", "global-delivery-status":
                return Found(kind: .deliveryStatus, container: entity, index: 1, statusPart: entity.parts[1])
            case "feedback-report":
                return Found(kind: .feedback, container: entity, index: 1, statusPart: entity.parts[1])
            default:
                break
            }
        }
        for part in entity.parts {
            if let found = search(part) { return found }
        }
        return nil
    }

    private static func isLeaf(_ part: MIMEEntity) -> Bool {
        let type = part.mediaType
        return !type.hasPrefix("multipart/") && !type.hasPrefix("message/") && !headerPartTypes.contains(type)
    }

    static let headerPartTypes: Set<String> = [
        "text/rfc822-headers", "message/rfc822-headers", "message/global-headers",
    ]
    static let messagePartTypes: Set<String> = ["message/rfc822", "message/global"]

    /// The header fields of the first returned-message part of `container` other than
    /// the status part.
    static func originalHeaders(in container: MIMEEntity, skipping statusIndex: Int) -> [(name: String, value: String)] {
        for (index, part) in container.parts.enumerated() where index != statusIndex {
            if let headers = headers(ofReturnedPart: part) { return headers }
        }
        return []
    }

    /// The header fields a `text/rfc822-headers` or `message/rfc822` part holds, or nil
    /// if `part` is neither.
    static func headers(ofReturnedPart part: MIMEEntity) -> [(name: String, value: String)]? {
        let type = part.mediaType
        if messagePartTypes.contains(type) {
            if let inner = part.parts.first { return inner.headers }
            return MIMEScan.headerBlock(part.decodedBody).fields
        }
        if headerPartTypes.contains(type) {
            return MIMEScan.headerBlock(part.decodedBody).fields
        }
        return nil
    }
}

// MARK: - Report fields

enum ReportFields {
    typealias Field = (name: String, value: String)

    /// The groups of `name: value` fields of a status part, separated by empty lines;
    /// values unfolded with whitespace runs collapsed to one space.
    static func groups(_ body: [UInt8]) -> [[Field]] {
        var groups: [[Field]] = []
        var i = 0
        while i < body.count {
            let (end, next) = MIMEScan.line(body, from: i)
            if MIMEScan.isBlank(body, i, end) {
                i = next
                continue
            }
            let block = MIMEScan.headerBlock(body, from: i)
            let group = block.fields.map { (name: $0.name.lowercased(), value: collapsed($0.value)) }
            if !group.isEmpty { groups.append(group) }
            i = max(block.end, next)
        }
        return groups
    }

    static func collapsed(_ text: String) -> String {
        text.unicodeScalars.split(whereSeparator: MIMEScan.isWhitespace)
            .map { String(String.UnicodeScalarView($0)) }
            .joined(separator: " ")
    }

    /// `type; value` → value, when the text before the first `;` is a bare token
    /// (`rfc822`, `smtp`, `dns`, `X-Postfix`, `utf-8`); anything else is kept whole.
    static func strippingType(_ value: String) -> String {
        let scalars = Array(value.unicodeScalars)
        guard let semicolon = scalars.firstIndex(of: ";"), semicolon > 0 else { return MIMEScan.trimmed(value) }
        let type = scalars[..<semicolon]
        guard type.allSatisfy({ $0.isASCII && MIMEScan.isTokenByte(UInt8(truncatingIfNeeded: $0.value)) }) else {
            return MIMEScan.trimmed(value)
        }
        return MIMEScan.trimmed(MIMEScan.string(scalars[(semicolon + 1)...]))
    }

    /// An address field's value: the content of the first `<…>` if there is one, else the
    /// value without a trailing `(comment)`; nil when empty.
    static func address(_ value: String) -> String? {
        let scalars = Array(value.unicodeScalars)
        var result: String
        if let open = scalars.firstIndex(of: "<"),
            let close = scalars[open...].firstIndex(of: ">")
        {
            result = MIMEScan.string(scalars[(open + 1)..<close])
        } else {
            var end = scalars.count
            if let paren = scalars.firstIndex(of: "("), paren > 0, MIMEScan.isWhitespace(scalars[paren - 1]) {
                end = paren
            }
            result = MIMEScan.string(scalars[..<end])
        }
        result = MIMEScan.trimmed(result)
        return result.isEmpty ? nil : result
    }

    static func value(_ name: String, in group: [Field]) -> String? {
        group.first { $0.name == name }?.value
    }

    static func nonEmpty(_ value: String?) -> String? {
        guard let value else { return nil }
        let trimmed = MIMEScan.trimmed(value)
        return trimmed.isEmpty ? nil : trimmed
    }

    static let recipientFieldNames: Set<String> = ["final-recipient", "original-recipient", "action", "status"]

    static func deliveryStatus(
        _ groups: [[Field]], humanReadable: String, originalHeaders: [Field]
    ) -> DeliveryStatusReport {
        var report = DeliveryStatusReport(humanReadable: humanReadable, originalHeaders: originalHeaders)
        for group in groups {
            // The per-message fields come first; a report without that group is read too.
            if report.reportingMTA == nil, let mta = nonEmpty(value("reporting-mta", in: group).map(strippingType)) {
                report.reportingMTA = mta
            }
            if report.originalEnvelopeID == nil {
                report.originalEnvelopeID = nonEmpty(value("original-envelope-id", in: group))
            }
            if report.arrivalDate == nil {
                report.arrivalDate = nonEmpty(value("arrival-date", in: group))
            }
            guard group.contains(where: { recipientFieldNames.contains($0.name) }) else { continue }

            var recipient = DeliveryStatusReport.Recipient()
            recipient.finalRecipient = value("final-recipient", in: group).map(strippingType).flatMap(address)
            recipient.originalRecipient = value("original-recipient", in: group).map(strippingType).flatMap(address)
            recipient.action = value("action", in: group).flatMap {
                $0.unicodeScalars.split(whereSeparator: MIMEScan.isWhitespace).first
                    .map { String(String.UnicodeScalarView($0)).lowercased() }
            }
            recipient.diagnosticCode = nonEmpty(value("diagnostic-code", in: group).map(strippingType))
            recipient.remoteMTA = nonEmpty(value("remote-mta", in: group).map(strippingType))
            recipient.lastAttemptDate = nonEmpty(value("last-attempt-date", in: group))
            recipient.willRetryUntil = nonEmpty(value("will-retry-until", in: group))
            recipient.status = value("status", in: group).flatMap {
                ReportText.firstEnhancedStatus(in: Array($0.unicodeScalars), maxSubjectDigits: 3)
            } ?? recipient.diagnosticCode.flatMap {
                ReportText.codes(in: Array($0.unicodeScalars)).status
            }
            report.recipients.append(recipient)
        }
        return report
    }

    static func feedback(_ fields: [Field], humanReadable: String, originalHeaders: [Field]) -> FeedbackReport {
        var report = FeedbackReport(humanReadable: humanReadable, originalHeaders: originalHeaders)
        if let type = nonEmpty(value("feedback-type", in: fields)),
            let word = type.unicodeScalars.split(whereSeparator: MIMEScan.isWhitespace).first
        {
            report.feedbackType = String(String.UnicodeScalarView(word)).lowercased()
        }
        report.userAgent = nonEmpty(value("user-agent", in: fields))
        report.version = nonEmpty(value("version", in: fields))
        report.originalMailFrom = value("original-mail-from", in: fields).flatMap(address)
        report.arrivalDate = nonEmpty(value("arrival-date", in: fields) ?? value("received-date", in: fields))
        report.sourceIP = nonEmpty(value("source-ip", in: fields))
        report.reportingMTA = nonEmpty(value("reporting-mta", in: fields).map(strippingType))
        report.originalEnvelopeID = nonEmpty(value("original-envelope-id", in: fields))
        report.authenticationResults = nonEmpty(value("authentication-results", in: fields))
        for field in fields {
            switch field.name {
            case "original-rcpt-to":
                if let address = address(field.value) { report.originalRcptTo.append(address) }
            case "reported-domain":
                if let domain = nonEmpty(field.value) { report.reportedDomain.append(domain) }
            case "reported-uri":
                if let uri = address(field.value) { report.reportedURI.append(uri) }
            default:
                break
            }
        }
        return report
    }
}

// MARK: - Text

enum ReportText {
    /// `text` with CRLF (and lone CR) turned into LF.
    static func normalizedNewlines(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var previousCR = false
        for scalar in text.unicodeScalars {
            if scalar == "\r" {
                out.append("\n")
                previousCR = true
                continue
            }
            if scalar == "\n" && previousCR {
                previousCR = false
                continue
            }
            previousCR = false
            out.append(scalar)
        }
        return String(out)
    }

    /// The human-readable text of an entity: a text part's text (HTML without its tags),
    /// or for a multipart its text/plain parts, else its HTML parts; attached messages
    /// are not looked into.
    static func readableText(_ entity: MIMEEntity) -> String {
        var plain: [String] = []
        var html: [String] = []
        collectText(entity, plain: &plain, html: &html)
        if plain.isEmpty && html.isEmpty {
            return normalizedNewlines(entity.text)
        }
        return plain.isEmpty ? html.joined(separator: "\n") : plain.joined(separator: "\n")
    }

    static func collectText(_ entity: MIMEEntity, plain: inout [String], html: inout [String]) {
        let type = entity.mediaType
        if type.hasPrefix("multipart/") {
            // A multipart whose parts could not be found: its raw body is the best text there is.
            if entity.parts.isEmpty { plain.append(normalizedNewlines(entity.text)) }
            for part in entity.parts { collectText(part, plain: &plain, html: &html) }
        } else if type == "text/plain" {
            plain.append(normalizedNewlines(entity.text))
        } else if type == "text/html" {
            html.append(strippingTags(entity.text))
        }
    }

    static func isDigit(_ scalar: Unicode.Scalar) -> Bool { scalar >= "0" && scalar <= "9" }

    static func isLetterOrDigit(_ scalar: Unicode.Scalar) -> Bool {
        isDigit(scalar) || (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
    }

    /// The enhanced status code (`class.subject.detail`, class 2, 4 or 5) starting at `i`,
    /// not glued to letters, digits or dots around it (so not inside an IP address or a
    /// longer dotted number).
    static func enhancedStatus(at i: Int, in s: [Unicode.Scalar], maxSubjectDigits: Int) -> (code: String, end: Int)? {
        guard i >= 0, i < s.count else { return nil }
        guard s[i] == "2" || s[i] == "4" || s[i] == "5" else { return nil }
        if i > 0, isLetterOrDigit(s[i - 1]) || s[i - 1] == "." { return nil }
        guard i + 1 < s.count, s[i + 1] == "." else { return nil }
        var j = i + 2
        let subjectStart = j
        while j < s.count, isDigit(s[j]), j - subjectStart < maxSubjectDigits { j += 1 }
        guard j > subjectStart, j < s.count, s[j] == "." else { return nil }
        j += 1
        let detailStart = j
        while j < s.count, isDigit(s[j]), j - detailStart < 3 { j += 1 }
        guard j > detailStart else { return nil }
        if j < s.count {
            if isLetterOrDigit(s[j]) { return nil }
            if s[j] == ".", j + 1 < s.count, isDigit(s[j + 1]) { return nil }
        }
        return (MIMEScan.string(s[i..<j]), j)
    }

    static func firstEnhancedStatus(in s: [Unicode.Scalar], maxSubjectDigits: Int) -> String? {
        for i in s.indices {
            if let found = enhancedStatus(at: i, in: s, maxSubjectDigits: maxSubjectDigits) { return found.code }
        }
        return nil
    }

    /// A 4xx or 5xx reply code (second digit 0 to 5, RFC 5321 §4.2) starting at `i`, not
    /// glued to letters, digits or dots.
    static func replyCode(at i: Int, in s: [Unicode.Scalar]) -> (code: Int, end: Int)? {
        guard i >= 0, i + 2 < s.count else { return nil }
        guard s[i] == "4" || s[i] == "5", s[i + 1] >= "0", s[i + 1] <= "5", isDigit(s[i + 2]) else { return nil }
        if i > 0, isLetterOrDigit(s[i - 1]) || s[i - 1] == "." { return nil }
        let end = i + 3
        if end < s.count {
            if isLetterOrDigit(s[end]) { return nil }
            if s[end] == ".", end + 1 < s.count, isDigit(s[end + 1]) { return nil }
        }
        let code = (Int(s[i].value) - 48) * 100 + (Int(s[i + 1].value) - 48) * 10 + (Int(s[i + 2].value) - 48)
        return (code, end)
    }

    /// The reply code and enhanced status of a diagnosis: the first pair ("550 5.1.1",
    /// "550-5.1.1") if there is one, else the first of each.
    static func codes(in s: [Unicode.Scalar]) -> (replyCode: Int?, status: String?) {
        var firstReply: Int?
        var firstStatus: String?
        for i in s.indices {
            if let reply = replyCode(at: i, in: s) {
                if reply.end < s.count, s[reply.end] == " " || s[reply.end] == "-",
                    let status = enhancedStatus(at: reply.end + 1, in: s, maxSubjectDigits: 1)
                {
                    return (reply.code, status.code)
                }
                if firstReply == nil { firstReply = reply.code }
            }
            if firstStatus == nil, let status = enhancedStatus(at: i, in: s, maxSubjectDigits: 1) {
                firstStatus = status.code
            }
        }
        return (firstReply, firstStatus)
    }

    // MARK: HTML

    private static let blockTags: Set<String> = [
        "br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "title", "body",
    ]

    private static let entities: [String: Unicode.Scalar] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ",
        "copy": "\u{A9}", "reg": "\u{AE}", "ndash": "\u{2013}", "mdash": "\u{2014}",
        "lsquo": "\u{2018}", "rsquo": "\u{2019}", "ldquo": "\u{201C}", "rdquo": "\u{201D}",
    ]

    /// HTML as plain text: tags removed (block-level ones become line breaks), script,
    /// style and comments dropped, character references decoded, whitespace collapsed.
    static func strippingTags(_ html: String) -> String {
        let s = Array(html.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        var noTagEndAfter = Int.max  // a "<" at or after this index has no ">" after it
        while i < s.count {
            let scalar = s[i]
            if scalar == "<", i < noTagEndAfter {
                if startsWith(s, at: i, "<!--") {
                    i = find(s, "-->", from: i + 4).map { $0 + 3 } ?? s.count
                    continue
                }
                guard let close = s[i...].firstIndex(of: ">") else {
                    noTagEndAfter = i
                    out.append(scalar)
                    i += 1
                    continue
                }
                var nameStart = i + 1
                if nameStart < close, s[nameStart] == "/" { nameStart += 1 }
                var nameEnd = nameStart
                while nameEnd < close, isLetterOrDigit(s[nameEnd]) { nameEnd += 1 }
                let name = MIMEScan.string(s[nameStart..<nameEnd]).lowercased()
                let isClosing = nameStart > i + 1
                if !isClosing, name == "script" || name == "style" {
                    i = find(s, "</" + name, from: close + 1, caseInsensitive: true)
                        .flatMap { s[$0...].firstIndex(of: ">") }.map { $0 + 1 } ?? s.count
                    continue
                }
                if blockTags.contains(name) {
                    out.append("\n")
                } else if name == "td" || name == "th" {
                    out.append(" ")
                }
                i = close + 1
            } else if scalar == "&" {
                // A reference is text like any other: `&#13;` or `&#10;` is white space
                // to collapse, not a line break (and no CR reaches the plain text).
                let (decoded, length) = characterReference(s, at: i)
                out.append(MIMEScan.isWhitespace(decoded) ? " " : decoded)
                i += length
            } else {
                out.append(MIMEScan.isWhitespace(scalar) ? " " : scalar)
                i += 1
            }
        }
        // Collapse spaces within lines, trim lines, and keep at most one empty line in a row.
        var lines: [String] = []
        for line in String(out).unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\u{A0}" })
            let text = words.map { String(String.UnicodeScalarView($0)) }.joined(separator: " ")
            if text.isEmpty, lines.last?.isEmpty ?? true { continue }
            lines.append(text)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    private static func startsWith(_ s: [Unicode.Scalar], at i: Int, _ prefix: String, caseInsensitive: Bool = false) -> Bool {
        var j = i
        for p in prefix.unicodeScalars {
            guard j < s.count else { return false }
            let c = s[j]
            if caseInsensitive {
                guard lowered(c) == lowered(p) else { return false }
            } else {
                guard c == p else { return false }
            }
            j += 1
        }
        return true
    }

    private static func lowered(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        guard scalar >= "A", scalar <= "Z", let lower = Unicode.Scalar(scalar.value + 32) else { return scalar }
        return lower
    }

    private static func find(_ s: [Unicode.Scalar], _ needle: String, from start: Int, caseInsensitive: Bool = false) -> Int? {
        guard let first = needle.unicodeScalars.first else { return nil }
        var i = max(0, start)
        while i < s.count {
            if lowered(s[i]) == lowered(first) || s[i] == first,
                startsWith(s, at: i, needle, caseInsensitive: caseInsensitive)
            {
                return i
            }
            i += 1
        }
        return nil
    }

    /// The character reference at `i` (which is `&`) and how many scalars it takes; a
    /// lone `&` is itself.
    private static func characterReference(_ s: [Unicode.Scalar], at i: Int) -> (Unicode.Scalar, Int) {
        var j = i + 1
        while j < s.count, j - i <= 10, s[j] != ";", isLetterOrDigit(s[j]) || s[j] == "#" { j += 1 }
        guard j < s.count, s[j] == ";", j > i + 1 else { return ("&", 1) }
        let name = MIMEScan.string(s[(i + 1)..<j])
        let length = j - i + 1
        if name.hasPrefix("#") {
            let digits = name.dropFirst()
            let value: UInt32?
            if digits.hasPrefix("x") || digits.hasPrefix("X") {
                value = UInt32(digits.dropFirst(), radix: 16)
            } else {
                value = UInt32(digits, radix: 10)
            }
            if let value, value != 0, let scalar = Unicode.Scalar(value) { return (scalar, length) }
            return ("&", 1)
        }
        if let scalar = entities[name.lowercased()] { return (scalar, length) }
        return ("&", 1)
    }
}

// MARK: - Non-standard bounces

enum BounceHeuristics {
    static func bounce(from root: MIMEEntity) -> UnstructuredBounce {
        var plain: [String] = []
        var html: [String] = []
        ReportText.collectText(root, plain: &plain, html: &html)
        let text = plain.isEmpty ? html.joined(separator: "\n") : plain.joined(separator: "\n")

        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
            .map { Array($0) }
        var diagnosisLines = lines[...]
        var inlineCopy: ArraySlice<[Unicode.Scalar]> = []
        if let marker = lines.firstIndex(where: introducesCopy) {
            diagnosisLines = lines[..<marker]
            inlineCopy = lines[(marker + 1)...]
        }

        var bounce = UnstructuredBounce(text: text)
        var diagnosis: [Unicode.Scalar] = []
        for line in diagnosisLines {
            diagnosis.append(contentsOf: line)
            diagnosis.append("\n")
        }
        let codes = ReportText.codes(in: diagnosis)
        bounce.status = codes.status
        bounce.replyCode = codes.replyCode

        var seen: Set<String> = []
        for line in diagnosisLines {
            for address in recipients(in: line) where seen.insert(address.lowercased()).inserted {
                bounce.recipients.append(address)
            }
        }

        bounce.originalHeaders = attachedHeaders(root) ?? inlineHeaders(inlineCopy) ?? []
        return bounce
    }

    // MARK: The returned message

    static let copyMarkers = [
        "below this line is a copy of the message",
        "this is a copy of the message",
        "this is a copy of your message",
        "original message follows",
        "returned message follows",
        "original message headers",
        "undelivered message follows",
    ]

    /// Whether `line` introduces the returned message ("--- Below this line is a copy of
    /// the message.", "----- Original message -----").
    static func introducesCopy(_ line: [Unicode.Scalar]) -> Bool {
        let text = MIMEScan.string(line[...]).lowercased()
        let core = MIMEScan.trimmed(
            String(String.UnicodeScalarView(text.unicodeScalars.drop { $0 == "-" || $0 == " " || $0 == "\t" }))
        )
        if copyMarkers.contains(where: { core.hasPrefix($0) }) { return true }
        let bare = core.unicodeScalars.filter { $0 != "-" && $0 != " " && $0 != "." }
        return String(String.UnicodeScalarView(bare)) == "originalmessage"
    }

    /// The headers of the first attached message or header part outside other attached
    /// messages.
    static func attachedHeaders(_ entity: MIMEEntity) -> [(name: String, value: String)]? {
        guard entity.mediaType.hasPrefix("multipart/") else { return nil }
        for part in entity.parts {
            if let headers = ReportLocator.headers(ofReturnedPart: part) { return headers }
            if let headers = attachedHeaders(part) { return headers }
        }
        return nil
    }

    /// The header block right after a copy marker, if its first line is a header field.
    static func inlineHeaders(_ lines: ArraySlice<[Unicode.Scalar]>) -> [(name: String, value: String)]? {
        guard let first = lines.firstIndex(where: { !$0.allSatisfy(MIMEScan.isWhitespace) }) else { return nil }
        var bytes: [UInt8] = []
        for line in lines[first...] {
            bytes.append(contentsOf: MIMEScan.string(line[...]).utf8)
            bytes.append(MIMEScan.lf)
        }
        let firstLineEnd = MIMEScan.line(bytes, from: 0).end
        guard MIMEScan.headerBlock(Array(bytes[..<firstLineEnd])).fields.count == 1 else { return nil }
        let fields = MIMEScan.headerBlock(bytes).fields
        return fields.isEmpty ? nil : fields
    }

    // MARK: Recipients

    private static let addressPunctuation = Set("!#$%&'*+-/=?^_`{|}~.@".unicodeScalars)

    /// Scalars that may appear in an address token (RFC 5322 atext, dots, `@`, UTF-8).
    static func isAddressScalar(_ scalar: Unicode.Scalar) -> Bool {
        if !scalar.isASCII { return scalar.properties.isAlphabetic || scalar.properties.numericType != nil }
        if ReportText.isLetterOrDigit(scalar) { return true }
        return addressPunctuation.contains(scalar)
    }

    /// `token` as an address (`local@domain.tld`), with quotes and final dots trimmed.
    static func validAddress(_ token: ArraySlice<Unicode.Scalar>) -> String? {
        var token = token
        while let first = token.first, first == "'" || first == "`" || first == "." { token = token.dropFirst() }
        while let last = token.last, last == "'" || last == "`" || last == "." { token = token.dropLast() }
        guard let at = token.firstIndex(of: "@"), token.filter({ $0 == "@" }).count == 1 else { return nil }
        let local = token[..<at]
        let domain = token[(at + 1)...]
        guard !local.isEmpty, domain.contains("."), domain.first != ".", domain.first != "-" else { return nil }
        guard domain.allSatisfy({ !$0.isASCII || ReportText.isLetterOrDigit($0) || $0 == "-" || $0 == "." }) else {
            return nil
        }
        return MIMEScan.string(token)
    }

    static let precedingWords: Set<String> = [
        "to", "to:", "for", "recipient", "recipient:", "recipients:", "address:", "addressee:",
    ]

    /// The addresses `line` names as recipients.
    static func recipients(in line: [Unicode.Scalar]) -> [String] {
        var found: [String] = []
        var i = 0
        while i < line.count {
            guard isAddressScalar(line[i]) else {
                i += 1
                continue
            }
            let start = i
            while i < line.count, isAddressScalar(line[i]) { i += 1 }
            guard let address = validAddress(line[start..<i]) else { continue }
            if namesRecipient(line, start: start, end: i) { found.append(address) }
        }
        return found
    }

    private static func namesRecipient(_ line: [Unicode.Scalar], start: Int, end: Int) -> Bool {
        let bracketed = start > 0 && line[start - 1] == "<" && end < line.count && line[end] == ">"
        var before = start
        var after = end
        if bracketed {
            before -= 1
            after += 1
        }
        // "<user@example.com>: …" (qmail, Postfix, Exim), "<user@example.com>... User unknown" (sendmail)
        if bracketed, after < line.count, line[after] == ":" { return true }
        if bracketed, after + 2 < line.count, line[after...].prefix(3).allSatisfy({ $0 == "." }) { return true }
        // "RCPT TO:<user@example.com>"
        if bracketed, before >= 3 {
            let word = MIMEScan.string(line[(before - 3)..<before]).lowercased()
            if word == "to:" { return true }
        }
        // At the start of a line: Exim's indented list, Postfix's "<user@…>: …".
        if line[..<before].allSatisfy(MIMEScan.isWhitespace) { return true }
        // After "to", "for", "recipient:", …
        var wordEnd = before
        while wordEnd > 0, MIMEScan.isWhitespace(line[wordEnd - 1]) { wordEnd -= 1 }
        var wordStart = wordEnd
        while wordStart > 0, wordEnd - wordStart < 12, !MIMEScan.isWhitespace(line[wordStart - 1]) { wordStart -= 1 }
        let word = MIMEScan.string(line[wordStart..<wordEnd]).lowercased()
        return precedingWords.contains(word)
    }
}
