/// Harness 8: what campaign rendering does with user text — from Rendering (compiled
/// into this module: Rendering itself needs swift-mustache and OpenSSL): `htmlToText`,
/// `TemplateChecker`, the MIME encoders and `MailAddress`; checked against MailFormat's
/// decoders, which is how the receiving side (and Herald's own bounce intake) reads them.
///
/// Input: byte 0 picks what the text is used as; the rest is the text (UTF-8, invalid
/// sequences replaced).
///
/// Invariants:
/// - `htmlToText`: no trap; no line ends in a space or tab, no blank line at either end,
///   never two blank lines in a row.
/// - `TemplateChecker.check`: no trap; every issue's line is 0 (whole template) or
///   1…(lines in the template).
/// - Quoted-printable body: only printable ASCII and CRLF, lines of at most 76
///   characters, and MailFormat's `decodeQuotedPrintable` gives the CRLF-normalized text back.
/// - Base64 body: lines of at most 76 characters, and `decodeBase64` gives the bytes back.
/// - `normalizeLineEndings`: no bare CR or LF is left.
/// - Header fields (`unstructuredField`, `MailAddress.headerField`): printable ASCII
///   only (raw UTF-8 only in an SMTPUTF8 address), CRLF only as folding (followed by a space); Subject lines of at most 78
///   characters, `To:` lines of at most 998 (RFC 5322 §2.1.1); the Subject decodes
///   (RFC 2047) back to the sanitized text.
/// - `MailAddress(parsing:)` and `MailAddress(_:name:)`: what they accept validates, and
///   the `To:` field parses back to the same address (and to the same plain ASCII name).
import FuzzSupport
import MailFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let mode = input.byte()
    let raw = Array(input.rest)
    let text = String(decoding: raw, as: UTF8.self)

    switch mode % 4 {
    case 0:
        checkHTML(text)
    case 1:
        checkTemplate(text, field: TemplateField.allCases[Int(mode >> 2) % TemplateField.allCases.count])
    case 2:
        checkBodies(text, raw: raw)
    default:
        checkHeaders(text)
    }
    return 0
}

func checkHTML(_ html: String) {
    let out = htmlToText(html)
    let lines = out.utf8.split(separator: 0x0A, omittingEmptySubsequences: false)
    for line in lines {
        invariant(line.last != 0x20 && line.last != 0x09, "a line ending in white space: \(show(line)) in \(show(out))")
    }
    if !out.isEmpty {
        invariant(!(lines.first?.isEmpty ?? true) && !(lines.last?.isEmpty ?? true), "a blank line at an end of \(show(out))")
    }
    for k in lines.indices.dropFirst() where lines[k].isEmpty {
        invariant(!lines[k - 1].isEmpty, "two blank lines in a row in \(show(out))")
    }
}

func checkTemplate(_ source: String, field: TemplateField) {
    let checker = TemplateChecker(field: field, campaignFields: ["name", "subject", "id"])
    let lineCount = source.utf8.filter { $0 == 0x0A }.count + 1
    for issue in checker.check(source) {
        invariant(issue.field == field, "issue for \(issue.field) from a \(field) template")
        invariant(issue.line >= 0 && issue.line <= lineCount, "issue at line \(issue.line) of \(lineCount): \(issue)")
        _ = issue.description
    }
}

func checkBodies(_ text: String, raw: [UInt8]) {
    let normalized = MIME.normalizeLineEndings(text)
    for (k, b) in normalized.enumerated() {
        if b == 0x0D { invariant(k + 1 < normalized.count && normalized[k + 1] == 0x0A, "bare CR after normalizing \(show(text))") }
        if b == 0x0A { invariant(k > 0 && normalized[k - 1] == 0x0D, "bare LF after normalizing \(show(text))") }
    }

    var qp: [UInt8] = []
    MIME.quotedPrintable(normalized, into: &qp)
    for line in crlfLines(qp[...]) {
        let content = line.suffix(2).elementsEqual([0x0D, 0x0A]) ? line.dropLast(2) : line
        invariant(content.count <= 76, "a quoted-printable line of \(content.count): \(show(content))")
        invariant(content.allSatisfy { (0x20...0x7E).contains($0) || $0 == 0x09 }, "a quoted-printable line with \(show(content))")
        if let last = content.last { invariant(last != 0x20 && last != 0x09, "trailing white space in quoted-printable \(show(content))") }
    }
    let decodedQP = MIMEEntity.decodeQuotedPrintable(qp)
    invariant(decodedQP == normalized, "quoted-printable round trip: \(show(normalized)) → \(show(qp)) → \(show(decodedQP))")

    var b64: [UInt8] = []
    MIME.base64Lines(raw, into: &b64)
    for line in crlfLines(b64[...]) {
        invariant(line.count - 2 <= 76, "a base64 line of \(line.count - 2)")
    }
    let decoded64 = MIMEEntity.decodeBase64(b64)
    invariant(decoded64 == raw, "base64 round trip: \(show(raw)) → \(show(decoded64))")
}

