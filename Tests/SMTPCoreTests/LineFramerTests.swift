import SMTPCore
import Testing

/// Feeds `chunks` one after the other and drains every framed result after each one.
/// `.needMoreData` is left out: only what the framer produced is listed.
private func frame(_ chunks: [ArraySlice<UInt8>], maxLength: Int = 512) -> [SMTPInputBuffer.LineResult] {
    var buffer = SMTPInputBuffer()
    var out: [SMTPInputBuffer.LineResult] = []
    for chunk in chunks {
        buffer.append(chunk)
        while true {
            let result = buffer.nextLine(maxLength: maxLength)
            if result == .needMoreData { break }
            out.append(result)
        }
    }
    return out
}

private func line(_ s: String) -> SMTPInputBuffer.LineResult { .line(Array(s.utf8)) }

/// The input whole, byte by byte, in every two-chunk split, and in three-byte chunks.
private func chunkings(_ input: [UInt8]) -> [[ArraySlice<UInt8>]] {
    var all: [[ArraySlice<UInt8>]] = [[input[...]], input.indices.map { input[$0...$0] }]
    for k in 0...input.count {
        all.append([input[..<k], input[k...]])
    }
    all.append(stride(from: 0, to: input.count, by: 3).map { input[$0..<min($0 + 3, input.count)] })
    return all
}

@Suite("SMTPInputBuffer line framing")
struct LineFramerTests {
    static let cases: [(String, [String], [SMTPInputBuffer.LineResult])] = [
        ("two lines", ["EHLO a.example\r\nNOOP\r\n"], [line("EHLO a.example"), line("NOOP")]),
        ("empty line", ["\r\n"], [line("")]),
        ("incomplete line is held", ["NOOP"], []),
        ("CR without LF yet is held", ["NOOP\r"], []),
        ("a bare LF does not end a line: the refused line runs to the CRLF", ["NOOP\nRSET\r\nQUIT\r\n"],
         [.bareLineEnding, line("QUIT")]),
        ("lone LF", ["\n"], [.bareLineEnding]),
        ("two bare LFs in one refused line are one report", ["A\nB\nC\r\nQUIT\r\n"], [.bareLineEnding, line("QUIT")]),
        ("a bare LF, then nothing: the rest waits for a CRLF", ["NOOP\nRSET"], [.bareLineEnding]),
        ("bare CR inside a line", ["NO\rOP\r\nRSET\r\n"], [.bareLineEnding, line("RSET")]),
        ("CR CR LF", ["NOOP\r\r\nRSET\r\n"], [.bareLineEnding, line("RSET")]),
        ("CR LF LF", ["NOOP\r\n\nRSET\r\nQUIT\r\n"], [line("NOOP"), .bareLineEnding, line("QUIT")]),
        ("smuggled LF inside MAIL", ["MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\nQUIT\r\n"], [.bareLineEnding, line("QUIT")]),
    ]

    @Test(arguments: cases)
    func framesLines(name: String, input: [String], expected: [SMTPInputBuffer.LineResult]) {
        let bytes = Array(input.joined().utf8)
        for chunks in chunkings(bytes) {
            #expect(frame(chunks) == expected, "\(name), chunks \(chunks.map(\.count))")
        }
    }

    @Test func lineOf512OctetsIncludingCRLFIsAccepted() {
        let text = "NOOP " + String(repeating: "x", count: 505)   // 510 + CRLF = 512
        let input = Array((text + "\r\nQUIT\r\n").utf8)
        for chunks in chunkings(input) {
            #expect(frame(chunks) == [line(text), line("QUIT")], "chunks \(chunks.map(\.count))")
        }
    }

    @Test(arguments: [511, 512, 513, 600, 1024, 5000])
    func overLongLineIsReportedAndTheNextLineRecovers(textLength: Int) {
        let input = Array((String(repeating: "x", count: textLength) + "\r\nNOOP\r\n").utf8)
        for chunks in chunkings(input) {
            #expect(frame(chunks) == [.tooLong, line("NOOP")], "length \(textLength), chunks \(chunks.map(\.count))")
        }
    }

