import SMTPClient
import SMTPCore
import Testing

@Suite struct ReplyParserTests {
    @Test func singleLineWithEnhancedCode() throws {
        var p = SMTPReplyParser()
        let replies = try p.feed(Array("250 2.1.0 Ok\r\n".utf8))
        #expect(replies == [SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")])
    }

    @Test func multiLineEHLO() throws {
        var p = SMTPReplyParser()
        let text = "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n"
        let replies = try p.feed(Array(text.utf8))
        #expect(replies.count == 1)
        #expect(replies[0].lines == ["mx.example Hello", "PIPELINING", "SIZE 1000", "STARTTLS"])
        #expect(replies[0].enhanced == nil)
    }

    @Test func byteByByteEqualsWhole() throws {
        let text = "220 hi\r\n250-a\r\n250 2.0.0 b\r\n451 4.7.1 slow down\r\n354 go\r\n"
        var whole = SMTPReplyParser()
        let expected = try whole.feed(Array(text.utf8))
        var drip = SMTPReplyParser()
        var got: [SMTPReply] = []
        for b in text.utf8 { got += try drip.feed([b]) }
        #expect(got == expected)
        #expect(expected.map(\.code) == [220, 250, 451, 354])
        #expect(expected[2].enhanced == EnhancedStatusCode(4, 7, 1))
    }

    @Test func enhancedCodeOfAnotherClassIsText() throws {
        var p = SMTPReplyParser()
        let r = try p.feed(Array("550 2.0.0 odd\r\n".utf8))
        #expect(r[0].enhanced == nil)
        #expect(r[0].lines == ["2.0.0 odd"])
    }

    @Test func bareLFIsTolerated() throws {
        var p = SMTPReplyParser()
        #expect(try p.feed(Array("250 ok\n".utf8)).map(\.code) == [250])
    }

    @Test(arguments: ["hello\r\n", "25 x\r\n", "250x\r\n", "999 x\r\n"])
    func malformed(_ text: String) {
        var p = SMTPReplyParser()
        #expect(throws: SMTPReplyParser.ParseError.self) { try p.feed(Array(text.utf8)) }
    }

    @Test func continuationMustKeepTheCode() {
        var p = SMTPReplyParser()
        #expect(throws: SMTPReplyParser.ParseError.self) { try p.feed(Array("250-a\r\n251 b\r\n".utf8)) }
    }

    @Test func overlongLineIsRefused() {
        var p = SMTPReplyParser()
        #expect(throws: SMTPReplyParser.ParseError.lineTooLong) {
            try p.feed(Array(repeating: UInt8(ascii: "2"), count: 5000))
        }
    }
}
