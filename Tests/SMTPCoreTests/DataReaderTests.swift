import SMTPCore
import Testing

/// What reading one DATA section produced.
private struct ReadResult: Equatable, CustomStringConvertible {
    var message: [UInt8]
    var violation: DataReader.Violation?
    var finished: Bool
    /// Bytes of the input that belong to the DATA section.
    var consumed: Int
    var wireOctets: Int
    var sawEightBit: Bool

    var description: String {
        "finished=\(finished) consumed=\(consumed) violation=\(String(describing: violation)) message=\(String(decoding: message, as: UTF8.self).debugDescription)"
    }
}

/// Feeds the chunks in order, as the session does: stops at the end of data.
private func read(_ chunks: [ArraySlice<UInt8>], maxMessageSize: Int = 1 << 20, maxLineLength: Int = 1000) -> ReadResult {
    var reader = DataReader(maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
    var consumed = 0
    var finished = false
    for chunk in chunks {
        let (n, done) = reader.consume(chunk)
        #expect(n <= chunk.count)
        consumed += n
        if done {
            finished = true
            break
        }
        #expect(n == chunk.count, "an unfinished read must consume its whole input")
    }
    return ReadResult(message: reader.message, violation: reader.violation, finished: finished,
                      consumed: consumed, wireOctets: reader.wireOctets, sawEightBit: reader.sawEightBit)
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Reads the input whole, byte by byte and split in two at every boundary; every way
/// must give the same result, which is returned.
private func readEveryWay(_ input: [UInt8], maxMessageSize: Int = 1 << 20, maxLineLength: Int = 1000,
                          sourceLocation: SourceLocation = #_sourceLocation) -> ReadResult {
    let whole = read([input[...]], maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
    let byByte = read(input.indices.map { input[$0...$0] }, maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
    #expect(byByte == whole, "byte by byte", sourceLocation: sourceLocation)
    for k in 0...input.count {
        let split = read([input[..<k], input[k...]], maxMessageSize: maxMessageSize, maxLineLength: maxLineLength)
        if split != whole {
            Issue.record("split at \(k): \(split) != \(whole)", sourceLocation: sourceLocation)
            break
        }
    }
    return whole
}

@Suite("DataReader")
struct DataReaderTests {
    @Test func simpleMessage() {
        let input = bytes("Subject: hi\r\n\r\nHello\r\n.\r\n")
        let r = readEveryWay(input)
        #expect(r.finished)
        #expect(r.consumed == input.count)
        #expect(r.wireOctets == input.count)
        #expect(r.message == bytes("Subject: hi\r\n\r\nHello\r\n"))
        #expect(r.violation == nil)
        #expect(!r.sawEightBit)
    }

    @Test func emptyMessage() {
        let r = readEveryWay(bytes(".\r\n"))
        #expect(r.finished)
        #expect(r.message.isEmpty)
        #expect(r.violation == nil)
    }

    @Test func undoesDotStuffing() {
        let input = bytes("..leading dot\r\n...two dots\r\na.b in the middle\r\n. space\r\n..\r\n.\r\n")
        let r = readEveryWay(input)
        #expect(r.finished)
        #expect(r.message == bytes(".leading dot\r\n..two dots\r\na.b in the middle\r\n space\r\n.\r\n"))
        #expect(r.violation == nil)
    }

    @Test func bytesAfterTheEndAreNotConsumed() {
        let body = bytes("line\r\n.\r\n")
        let r = readEveryWay(body + bytes("QUIT\r\n"))
        #expect(r.finished)
        #expect(r.consumed == body.count)
        #expect(r.wireOctets == body.count)
        #expect(r.message == bytes("line\r\n"))
    }

    @Test func unfinishedDataIsAllConsumed() {
        let input = bytes("line one\r\nline two\r\n.")
        let r = readEveryWay(input)
        #expect(!r.finished)
        #expect(r.consumed == input.count)
    }

    /// SMTP smuggling (CVE-2023-51764): none of these end DATA, and each is a violation.
    @Test(arguments: ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r.\n", "\n.\r", "\r.\r\n", "\r\n.\rX"])
    func smugglingSequencesDoNotEndData(sequence: String) {
        let smuggled = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@target.example>\r\nDATA\r\n"
        let input = bytes("Subject: hi\r\n\r\nbody" + sequence + smuggled + "more\r\n.\r\n")
        let r = readEveryWay(input)
        #expect(r.finished)
        #expect(r.consumed == input.count, "the data ended early at \(r.consumed) of \(input.count)")
        #expect(r.violation == .bareLineEnding)
    }

    @Test(arguments: ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r"])
    func smugglingSequenceAtTheVeryStartDoesNotEndData(sequence: String) {
        let input = bytes(sequence + "RSET\r\n.\r\n")
        let r = readEveryWay(input)
        #expect(r.finished)
        #expect(r.consumed == input.count)
        #expect(r.violation == .bareLineEnding)
    }

    @Test(arguments: ["a\nb\r\n", "a\rb\r\n", "a\r\r\n", "\nx\r\n", "\r\r\n", "ab\n\r\n", ".\n\r\n", ".\r.\r\n"])
    func bareLineEndingsAreViolations(body: String) {
        let input = bytes(body + ".\r\n")
        let r = readEveryWay(input)
        #expect(r.violation == .bareLineEnding)
        #expect(r.finished)
        #expect(r.consumed == input.count)
    }

    @Test func nulIsAViolation() {
        let r = readEveryWay(bytes("a\u{0}b\r\n.\r\n"))
        #expect(r.finished)
        #expect(r.violation == .nulCharacter)
    }

    @Test func firstViolationWins() {
        #expect(readEveryWay(bytes("a\u{0}\r\nb\nc\r\n.\r\n")).violation == .nulCharacter)
        #expect(readEveryWay(bytes("b\nc\r\na\u{0}\r\n.\r\n")).violation == .bareLineEnding)
    }

    @Test(arguments: [0, 1, 500, 997, 998])
    func linesUpTo998OctetsAreAccepted(length: Int) {
        let text = String(repeating: "x", count: length)
        let r = readEveryWay(bytes("a\r\n" + text + "\r\nb\r\n.\r\n"))
        #expect(r.violation == nil)
        #expect(r.message == bytes("a\r\n" + text + "\r\nb\r\n"))
    }

    @Test(arguments: [999, 1000, 1001, 5000])
    func linesOf999OctetsOrMoreAreRefused(length: Int) {
        let text = String(repeating: "x", count: length)
        let input = bytes("a\r\n" + text + "\r\nb\r\n.\r\n")
        let r = readEveryWay(input)
        #expect(r.violation == .lineTooLong)
        #expect(r.finished)
        #expect(r.consumed == input.count)
    }

    @Test func lineLimitCountsTheStuffedDot() {
        // On the wire "." + 997 octets is 998: fine. "." + 998 is 999: too long.
        let ok = readEveryWay(bytes("." + String(repeating: "x", count: 997) + "\r\n.\r\n"))
        #expect(ok.violation == nil)
        #expect(ok.message.count == 997 + 2)
        let long = readEveryWay(bytes("." + String(repeating: "x", count: 998) + "\r\n.\r\n"))
        #expect(long.violation == .lineTooLong)
    }

    @Test func smallerLineLimit() {
        #expect(readEveryWay(bytes("12345678\r\n.\r\n"), maxLineLength: 10).violation == nil)
        #expect(readEveryWay(bytes("123456789\r\n.\r\n"), maxLineLength: 10).violation == .lineTooLong)
    }

    @Test func sizeLimit() {
        // The limit counts the unstuffed message, CRLFs included.
        let exact = readEveryWay(bytes("12345678\r\n.\r\n"), maxMessageSize: 10)
        #expect(exact.violation == nil)
        #expect(exact.message == bytes("12345678\r\n"))

        let over = bytes("123456789\r\nmore and more\r\n.\r\nQUIT\r\n")
        let r = readEveryWay(over, maxMessageSize: 10)
        #expect(r.violation == .tooLarge)
        #expect(r.finished)
        #expect(r.consumed == over.count - 6)
        #expect(r.message.count <= 10)
    }

    @Test func stuffedDotsDoNotCountTowardTheSize() {
        let r = readEveryWay(bytes("..12345\r\n..\r\n.\r\n"), maxMessageSize: 11)
        #expect(r.violation == nil)
        #expect(r.message == bytes(".12345\r\n.\r\n"))
    }

    @Test func eightBitIsNoticed() {
        let r = readEveryWay(bytes("Subject: café\r\n\r\n.\r\n"))
        #expect(r.sawEightBit)
        #expect(r.violation == nil)
    }

    @Test(arguments: [
        DataReader.Violation.bareLineEnding, .lineTooLong, .tooLarge, .nulCharacter,
    ])
    func repliesForViolations(violation: DataReader.Violation) {
        let reply = DataReader.reply(for: violation)
        switch violation {
        case .bareLineEnding, .nulCharacter:
            #expect(reply.code == 550)
            #expect(reply.enhanced == EnhancedStatusCode(5, 6, 0))
        case .lineTooLong:
            #expect(reply.code == 500)
            #expect(reply.enhanced == EnhancedStatusCode(5, 5, 2))
        case .tooLarge:
            #expect(reply.code == 552)
            #expect(reply.enhanced == EnhancedStatusCode(5, 3, 4))
        }
    }

    // MARK: - dotStuffed (the client side) round-trips through the reader

    @Test(arguments: [
        ("a", "a\r\n.\r\n"),
        ("", ".\r\n"),
        ("a\r\n", "a\r\n.\r\n"),
        (".x\r\n", "..x\r\n.\r\n"),
        ("a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"),
        ("a.b\r\n..c\r\n", "a.b\r\n...c\r\n.\r\n"),
    ])
    func dotStuffing(message: String, wire: String) {
        #expect(dotStuffed(bytes(message)) == bytes(wire))
    }

    @Test(arguments: ["Subject: x\r\n\r\n.\r\n..\r\n. \r\nend\r\n", ".\r\n", "\r\n", "a.\r\n.a\r\n"])
    func dotStuffedRoundTrips(message: String) {
        let r = readEveryWay(dotStuffed(bytes(message)))
        #expect(r.finished)
        #expect(r.violation == nil)
        #expect(r.message == bytes(message))
    }
}