    /// An over-long line ended by a bare LF is one refused line up to the next CRLF.
    @Test func overLongLineEndingInBareLFRunsToTheCRLF() {
        let input = Array((String(repeating: "y", count: 900) + "\nNOOP\r\nQUIT\r\n").utf8)
        for chunks in chunkings(input) {
            let results = frame(chunks)
            #expect(results.count == 2, "chunks \(chunks.map(\.count))")
            #expect(results.first == .tooLong || results.first == .bareLineEnding)
            #expect(results.last == line("QUIT"))
        }
    }

    @Test func overLongLineCutJustAfterItsCR() {
        var buffer = SMTPInputBuffer()
        buffer.append(Array((String(repeating: "x", count: 600) + "\r").utf8))
        #expect(buffer.nextLine(maxLength: 512) == .needMoreData)
        buffer.append(Array("\nNOOP\r\n".utf8))
        #expect(buffer.nextLine(maxLength: 512) == .tooLong)
        #expect(buffer.nextLine(maxLength: 512) == line("NOOP"))
        #expect(buffer.nextLine(maxLength: 512) == .needMoreData)
    }

    @Test func aLineWithoutEndDoesNotGrowTheBufferWithoutBound() {
        var buffer = SMTPInputBuffer()
        let chunk = [UInt8](repeating: UInt8(ascii: "z"), count: 100)
        for _ in 0..<1000 {
            buffer.append(chunk)
            #expect(buffer.nextLine(maxLength: 512) == .needMoreData)
            #expect(buffer.count <= 512 + chunk.count)
        }
        buffer.append(Array("\r\nRSET\r\n".utf8))
        #expect(buffer.nextLine(maxLength: 512) == .tooLong)
        #expect(buffer.nextLine(maxLength: 512) == line("RSET"))
    }

    @Test func consumeReadableTakeAllAndDiscardAll() {
        var buffer = SMTPInputBuffer()
        #expect(buffer.isEmpty)
        buffer.append(Array("NOOP\r\nabcdef".utf8))
        #expect(buffer.nextLine(maxLength: 512) == line("NOOP"))
        #expect(Array(buffer.readable) == Array("abcdef".utf8))
        #expect(buffer.count == 6)
        buffer.consume(2)
        #expect(Array(buffer.readable) == Array("cdef".utf8))
        #expect(Array(buffer.takeAll()) == Array("cdef".utf8))
        #expect(buffer.isEmpty)
        buffer.append(Array("RSET\r\nQUIT\r\n".utf8))
        #expect(buffer.discardAll() == 12)
        #expect(buffer.isEmpty)
        #expect(buffer.nextLine(maxLength: 512) == .needMoreData)
    }

    @Test func discardAllForgetsAPartlySkippedLongLine() {
        var buffer = SMTPInputBuffer()
        buffer.append([UInt8](repeating: UInt8(ascii: "x"), count: 600))
        #expect(buffer.nextLine(maxLength: 512) == .needMoreData)
        buffer.discardAll()
        buffer.append(Array("NOOP\r\n".utf8))
        #expect(buffer.nextLine(maxLength: 512) == line("NOOP"))
    }

    @Test func manyLinesAcrossCompaction() {
        // Enough traffic to pass the 4 KiB compaction threshold several times.
        var buffer = SMTPInputBuffer()
        var seen = 0
        for i in 0..<2000 {
            buffer.append(Array("NOOP \(i)\r\n".utf8))
            if i % 7 == 0 {
                while case .line(let l) = buffer.nextLine(maxLength: 512) {
                    #expect(l == Array("NOOP \(seen)".utf8))
                    seen += 1
                }
            }
        }
        while case .line(let l) = buffer.nextLine(maxLength: 512) {
            #expect(l == Array("NOOP \(seen)".utf8))
            seen += 1
        }
        #expect(seen == 2000)
        #expect(buffer.isEmpty)
    }
}
