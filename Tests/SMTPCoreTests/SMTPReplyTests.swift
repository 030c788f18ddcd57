import SMTPCore
import Testing

@Suite("SMTPReply and EnhancedStatusCode")
struct SMTPReplyTests {
    @Test func singleLineWithEnhancedCode() {
        let reply = SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")
        #expect(reply.encoded == "250 2.1.0 Ok\r\n")
        #expect(reply.description == "250 2.1.0 Ok")
    }

    @Test func singleLineWithoutEnhancedCode() {
        #expect(SMTPReply(220, nil, "mx.example ESMTP").encoded == "220 mx.example ESMTP\r\n")
    }

    @Test func multiLineUsesDashesExceptOnTheLastLine() {
        let reply = SMTPReply(250, nil, ["mx.example", "PIPELINING", "SIZE 1000"])
        #expect(reply.encoded == "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n")
        let enhanced = SMTPReply(550, EnhancedStatusCode(5, 7, 1), ["first", "second"])
        #expect(enhanced.encoded == "550-5.7.1 first\r\n550 5.7.1 second\r\n")
    }

    @Test func emptyLinesBecomeOneEmptyLine() {
        let reply = SMTPReply(334, nil, [String]())
        #expect(reply.lines == [""])
        #expect(reply.encoded == "334 \r\n")
    }

    @Test(arguments: [
        ("evil\r\n250 injected", "250 evil 250 injected\r\n"),
        ("bare\nLF", "250 bare LF\r\n"),
        ("bare\rCR", "250 bare CR\r\n"),
    ])
    func textCannotSplitAReply(text: String, wire: String) {
        let encoded = SMTPReply(250, nil, text).encoded
        #expect(encoded == wire)
        #expect(encoded.utf8.filter { $0 == 0x0A }.count == 1)
        #expect(encoded.utf8.filter { $0 == 0x0D }.count == 1)
    }

    @Test func classification() {
        #expect(SMTPReply(250, nil, "x").isPositive)
        #expect(SMTPReply(354, nil, "x").isPositive)
        #expect(SMTPReply(452, nil, "x").isTransientFailure)
        #expect(!SMTPReply(452, nil, "x").isPermanentFailure)
        #expect(SMTPReply(554, nil, "x").isPermanentFailure)
        #expect(!SMTPReply(554, nil, "x").isPositive)
    }

    @Test(arguments: [
        ("2.0.0", EnhancedStatusCode(2, 0, 0)),
        ("4.5.3", EnhancedStatusCode(4, 5, 3)),
        ("5.7.11", EnhancedStatusCode(5, 7, 11)),
        ("5.999.999", EnhancedStatusCode(5, 999, 999)),
    ])
    func parsesEnhancedStatusCodes(text: String, expected: EnhancedStatusCode) {
        #expect(EnhancedStatusCode(parsing: text) == expected)
        #expect(expected.description == text)
    }

    @Test(arguments: ["", "2.0", "2.0.0.0", "3.0.0", "1.0.0", "2.1000.0", "2.0.1000", "2.a.0", "2..0", " 2.0.0", "-2.0.0"])
    func rejectsMalformedEnhancedStatusCodes(text: String) {
        #expect(EnhancedStatusCode(parsing: text) == nil)
    }
}
