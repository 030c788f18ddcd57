/// Harness 1: the command channel — SMTPCore's `SMTPInputBuffer` (strict CRLF framing)
/// and `SMTPCommandParser`, as `SMTPSession` uses them.
///
/// Input: byte 0 picks the line limit, byte 1 the chunk size the bytes arrive in; the
/// rest is the client's byte stream.
///
/// Invariants:
/// - Framing matches a reference model written from RFC 5321 §2.3.8/§4.5.3.1.4 over the
///   whole stream, whatever the chunking: a line is returned only when it ends in CRLF,
///   holds no CR or LF, and is at most `maxLength` octets with its CRLF; a line ended by
///   a bare LF is one rejection that runs on to the next CRLF; any other refused line
///   (too long, bare CR) is one rejection (`tooLong` or `bareLineEnding`).
/// - A parsed MAIL/RCPT re-encodes (`MAIL FROM:<local@domain> KEY=VALUE…`) and re-parses
///   to the same command; its mailbox re-parses through `Mailbox(parsing:)`, stays within
///   the RFC 5321 §4.5.3.1 limits and never holds CR, LF or NUL.
/// - HELO/EHLO names are single words without controls; parse failures earn a 5xx reply.
/// - Every reply the parser produces encodes to exactly one CRLF per line (user text in an
///   error reply can never split it).
/// - xtext: a value that decodes re-encodes and decodes to the same text.
/// - Commands and DATA together (framing handing the buffered bytes to a `DataReader`
///   after DATA, and resuming after CRLF.CRLF, as `SMTPSession` does): the same lines,
///   refusals and messages whatever the chunking.
import FuzzSupport
import MailFormat
import SMTPCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let maxLength = [512, 1000, 8, 40, 80, 513, 2048, 3][Int(input.byte() % 8)]
    let chunk = input.int(in: 1...64)
    let stream = Array(input.rest)

    // Framing, chunk by chunk, as the NIO handler hands bytes over.
    var buffer = SMTPInputBuffer()
    var framed: [Framed] = []
    var offset = 0
    while offset < stream.count {
        let end = min(offset + chunk, stream.count)
        buffer.append(stream[offset..<end])
        offset = end
        drain(&buffer, maxLength: maxLength, into: &framed)
    }
    let expected = referenceFraming(stream, maxLength: maxLength)
    invariant(framed == expected, "framing (chunk \(chunk), limit \(maxLength)) gave \(framed), the reference \(expected)")

    for case .line(let line) in framed {
        invariant(line.count + 2 <= maxLength, "a line of \(line.count) octets passed the \(maxLength) limit")
        invariant(!line.contains(0x0D) && !line.contains(0x0A), "a framed line holds CR or LF: \(show(line))")
        checkCommand(line)
    }
    // The parser alone, on the raw stream as one line (it must never trap, framed or not).
    checkCommand(stream)

    // The command channel and DATA together, as SMTPSession drives them: after a DATA
    // command the buffered bytes go to a DataReader, and framing resumes after CRLF.CRLF.
    let chunked = session(stream, chunk: chunk, maxLength: maxLength)
    let whole = session(stream, chunk: max(1, stream.count), maxLength: maxLength)
    invariant(chunked == whole, "session in chunks of \(chunk): \(chunked); in one: \(whole)")
    return 0
}

enum SessionEvent: Equatable, CustomStringConvertible {
    case framed(Framed)
    case message([UInt8], DataReader.Violation?)

    var description: String {
        switch self {
        case .framed(let f): return f.description
        case .message(let m, let v): return "message(\(show(m, limit: 60)), \(String(describing: v)))"
        }
    }
}

func session(_ stream: [UInt8], chunk: Int, maxLength: Int) -> [SessionEvent] {
    var buffer = SMTPInputBuffer()
    var reader: DataReader?
    var events: [SessionEvent] = []
    var offset = 0
    func pump() {
        while true {
            if var r = reader {
                let (n, done) = r.consume(buffer.readable)
                invariant(n <= buffer.count, "DataReader consumed \(n) of \(buffer.count)")
                buffer.consume(n)
                guard done else {
                    reader = r
                    return
                }
                events.append(.message(r.message, r.violation))
                reader = nil
                continue
            }
            switch buffer.nextLine(maxLength: maxLength) {
            case .needMoreData:
                return
            case .line(let l):
                events.append(.framed(.line(l)))
                if case .success(.data) = SMTPCommandParser.parse(l) {
                    reader = DataReader(maxMessageSize: 1 << 16)
                }
            case .tooLong, .bareLineEnding:
                events.append(.framed(.rejected))
            }
        }
    }
    while offset < stream.count {
        let end = min(offset + chunk, stream.count)
        buffer.append(stream[offset..<end])
        offset = end
        pump()
    }
    return events
}

enum Framed: Equatable, CustomStringConvertible {
    case line([UInt8])
    case rejected

    var description: String {
        switch self {
        case .line(let l): return "line(\(show(l, limit: 60)))"
        case .rejected: return "rejected"
        }
    }
}

func drain(_ buffer: inout SMTPInputBuffer, maxLength: Int, into out: inout [Framed]) {
    while true {
        switch buffer.nextLine(maxLength: maxLength) {
        case .needMoreData: return
        case .line(let l): out.append(.line(l))
        case .tooLong, .bareLineEnding: out.append(.rejected)
        }
    }
}

