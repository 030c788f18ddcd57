import SMTPCore
import SMTPServer
import Testing

/// Recipients past `max_recipients` (RFC 5321 §4.5.3.1.8) and MAIL parameters (RFC 1870
/// SIZE): limits that a pipelining client hits without being cut off.
@Suite("SMTP session: recipient overshoot and MAIL parameters")
struct SMTPSessionOvershootTests {
    /// 100 recipients allowed, 20 errors tolerated: 300 pipelined RCPTs get 100 × 250 and
    /// 200 × 452 4.5.3 (the overshoot allowance of 1,000 is not used up), and DATA then
    /// delivers the message to the 100.
    @Test func pipelinedOvershootKeepsTheAcceptedRecipients() {
        var d = SessionDriver(sessionConfig(maxRecipients: 100, maxErrors: 20))
        var script = "EHLO app.example\r\nMAIL FROM:<a@app.example>\r\n"
        for i in 0..<300 { script += "RCPT TO:<r\(i)@dest.example>\r\n" }
        script += "DATA\r\n"
        let codes = d.codesFor(script)
        #expect(codes.count == 1 + 1 + 300 + 1)
        #expect(codes[2..<102].allSatisfy { $0 == "250 2.1.5" })
        #expect(codes[102..<302].allSatisfy { $0 == "452 4.5.3" }, "\(Set(codes[102..<302]))")
        #expect(codes.last == "354")
        #expect(d.codesFor("Subject: many\r\n\r\nhello\r\n.\r\n") == ["commit", "250 2.0.0"])
        #expect(d.commits.first?.recipients.count == 100)
        // A new transaction starts with a fresh allowance.
        #expect(d.codesFor("MAIL FROM:<a@app.example>\r\nRCPT TO:<r300@dest.example>\r\n") == ["250 2.1.0", "250 2.1.5"])
    }

    /// Past the allowance the replies count as errors again, so a client that only
    /// piles up recipients is cut off with 421 after `max_errors` more.
    @Test func pastTheAllowanceTheyAreErrors() {
        var c = sessionConfig(maxRecipients: 10, maxErrors: 3)
        c.recipientOvershootLimit = 5
        var d = SessionDriver(c)
        var script = "EHLO app.example\r\nMAIL FROM:<a@app.example>\r\n"
        for i in 0..<30 { script += "RCPT TO:<r\(i)@dest.example>\r\n" }
        let codes = d.codesFor(script)
        #expect(codes[2..<12].allSatisfy { $0 == "250 2.1.5" })
        #expect(codes[12..<20] == Array(repeating: "452 4.5.3", count: 8)[...], "5 allowed + 3 errors")
        #expect(codes[20] == "421 4.7.0 close", "\(codes[20...])")
        #expect(codes.count == 21)
    }

    @Test(arguments: [
        ("SIZE=+5", "501 5.5.4"), ("SIZE=-1", "501 5.5.4"), ("SIZE= 5", "555 5.5.4"), ("SIZE=5x", "501 5.5.4"),
        ("SIZE=", "555 5.5.4"), ("SIZE=1 SIZE=2", "501 5.5.4"), ("SIZE=0x10", "501 5.5.4"),
        ("SIZE=123456789012345678901", "501 5.5.4"),          // 21 digits
        ("SIZE=99999999999999999999", "552 5.3.4"),           // 20 digits: valid, over any limit
        ("SIZE=00010", "250 2.1.0"), ("BODY=8BITMIME BODY=7BIT", "501 5.5.4"),
        ("RET=FULL RET=HDRS", "501 5.5.4"),
    ])
    func mailParameters(parameters: String, expected: String) {
        var d = SessionDriver(sessionConfig())
        #expect(d.codesFor("EHLO app.example\r\n") == ["250"])
        #expect(d.codesFor("MAIL FROM:<a@app.example> \(parameters)\r\n") == [expected], "\(parameters)")
    }
}
