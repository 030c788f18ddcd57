/// Harness 3: server replies — SMTPClient's `SMTPReplyParser` (ReplyParser.swift is
/// compiled into this module: the SMTPClient module itself needs NIO) and SMTPCore's
/// `SMTPReply` / `EnhancedStatusCode`.
///
/// Input: bytes 0-1 pick a split point; the rest is what a server sends. The same bytes
/// also make one `SMTPReply` to encode (code from byte 2, text lines split on LF).
///
/// Invariants:
/// - Chunking does not matter: byte by byte, in one feed, or split at a fuzzer-chosen
///   point, the parser yields the same replies (those completed before an error) and the
///   same error.
/// - Every reply has a code in 200…599, at least one line, an enhanced code (if any) of
///   the same class as the reply code, and lines of at most 4096 octets without LF.
/// - Round trip: a parsed reply's `encoded` form parses back to the same code, enhanced
///   code and lines (texts compared as `encoded` writes them: CR/LF made spaces, and the
///   spaces after a repeated enhanced code dropped as the parser drops them).
/// - Any reply Herald builds encodes to exactly one CRLF per line (text can never split
///   a reply) and parses back to one reply with the same code and number of lines.
import FuzzSupport
import SMTPCore

struct Fed: Equatable {
    var replies: [SMTPReply]
    var error: SMTPReplyParser.ParseError?
}

func feed(_ stream: [UInt8], pieces: [Range<Int>]) -> Fed {
    var parser = SMTPReplyParser()
    var replies: [SMTPReply] = []
    for piece in pieces {
        do {
            replies += try parser.feed(stream[piece])
        } catch {
            return Fed(replies: replies, error: error)
        }
    }
    return Fed(replies: replies, error: nil)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let split = input.u16()
    let codeChoice = input.u16()
    let stream = Array(input.rest)
    let n = stream.count
    let cut = n == 0 ? 0 : split % (n + 1)

    let bytewise = feed(stream, pieces: (0..<n).map { $0..<($0 + 1) })
    let whole = feed(stream, pieces: [0..<n])
    let halves = feed(stream, pieces: [0..<cut, cut..<n])
    invariant(whole.error == bytewise.error, "one feed: \(whole), byte by byte: \(bytewise)")
    if whole.error == nil {
        invariant(whole.replies == bytewise.replies, "one feed: \(whole.replies), byte by byte: \(bytewise.replies)")
    }
    invariant(halves.error == bytewise.error, "split at \(cut): \(halves), byte by byte: \(bytewise)")
    invariant(bytewise.replies.starts(with: halves.replies), "split at \(cut): \(halves.replies), byte by byte: \(bytewise.replies)")
    if halves.error == nil {
        invariant(halves.replies == bytewise.replies, "split at \(cut): \(halves.replies), byte by byte: \(bytewise.replies)")
    }

    for reply in bytewise.replies {
        checkShape(reply)
        checkRoundTrip(reply)
    }

    // A reply Herald builds from arbitrary text.
    let code = 200 + codeChoice % 400
    let enhanced = codeChoice & 0x8000 == 0 && code / 100 != 3
        ? EnhancedStatusCode(code / 100, Int(codeChoice >> 4) % 1000, Int(codeChoice) % 1000) : nil
    let lines = stream.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    let built = SMTPReply(code, enhanced, lines)
    let wire = Array(built.encoded.utf8)
    let wireLines = crlfLines(wire[...])
    invariant(wireLines.count == built.lines.count, "\(built.lines.count) lines encode to \(wireLines.count): \(show(wire))")
    for l in wireLines {
        invariant(l.suffix(2).elementsEqual([0x0D, 0x0A]), "encoded line without CRLF: \(show(l))")
        invariant(!l.dropLast(2).contains(0x0D) && !l.dropLast(2).contains(0x0A), "bare CR/LF in encoded line \(show(l))")
    }
    if wireLines.allSatisfy({ $0.count - 2 <= SMTPReplyParser.maxLineLength }) {
        var parser = SMTPReplyParser()
        let parsed = try? parser.feed(wire)
        invariant(parsed?.count == 1 && parsed?[0].code == code && parsed?[0].lines.count == built.lines.count,
                  "\(show(wire)) parses as \(String(describing: parsed))")
    }
    return 0
}

func checkShape(_ reply: SMTPReply) {
    invariant((200...599).contains(reply.code), "reply code \(reply.code)")
    invariant(!reply.lines.isEmpty, "a reply without lines")
    if let e = reply.enhanced {
        invariant(e.codeClass == reply.code / 100, "enhanced \(e) with code \(reply.code)")
        invariant((0...999).contains(e.subject) && (0...999).contains(e.detail), "enhanced \(e)")
    }
    for line in reply.lines {
        invariant(line.utf8.count <= SMTPReplyParser.maxLineLength * 3, "a line of \(line.utf8.count) octets")
        invariant(!line.utf8.contains(0x0A), "LF in reply text \(show(line))")
    }
}

func checkRoundTrip(_ reply: SMTPReply) {
    // A CR inside a line is made a space by `encoded`, which can change how the first
    // word reads; such replies are only checked for their shape.
    guard !reply.lines.contains(where: { $0.utf8.contains(0x0D) }) else { return }
    let wire = Array(reply.encoded.utf8)
    let lines = crlfLines(wire[...])
    guard lines.allSatisfy({ $0.count - 2 <= SMTPReplyParser.maxLineLength }) else { return }
    var parser = SMTPReplyParser()
    let again: [SMTPReply]
    do {
        again = try parser.feed(wire)
    } catch {
        invariant(false, "\(reply) encodes to \(show(wire)), which does not parse: \(error)")
        return
    }
    invariant(again.count == 1, "\(reply) encodes to \(show(wire)), which parses as \(again)")
    let r = again[0]
    invariant(r.code == reply.code && r.enhanced == reply.enhanced, "\(reply) came back as \(r)")
    // With an enhanced code, the spaces after it are dropped (compared by scalars: the
    // parser strips Characters, and a space followed by a combining mark is one Character,
    // so " \u{30C}x" keeps its space; harmless, noted in docs/reliability.md).
    func normalized(_ line: String) -> String {
        reply.enhanced == nil ? line : String(String.UnicodeScalarView(line.unicodeScalars.drop(while: { $0 == " " })))
    }
    invariant(r.lines.map(normalized) == reply.lines.map(normalized), "\(reply.lines) came back as \(r.lines) (from \(show(wire)))")
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