/// What strict CRLF framing must produce for the whole stream: only CRLF ends a line; a
/// line ended by a bare LF is refused together with everything up to the next CRLF (the
/// session never re-synchronises on a bare LF, commit b1a49bf); a line with a bare CR or
/// longer than the limit is refused.
func referenceFraming(_ stream: [UInt8], maxLength: Int) -> [Framed] {
    var out: [Framed] = []
    var start = 0
    var skipping = false
    for (i, b) in stream.enumerated() where b == 0x0A {
        let segment = stream[start..<i]
        start = i + 1
        let endsWithCRLF = segment.last == 0x0D
        if skipping {
            if endsWithCRLF { skipping = false }
            continue
        }
        guard endsWithCRLF else {
            out.append(.rejected)
            skipping = true
            continue
        }
        let content = segment.dropLast()
        if content.count + 2 > maxLength || content.contains(0x0D) {
            out.append(.rejected)
        } else {
            out.append(.line(Array(content)))
        }
    }
    return out
}

func checkCommand(_ line: [UInt8]) {
    switch SMTPCommandParser.parse(line) {
    case .failure(let error):
        invariant((500...599).contains(error.reply.code), "a parse failure earned \(error.reply)")
        checkEncoded(error.reply)
    case .success(let command):
        switch command {
        case .mail(let path, let params):
            if case .mailbox(let m) = path { checkMailbox(m) }
            for v in params.compactMap(\.value) { checkXtext(v) }
            let again = "MAIL FROM:<\(path)>" + encode(params)
            let reparsed = SMTPCommandParser.parse(Array(again.utf8))
            invariant(reparsed == .success(command), "\(show(line)) parsed as \(command); re-encoded as \(show(again)) it parses as \(reparsed)")
        case .rcpt(let path, let params):
            if case .mailbox(let m) = path { checkMailbox(m) }
            for v in params.compactMap(\.value) { checkXtext(v) }
            let again = "RCPT TO:<\(path)>" + encode(params)
            let reparsed = SMTPCommandParser.parse(Array(again.utf8))
            invariant(reparsed == .success(command), "\(show(line)) parsed as \(command); re-encoded as \(show(again)) it parses as \(reparsed)")
        case .helo(let name), .ehlo(let name):
            invariant(!name.isEmpty && !name.contains(" "), "HELO/EHLO name \(show(name))")
            invariant(name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }, "control in HELO/EHLO name \(show(name))")
        case .auth(let mechanism, _):
            invariant(!mechanism.isEmpty && !mechanism.contains(" "), "AUTH mechanism \(show(mechanism))")
        default:
            break
        }
    }
}

func encode(_ params: [ESMTPParameter]) -> String {
    params.map { p in " " + p.keyword + (p.value.map { "=" + $0 } ?? "") }.joined()
}

func checkMailbox(_ m: Mailbox) {
    let text = m.description
    invariant(m.localPart.utf8.count >= 1 && m.localPart.utf8.count <= 64, "local part \(show(m.localPart))")
    invariant(m.domain.utf8.count >= 1 && m.domain.utf8.count <= 255, "domain \(show(m.domain))")
    invariant(text.utf8.count <= 256, "mailbox longer than a path: \(show(text))")
    invariant(!text.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }), "CR, LF or NUL in mailbox \(show(text))")
    invariant(Mailbox(parsing: text) == m, "mailbox \(show(text)) does not re-parse to itself (\(String(describing: Mailbox(parsing: text))))")
    invariant(m.needsSMTPUTF8 == text.utf8.contains(where: { $0 >= 0x80 }), "needsSMTPUTF8 wrong for \(show(text))")
}

/// Every reply line ends in CRLF and holds no other CR or LF.
func checkEncoded(_ reply: SMTPReply) {
    let wire = Array(reply.encoded.utf8)
    let lines = crlfLines(wire[...])
    invariant(lines.count == reply.lines.count, "reply \(reply) encodes to \(lines.count) lines: \(show(wire))")
    for l in lines {
        invariant(l.count >= 6 && l.suffix(2).elementsEqual([0x0D, 0x0A]), "reply line \(show(l))")
        invariant(!l.dropLast(2).contains(0x0D) && !l.dropLast(2).contains(0x0A), "bare CR/LF in reply line \(show(l))")
    }
}

/// RFC 3461 §4: xtext encoding, the inverse of `decodeXtext`.
func encodeXtext(_ text: String) -> String {
    let hex = Array("0123456789ABCDEF")
    var out = ""
    for b in text.utf8 {
        if b >= 33, b <= 126, b != UInt8(ascii: "+"), b != UInt8(ascii: "=") {
            out.unicodeScalars.append(Unicode.Scalar(b))
        } else {
            out += "+" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 0xF)])
        }
    }
    return out
}

func checkXtext(_ value: String) {
    guard let decoded = decodeXtext(value) else { return }
    let again = encodeXtext(decoded)
    invariant(decodeXtext(again) == decoded, "xtext \(show(value)) decodes to \(show(decoded)); re-encoded \(show(again)) decodes to \(String(describing: decodeXtext(again)))")
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
