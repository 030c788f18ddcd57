/// Harness 2: the DATA section — SMTPCore's `DataReader` (dot-unstuffing, end of data,
/// smuggling checks) and `dotStuffed`, its inverse on the client side.
///
/// Input: bytes 0-1 pick the message size limit, byte 2 the line limit, bytes 3-4 the
/// split point; the rest is what the client sends after `354`.
///
/// Invariants:
/// - Chunking does not matter: the whole stream in one `consume`, the stream split at a
///   fuzzer-chosen point, and the stream byte by byte give the same consumed count, end,
///   message, violation, `wireOctets` and `sawEightBit`.
/// - Only CRLF.CRLF ends DATA (the start of DATA counts as a line start): the reader stops
///   exactly after the first `CRLF . CRLF` and nowhere else, so `LF.LF`, `CR.CR`,
///   `LF.CRLF`… never end it (SMTP smuggling, CVE-2023-51764).
/// - The message is the consumed bytes with the terminating `.CRLF` removed (or, not
///   finished, a CR still waiting for its LF) and one leading dot removed from every
///   CRLF-delimited line (RFC 5321 §4.5.2), cut at the size limit; `tooLarge` is noted
///   exactly when the message was cut.
/// - No violation at all means: no NUL, no bare CR or LF, no line over the limit.
/// - Round trip: `dotStuffed(message)` read by a fresh reader ends exactly at its end and
///   gives the message back, with no violation when the original had none.
import FuzzSupport
import SMTPCore

struct Outcome: Equatable {
    var consumed: Int
    var finished: Bool
    var message: [UInt8]
    var violation: DataReader.Violation?
    var wireOctets: Int
    var sawEightBit: Bool
}

func read(_ stream: [UInt8], pieces: [Range<Int>], maxMessageSize: Int, maxLineLength: Int) -> Outcome {
    var reader = DataReader(maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
    var consumed = 0
    var finished = false
    for piece in pieces where !finished {
        let (n, done) = reader.consume(stream[piece])
        invariant(n >= 0 && n <= piece.count, "consume returned \(n) of \(piece.count) bytes")
        invariant(done || n == piece.count, "consume stopped early (\(n) of \(piece.count)) without finishing")
        consumed += n
        finished = done
    }
    return Outcome(consumed: consumed, finished: finished, message: reader.message, violation: reader.violation,
                   wireOctets: reader.wireOctets, sawEightBit: reader.sawEightBit)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let maxMessageSize = input.bool() ? 1 << 20 : input.int(in: 0...512)
    let maxLineLength = [1000, 3, 8, 40, 78, 100, 2, 4][Int(input.byte() % 8)]
    let split = input.u16()
    let stream = Array(input.rest)
    let n = stream.count
    let cut = n == 0 ? 0 : split % (n + 1)

    let whole = read(stream, pieces: [0..<n], maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
    let halves = read(stream, pieces: [0..<cut, cut..<n], maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
    invariant(whole == halves, "split at \(cut): \(halves) vs one chunk: \(whole)")
    if n <= 4096 {
        let bytewise = read(stream, pieces: (0..<n).map { $0..<($0 + 1) }, maxMessageSize: maxMessageSize,
                            maxLineLength: maxLineLength)
        invariant(whole == bytewise, "byte by byte: \(bytewise) vs one chunk: \(whole)")
    }

    // The end of data: the first CRLF "." CRLF, the start counting as after a CRLF.
    let terminator = findTerminator(stream)
    invariant(whole.finished == (terminator != nil), "finished \(whole.finished), but the first CRLF.CRLF is at \(String(describing: terminator)) in \(show(stream))")
    invariant(whole.consumed == (terminator ?? n), "consumed \(whole.consumed), the end of data is at \(terminator ?? n) in \(show(stream))")
    invariant(whole.wireOctets == whole.consumed, "wireOctets \(whole.wireOctets) but \(whole.consumed) consumed")
    let wire = stream[0..<whole.consumed]
    invariant(whole.sawEightBit == wire.contains(where: { $0 >= 0x80 }), "sawEightBit \(whole.sawEightBit) for \(show(wire))")

    // The message: unstuffed lines, the final ".\r\n" removed. Unfinished, a CR at the
    // very end is not message content yet: it may be the start of a CRLF.
    var body = whole.finished ? wire.dropLast(3) : wire
    if !whole.finished, body.last == 0x0D { body = body.dropLast() }
    var expected: [UInt8] = []
    for line in crlfLines(body) {
        expected += line.first == UInt8(ascii: ".") ? line.dropFirst() : line
    }
    invariant(whole.message == Array(expected.prefix(maxMessageSize)), "message \(show(whole.message)), expected \(show(expected.prefix(maxMessageSize))) (limit \(maxMessageSize))")
    if expected.count > maxMessageSize {
        invariant(whole.violation != nil, "a message of \(expected.count) octets cut at \(maxMessageSize) with no violation")
    }
    if whole.violation == .tooLarge {
        invariant(expected.count > maxMessageSize, "tooLarge for \(expected.count) octets (limit \(maxMessageSize))")
    }

    // No violation: no NUL, no bare CR or LF, no long line (each as the reader sees the
    // wire: the stuffing dot counts; a CR still waiting for its LF is not yet bare).
    if whole.violation == nil {
        invariant(!wire.contains(0), "NUL without a violation in \(show(wire))")
        for var line in crlfLines(wire) {
            let complete = line.count >= 2 && line.suffix(2).elementsEqual([0x0D, 0x0A])
            if complete { line = line.dropLast(2) } else if line.last == 0x0D { line = line.dropLast() }
            // "." is the terminator, or (unfinished) a dot whose CR waits for its LF.
            if line.elementsEqual([UInt8(ascii: ".")]) { continue }
            invariant(!line.contains(0x0D) && !line.contains(0x0A), "bare CR/LF without a violation in line \(show(line))")
            invariant(line.count + 2 <= maxLineLength, "a line of \(line.count) octets (limit \(maxLineLength)) without a violation")
        }
    } else if whole.violation == .nulCharacter {
        invariant(wire.contains(0), "nulCharacter without a NUL")
    }

    // Round trip through the client's dot-stuffing.
    if whole.finished, whole.message.count == expected.count {
        let stuffed = dotStuffed(whole.message)
        let again = read(stuffed, pieces: [0..<stuffed.count], maxMessageSize: 1 << 22, maxLineLength: 1 << 20)
        invariant(again.finished && again.consumed == stuffed.count, "dotStuffed(\(show(whole.message))) = \(show(stuffed)) ends at \(again.consumed), finished \(again.finished)")
        invariant(again.message == whole.message, "dotStuffed round trip: \(show(whole.message)) came back as \(show(again.message))")
        if whole.violation == nil {
            invariant(again.violation == nil, "dotStuffed(\(show(whole.message))) has violation \(String(describing: again.violation))")
        }
    }
    return 0
}

/// The index just after the first CRLF "." CRLF (the stream's start counting as a line
/// start), or nil.
func findTerminator(_ s: [UInt8]) -> Int? {
    let pattern: [UInt8] = [0x0D, 0x0A, UInt8(ascii: "."), 0x0D, 0x0A]
    let padded = [0x0D, 0x0A] + s
    guard padded.count >= pattern.count else { return nil }
    for i in 0...(padded.count - pattern.count) where padded[i] == 0x0D {
        if padded[i..<(i + 5)].elementsEqual(pattern) { return i + 5 - 2 }
    }
    return nil
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