/// `utf8`: raw UTF-8 is allowed (RFC 6532: an SMTPUTF8 address in `To:`).
func checkFolded(_ field: [UInt8], maxLine: Int?, utf8: Bool = false) {
    let lines = crlfLines(field[...])
    for (k, line) in lines.enumerated() {
        let content = line.suffix(2).elementsEqual([0x0D, 0x0A]) ? line.dropLast(2) : line
        invariant(k == lines.count - 1 ? content.count == line.count : content.count == line.count - 2, "field \(show(field)) ends in CRLF")
        invariant(content.allSatisfy { (0x20...0x7E).contains($0) || (utf8 && $0 >= 0x80) }, "a header line with \(show(content)) in \(show(field))")
        if k > 0 { invariant(content.first == 0x20, "a folded line without leading space: \(show(field))") }
        if let maxLine { invariant(content.count <= maxLine, "a header line of \(content.count): \(show(field))") }
    }
}

func checkHeaders(_ text: String) {
    let sanitized = MIME.sanitizeHeaderText(text)
    invariant(!sanitized.unicodeScalars.contains(where: { $0.value < 0x20 || $0 == "\u{7F}" }), "a control left by sanitizeHeaderText in \(show(sanitized))")

    let subject = MIME.unstructuredField(name: "Subject", value: text)
    checkFolded(subject, maxLine: 78)
    let decoded = decodeUnstructured(subject, name: "Subject")
    invariant(decoded == sanitized, "Subject \(show(subject)) decodes to \(show(decoded ?? "nil")), not \(show(sanitized))")

    // "name NUL address": a MailAddress made from separate fields, as the API makes them.
    let parts = text.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
    if parts.count == 2, let made = try? MailAddress(String(parts[1]), name: String(parts[0])) {
        checkAddress(made)
    }
    guard let address = try? MailAddress(parsing: text) else { return }
    checkAddress(address)
}

func checkAddress(_ address: MailAddress) {
    invariant((try? MailAddress.validate(address.address)) != nil, "an invalid address \(show(address.address))")
    let to = address.headerField("To")
    // Atoms of a display name and the address cannot be split, so 78 is not always
    // possible; RFC 5322 §2.1.1's 998 always is.
    checkFolded(to, maxLine: 998, utf8: address.needsSMTPUTF8)
    var unfolded = to
    unfolded.removeAll(where: { $0 == 0x0D || $0 == 0x0A })
    let value = String(decoding: unfolded.dropFirst(3), as: UTF8.self)
    let back = try? MailAddress(parsing: value)
    // Finding F3 (fixed): the angle-addr opens at the first `<` outside the display
    // name's quotes, so a quoted local part holding `<` reads back too.
    invariant(back?.address == address.address, "\(address) → To: \(show(to)) → \(String(describing: back))")
    // A plain ASCII name (no encoded-word look-alike, no word too long to fold once
    // quoted, with `"` and `\` escaped) comes back as it was sanitized.
    if let name = address.name {
        let sanitized = MIME.sanitizeHeaderText(name)
        func quotedLength(_ word: ArraySlice<UInt8>) -> Int {
            word.count + word.filter { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }.count + 2
        }
        if sanitized.utf8.allSatisfy({ (0x20...0x7E).contains($0) }), !sanitized.contains("=?"),
           sanitized.utf8.split(separator: 0x20).allSatisfy({ quotedLength($0) <= 76 }) {
            invariant(back?.name == sanitized, "name \(show(name)) → To: \(show(to)) → \(String(describing: back?.name))")
        }
    }
}

/// The value of an unstructured field as a reader decodes it: unfolded, and a run of
/// encoded-words (RFC 2047, UTF-8, Q or B) decoded and joined.
func decodeUnstructured(_ field: [UInt8], name: String) -> String? {
    var unfolded = field
    unfolded.removeAll(where: { $0 == 0x0D || $0 == 0x0A })
    let prefix = Array((name + ": ").utf8)
    guard unfolded.starts(with: prefix) else { return nil }
    let words = unfolded.dropFirst(prefix.count).split(separator: 0x20).map(Array.init)
    let encoded = words.map { $0.starts(with: Array("=?UTF-8?".utf8)) && $0.count >= 12 && $0.suffix(2).elementsEqual(Array("?=".utf8)) }
    guard encoded.contains(true) else {
        return String(decoding: Array(words.joined(separator: [0x20])), as: UTF8.self)
    }
    guard encoded.allSatisfy({ $0 }) else { return nil }
    var bytes: [UInt8] = []
    for word in words {
        let payload = Array(word[10..<(word.count - 2)])
        if word[8] == UInt8(ascii: "B") {
            bytes += MIMEEntity.decodeBase64(payload)
        } else {
            var i = 0
            while i < payload.count {
                let c = payload[i]
                if c == UInt8(ascii: "_") {
                    bytes.append(0x20)
                } else if c == UInt8(ascii: "="), i + 2 < payload.count,
                          let v = UInt8(String(decoding: payload[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                    bytes.append(v)
                    i += 2
                } else {
                    bytes.append(c)
                }
                i += 1
            }
        }
    }
    return String(validating: bytes, as: UTF8.self)
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
