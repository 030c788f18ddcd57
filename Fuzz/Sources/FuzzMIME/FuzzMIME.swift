/// Harness 4: inbound mail — MailFormat's `MIMEEntity.parse` and `InboundReport.parse`
/// (bounce and complaint intake reads whatever lands in the return-path mailbox).
///
/// Input: byte 0 picks `maxDepth` (or the default), byte 1 `maxParts` (or the default);
/// the rest is a raw message.
///
/// Invariants:
/// - Neither parser traps, and every accessor (`mediaType`, `parameter`, `decodedBody`,
///   `text`, `transferEncoding`) works on every entity of the tree.
/// - Limits hold: no entity deeper than `min(maxDepth, MIMEEntity.depthLimit)`, an entity
///   at that depth has no parts, and the tree has at most `maxParts` entities besides
///   the root.
/// - Bodies come from the input: every body is at most as long as the input, and, as long
///   as no ancestor's transfer encoding was undone, it is a contiguous run of the input.
/// - Header fields: names are non-empty runs of RFC 7230 token characters; values hold
///   no LF and no leading or trailing white space.
/// - Reports: statuses are `class.subject.detail` with class 2, 4 or 5; reply codes are
///   4xx/5xx; actions and feedback types are lower-cased single words; addresses are
///   trimmed and non-empty; unstructured recipients hold one `@` and are unique
///   (case-insensitively); human-readable texts hold no CRLF.
import FuzzSupport
import MailFormat

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let depthChoice = input.byte()
    let partsChoice = input.byte()
    let message = Array(input.rest)
    let maxDepth = depthChoice >= 0x80 ? 10 : Int(depthChoice % 80) - 4   // -4…75; default 10
    let maxParts = partsChoice >= 0x80 ? 1000 : Int(partsChoice % 64) - 2  // -2…61; default 1000

    let root = MIMEEntity.parse(message, maxDepth: maxDepth, maxParts: maxParts)
    let depthCap = min(max(0, maxDepth), MIMEEntity.depthLimit)
    var count = 0
    walk(root, depth: 0, depthCap: depthCap, raw: true, input: message, count: &count)
    invariant(count <= max(0, maxParts), "\(count) parts with maxParts \(maxParts)")

    checkReport(InboundReport.parse(message), message)
    return 0
}

func walk(_ e: MIMEEntity, depth: Int, depthCap: Int, raw: Bool, input: [UInt8], count: inout Int) {
    invariant(depth <= depthCap, "an entity at depth \(depth), cap \(depthCap)")
    if depth == depthCap { invariant(e.parts.isEmpty, "an entity at the depth cap \(depthCap) has \(e.parts.count) parts") }
    invariant(e.body.count <= input.count, "a body of \(e.body.count) octets from \(input.count)")
    if raw && e.body.count <= 4096 {
        invariant(contains(input, e.body), "a body that is not a run of the input: \(show(e.body, limit: 80))")
    }
    for field in e.headers {
        invariant(!field.name.isEmpty && field.name.utf8.allSatisfy(isTokenByte), "header name \(show(field.name))")
        invariant(!field.value.utf8.contains(0x0A), "LF in the value of \(field.name): \(show(field.value))")
        if let first = field.value.unicodeScalars.first, let last = field.value.unicodeScalars.last {
            invariant(!isSpace(first) && !isSpace(last), "untrimmed value of \(field.name): \(show(field.value))")
        }
    }
    // Accessors: must not trap.
    let type = e.mediaType
    invariant(type == type.lowercased() && type.contains("/"), "media type \(show(type))")
    _ = e.parameter("boundary")
    _ = e.parameter("charset")
    _ = e.parameter("report-type")
    _ = e.text
    let encoding = e.transferEncoding
    let decoded = e.decodedBody
    invariant(decoded.count <= e.body.count, "decoding grew \(e.body.count) octets to \(decoded.count)")
    // A child's bytes are the decoded body: still a run of the input only if nothing was decoded.
    let childRaw = raw && (encoding != "base64" && encoding != "quoted-printable")
    for part in e.parts {
        count += 1
        walk(part, depth: depth + 1, depthCap: depthCap, raw: childRaw, input: input, count: &count)
    }
}

func isTokenByte(_ b: UInt8) -> Bool {
    switch b {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
    }
}

func isSpace(_ s: Unicode.Scalar) -> Bool { s == " " || s == "\t" || s == "\r" || s == "\n" }

func isStatus(_ s: String) -> Bool {
    let parts = s.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, ["2", "4", "5"].contains(parts[0]) else { return false }
    return parts[1...].allSatisfy { !$0.isEmpty && $0.count <= 3 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }
}

func checkTrimmed(_ value: String?, _ what: String) {
    guard let value else { return }
    invariant(!value.isEmpty, "empty \(what)")
    if let first = value.unicodeScalars.first, let last = value.unicodeScalars.last {
        invariant(!isSpace(first) && !isSpace(last), "untrimmed \(what): \(show(value))")
    }
}

func checkWord(_ value: String?, _ what: String) {
    guard let value else { return }
    invariant(!value.isEmpty && value == value.lowercased(), "\(what) \(show(value))")
    invariant(!value.unicodeScalars.contains(where: isSpace), "\(what) with white space: \(show(value))")
}

/// Report texts have their line breaks normalized to LF, HTML character references
/// (`&#13;`) included (finding F2, fixed; its reproducers are in the corpus now).
func checkNoCR(_ text: String, _ what: String, _ message: [UInt8]) {
    invariant(!text.utf8.contains(0x0D), "CR in the \(what): \(show(text))")
}

func checkReport(_ report: InboundReport, _ message: [UInt8]) {
    switch report {
    case .deliveryStatus(let dsn):
        checkTrimmed(dsn.reportingMTA, "Reporting-MTA")
        checkNoCR(dsn.humanReadable, "human-readable part", message)
        for r in dsn.recipients {
            checkTrimmed(r.finalRecipient, "Final-Recipient")
            checkTrimmed(r.originalRecipient, "Original-Recipient")
            checkTrimmed(r.diagnosticCode, "Diagnostic-Code")
            checkWord(r.action, "Action")
            if let s = r.status { invariant(isStatus(s), "status \(show(s))") }
        }
    case .feedback(let arf):
        checkWord(arf.feedbackType, "Feedback-Type")
        checkTrimmed(arf.originalMailFrom, "Original-Mail-From")
        arf.originalRcptTo.forEach { checkTrimmed($0, "Original-Rcpt-To") }
        checkNoCR(arf.humanReadable, "human-readable part", message)
    case .unstructured(let bounce):
        if let s = bounce.status { invariant(isStatus(s), "status \(show(s))") }
        if let c = bounce.replyCode { invariant((400...599).contains(c), "reply code \(c)") }
        var seen: Set<String> = []
        for address in bounce.recipients {
            invariant(address.utf8.filter { $0 == UInt8(ascii: "@") }.count == 1, "recipient \(show(address))")
            invariant(seen.insert(address.lowercased()).inserted, "recipient \(show(address)) twice")
        }
        checkNoCR(bounce.text, "bounce text", message)
    }
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
