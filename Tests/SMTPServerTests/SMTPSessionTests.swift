import SMTPCore
import SMTPServer
import Testing

@Suite("SMTPSession: transactions and replies")
struct SMTPSessionTests {
    @Test func fullTransaction() throws {
        var d = SessionDriver()
        let ehlo = d.send("EHLO client.example\r\n")
        #expect(ehlo.count == 1)
        let lines = try #require(reply(ehlo[0])).lines
        #expect(lines.first == "mx.herald.test")
        for keyword in ["PIPELINING", "SIZE 10000", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"] {
            #expect(lines.contains(keyword), "EHLO lacks \(keyword)")
        }
        #expect(!lines.contains("STARTTLS"))
        #expect(!lines.contains { $0.hasPrefix("AUTH") })
        #expect(d.session.esmtp)
        #expect(d.session.helo == "client.example")

        #expect(d.codesFor("MAIL FROM:<sender@app.example> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=env+2B1\r\n") == ["250 2.1.0"])
        #expect(d.session.inTransaction)
        #expect(d.codesFor("RCPT TO:<one@dest.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;one+40dest.example\r\n") == ["250 2.1.5"])
        #expect(d.codesFor("RCPT TO:<two@dest.example>\r\n") == ["250 2.1.5"])
        #expect(d.send("DATA\r\n").map(render) == ["354 End data with <CR><LF>.<CR><LF>\r\n"])
        #expect(d.session.receivingData)
        #expect(d.send("Subject: test\r\n\r\n..dotted\r\nbody\r\n").isEmpty)
        let end = d.send(".\r\n")
        #expect(end.map(render) == ["[commit]", "250 2.0.0 Ok: queued as Q1\r\n"])
        #expect(!d.session.inTransaction)

        let tx = try #require(d.commits.first)
        #expect(tx.sender == .mailbox(Mailbox(localPart: "sender", domain: "app.example")))
        #expect(tx.recipients.map(\.mailbox.description) == ["one@dest.example", "two@dest.example"])
        #expect(tx.recipients[0].notify == ["SUCCESS", "DELAY"])
        #expect(tx.recipients[0].orcpt == "rfc822;one@dest.example")
        #expect(tx.recipients[1].notify == nil)
        #expect(tx.recipients[1].orcpt == nil)
        #expect(tx.body == "8BITMIME")
        #expect(tx.dsnRet == "HDRS")
        #expect(tx.dsnEnvid == "env+1")
        #expect(!tx.smtputf8)
        #expect(tx.message == Array("Subject: test\r\n\r\n.dotted\r\nbody\r\n".utf8))
        #expect(tx.helo == "client.example")
        #expect(tx.authenticatedUser == nil)
        #expect(!tx.tls)
        #expect(tx.esmtp)

        #expect(d.send("QUIT\r\n").map(render) == ["221 2.0.0 Bye\r\n[close]"])
        #expect(d.session.isClosed)
        #expect(d.send("NOOP\r\n").isEmpty)
    }

    @Test func twoTransactionsInOneSessionAndRSET() throws {
        var d = SessionDriver()
        _ = d.send("HELO old.example\r\n")
        #expect(!d.session.esmtp)
        #expect(d.codesFor("MAIL FROM:<>\r\nRCPT TO:<a@x.example>\r\nDATA\r\none\r\n.\r\n")
            == ["250 2.1.0", "250 2.1.5", "354", "commit", "250 2.0.0"])
        #expect(d.codesFor("MAIL FROM:<b@y.example>\r\nRCPT TO:<c@x.example>\r\nRSET\r\nRCPT TO:<d@x.example>\r\n")
            == ["250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1"])
        #expect(d.codesFor("MAIL FROM:<e@y.example>\r\nRCPT TO:<f@x.example>\r\nDATA\r\ntwo\r\n.\r\n")
            == ["250 2.1.0", "250 2.1.5", "354", "commit", "250 2.0.0"])
        #expect(d.commits.count == 2)
        #expect(d.commits[0].sender == .null)
        #expect(!d.commits[0].esmtp)
        #expect(d.commits[1].recipients.map(\.mailbox.localPart) == ["f"])
        #expect(d.commits[1].message == Array("two\r\n".utf8))
    }

    @Test func simpleCommands() {
        var d = SessionDriver()
        #expect(d.send("HELO client.example\r\n").map(render) == ["250 mx.herald.test\r\n"])
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
        #expect(d.codesFor("RSET\r\n") == ["250 2.0.0"])
        #expect(d.codesFor("VRFY someone\r\n") == ["252 2.5.0"])
        #expect(d.codesFor("EXPN list\r\n") == ["502 5.5.1"])
        #expect(d.codesFor("HELP\r\n") == ["214 2.0.0"])
        #expect(d.codesFor("BDAT 10 LAST\r\n") == ["502 5.5.1"])
        #expect(d.codesFor("STARTTLS\r\n") == ["502 5.5.1"])
        #expect(d.codesFor("AUTH PLAIN\r\n") == ["502 5.5.1"])
        #expect(d.codesFor("XYZZY\r\n") == ["500 5.5.1"])
        #expect(d.codesFor("MAIL FROM:<a b@c>\r\n") == ["501 5.1.3"])
        #expect(d.codesFor("QUIT\r\n") == ["221 2.0.0 close"])
    }

    // MARK: - 554 before the greeting

    @Test func commandsBeforeTheGreetingAreRejected() {
        var session = SMTPSession(configuration: sessionConfig(), clientTrusted: true)
        let actions = session.receive(Array("EHLO eager.example\r\n".utf8))
        #expect(codes(actions) == ["554 5.5.1 close"])
        #expect(session.isClosed)
        #expect(session.greet().isEmpty)
        #expect(session.receive(Array("QUIT\r\n".utf8)).isEmpty)
    }

    @Test func evenAPartialLineBeforeTheGreetingIsRejected() {
        var session = SMTPSession(configuration: sessionConfig(), clientTrusted: true)
        #expect(codes(session.receive(Array("E".utf8))) == ["554 5.5.1 close"])
    }

    // MARK: - 503 sequencing

    @Test(arguments: [
        ("MAIL FROM:<a@b.example>\r\n", ["503 5.5.1"]),
        ("RCPT TO:<a@b.example>\r\n", ["503 5.5.1"]),
        ("DATA\r\n", ["503 5.5.1"]),
    ])
    func sequencingBeforeHELO(command: String, expected: [String]) {
        var d = SessionDriver()
        #expect(d.codesFor(command) == expected)
    }

    @Test func sequencingErrors() {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\n")
        #expect(d.codesFor("RCPT TO:<a@b.example>\r\n") == ["503 5.5.1"])
        #expect(d.codesFor("DATA\r\n") == ["503 5.5.1"])
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\n") == ["250 2.1.0"])
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1"])
        #expect(d.codesFor("DATA\r\n") == ["503 5.5.1"])
        // EHLO resets the transaction.
        #expect(d.codesFor("EHLO c.example\r\n") == ["250"])
        #expect(d.session.inTransaction == false)
        #expect(d.codesFor("RCPT TO:<a@b.example>\r\n") == ["503 5.5.1"])
        #expect(d.session.errorCount == 5)
    }

    @Test func dataWithOnlyRejectedRecipientsIs554() {
        var d = SessionDriver(sessionConfig(), trusted: false)
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n")
        #expect(d.codesFor("RCPT TO:<x@y.example>\r\nDATA\r\n") == ["554 5.7.1", "554 5.5.1"])
        #expect(d.commits.isEmpty)
    }

    // MARK: - MAIL and RCPT parameters

    @Test(arguments: [
        ("SIZE=10000", "250 2.1.0"),
        ("SIZE=0", "250 2.1.0"),
        ("SIZE=10001", "552 5.3.4"),
        ("SIZE=99999999999999999999999", "501 5.5.4"),
        ("SIZE=-1", "501 5.5.4"),
        ("SIZE=abc", "501 5.5.4"),
        ("SIZE", "501 5.5.4"),
        ("BODY=7BIT", "250 2.1.0"),
        ("BODY=8bitmime", "250 2.1.0"),
        ("BODY=BINARYMIME", "501 5.5.4"),
        ("BODY", "501 5.5.4"),
        ("SMTPUTF8", "250 2.1.0"),
        ("SMTPUTF8=yes", "501 5.5.4"),
        ("RET=FULL", "250 2.1.0"),
        ("RET=hdrs", "250 2.1.0"),
        ("RET=SOME", "501 5.5.4"),
        ("RET=FULL RET=HDRS", "501 5.5.4"),
        ("ENVID=abc+2Bdef", "250 2.1.0"),
        ("ENVID=a+ZZ", "501 5.5.4"),
        ("ENVID=\(String(repeating: "e", count: 101))", "501 5.5.4"),
        ("ENVID=a ENVID=b", "501 5.5.4"),
        ("AUTH=<>", "250 2.1.0"),
        ("FOO=bar", "555 5.5.4"),
        ("X-UNKNOWN", "555 5.5.4"),
        ("SIZE=10 FOO", "555 5.5.4"),
        ("=bad", "555 5.5.4"),
    ])
    func mailParameters(params: String, expected: String) {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\n")
        #expect(d.codesFor("MAIL FROM:<a@b.example> \(params)\r\n") == [expected])
        #expect(d.session.inTransaction == expected.hasPrefix("250"))
    }

    @Test(arguments: [
        ("NOTIFY=NEVER", "250 2.1.5"),
        ("NOTIFY=SUCCESS", "250 2.1.5"),
        ("NOTIFY=success,failure,delay", "250 2.1.5"),
        ("NOTIFY=NEVER,SUCCESS", "501 5.5.4"),
        ("NOTIFY=SUCCESS,SUCCESS", "501 5.5.4"),
        ("NOTIFY=BOGUS", "501 5.5.4"),
        ("NOTIFY", "501 5.5.4"),
        ("NOTIFY=NEVER NOTIFY=NEVER", "501 5.5.4"),
        ("ORCPT=rfc822;a+40b.example", "250 2.1.5"),
        ("ORCPT=rfc822", "501 5.5.4"),
        ("ORCPT=rfc822;a+4", "501 5.5.4"),
        ("ORCPT", "501 5.5.4"),
        ("FOO=1", "555 5.5.4"),
        ("SIZE=1", "555 5.5.4"),
    ])
    func rcptParameters(params: String, expected: String) {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n")
        #expect(d.codesFor("RCPT TO:<r@d.example> \(params)\r\n") == [expected])
    }

    @Test func smtputf8NeedsEHLO() {
        var d = SessionDriver()
        _ = d.send("HELO c.example\r\n")
        #expect(d.codesFor("MAIL FROM:<a@b.example> SMTPUTF8\r\n") == ["501 5.5.4"])
    }

    @Test func nonASCIIAddressesNeedSMTPUTF8() throws {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\n")
        #expect(d.codesFor("MAIL FROM:<jöran@bücher.example>\r\n") == ["553 5.6.7"])
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<用户@例子.example>\r\n") == ["250 2.1.0", "553 5.6.7"])
        #expect(d.codesFor("RSET\r\n") == ["250 2.0.0"])
        #expect(d.codesFor("MAIL FROM:<jöran@bücher.example> SMTPUTF8\r\nRCPT TO:<用户@例子.example>\r\nDATA\r\nx\r\n.\r\n")
            == ["250 2.1.0", "250 2.1.5", "354", "commit", "250 2.0.0"])
        let tx = try #require(d.commits.first)
        #expect(tx.smtputf8)
        #expect(tx.recipients.first?.mailbox.domain == "例子.example")
    }

    @Test func postmasterIsNotALocalMailbox() {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n")
        #expect(d.codesFor("RCPT TO:<Postmaster>\r\n") == ["550 5.1.1"])
    }

    // MARK: - 552 5.3.4

    @Test func sizeDeclaredTooBig() {
        var d = SessionDriver(sessionConfig(maxMessageSize: 1000))
        _ = d.send("EHLO c.example\r\n")
        #expect(d.codesFor("MAIL FROM:<a@b.example> SIZE=1001\r\n") == ["552 5.3.4"])
        #expect(d.codesFor("MAIL FROM:<a@b.example> SIZE=1000\r\n") == ["250 2.1.0"])
    }

    @Test func oversizedDataIsRefusedAfterTheEndOfData() {
        var d = SessionDriver(sessionConfig(maxMessageSize: 1000))
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n")
        let line = String(repeating: "x", count: 98) + "\r\n"
        for _ in 0..<20 {
            #expect(d.send(line).isEmpty)
        }
        #expect(d.session.receivingData)
        #expect(d.codesFor(".\r\n") == ["552 5.3.4"])
        #expect(d.commits.isEmpty)
        #expect(!d.session.inTransaction)
        // The session goes on.
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nsmall\r\n.\r\n")
            == ["250 2.1.0", "250 2.1.5", "354", "commit", "250 2.0.0"])
    }

    @Test func messageOfExactlyTheLimitIsAccepted() {
        var d = SessionDriver(sessionConfig(maxMessageSize: 100))
        let body = String(repeating: "y", count: 98) + "\r\n"
        #expect(d.codesFor("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n\(body).\r\n")
            == ["250", "250 2.1.0", "250 2.1.5", "354", "commit", "250 2.0.0"])
        #expect(d.commits.first?.message.count == 100)
    }

    // MARK: - 452 4.5.3

    @Test func tooManyRecipients() throws {
        var d = SessionDriver(sessionConfig(maxRecipients: 2))
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n")
        #expect(d.codesFor("RCPT TO:<r1@d.example>\r\nRCPT TO:<r2@d.example>\r\nRCPT TO:<r3@d.example>\r\n")
            == ["250 2.1.5", "250 2.1.5", "452 4.5.3"])
        #expect(d.codesFor("DATA\r\nx\r\n.\r\n") == ["354", "commit", "250 2.0.0"])
        #expect(try #require(d.commits.first).recipients.map(\.mailbox.localPart) == ["r1", "r2"])
    }

    // MARK: - 500 5.5.2

    @Test func commandLineOf512OctetsIsAcceptedAnd513IsNot() {
        var d = SessionDriver()
        let ok = "NOOP " + String(repeating: "a", count: 505) + "\r\n"
        #expect(ok.utf8.count == 512)
        #expect(d.codesFor(ok) == ["250 2.0.0"])
        let long = "NOOP " + String(repeating: "a", count: 506) + "\r\n"
        #expect(d.codesFor(long) == ["500 5.5.2"])
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
    }

    @Test func hugeCommandLineInPiecesGetsOneReply() {
        var d = SessionDriver()
        var replies: [String] = []
        for _ in 0..<100 { replies += d.codesFor(String(repeating: "A", count: 1000)) }
        replies += d.codesFor("\r\nNOOP\r\n")
        #expect(replies == ["500 5.5.2", "250 2.0.0"])
    }

    /// Only CRLF ends a command: after a bare LF the session waits for the CRLF that ends
    /// the refused line, and never executes what a bare LF seemed to start.
    @Test func bareLineEndingInACommand() {
        var d = SessionDriver()
        #expect(d.codesFor("NOOP\nNOOP\rX\r\nNOOP\r\n") == ["500 5.5.2", "250 2.0.0"])
        #expect(d.codesFor("NOOP\rX\r\nNOOP\r\n") == ["500 5.5.2", "250 2.0.0"])
        #expect(d.codesFor("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n") == ["250", "250 2.1.0"])
        // The RCPT after a bare LF is part of the refused line: no recipient is added.
        #expect(d.codesFor("NOOP\nRCPT TO:<r@d.example>\r\nDATA\r\n") == ["500 5.5.2", "503 5.5.1"])
    }

    @Test func nulInACommand() {
        var d = SessionDriver()
        #expect(d.codesFor("NOOP \u{0}\r\n") == ["500 5.5.2"])
    }

    @Test func textLineLongerThan1000OctetsInDATA() {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n")
        #expect(d.codesFor(String(repeating: "z", count: 1500) + "\r\n.\r\n") == ["500 5.5.2"])
        #expect(d.commits.isEmpty)
        _ = d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n")
        #expect(d.codesFor(String(repeating: "z", count: 998) + "\r\n.\r\n") == ["commit", "250 2.0.0"])
    }

    @Test func textLineOf999OctetsInDATAIsRefused() {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n")
        #expect(d.codesFor(String(repeating: "z", count: 999) + "\r\n.\r\n") == ["500 5.5.2"])
    }

    // MARK: - 550 5.6.0 (SMTP smuggling)

    @Test(arguments: ["\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\n", "\r"])
    func bareLineEndingsInDATAAreRejectedAndNothingIsSmuggled(sequence: String) {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n")
        let payload = "Subject: x\r\n\r\nhello" + sequence
            + "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@target.example>\r\nDATA\r\nspoofed\r\n.\r\n"
        // Only one reply: the smuggled commands are message content, not commands.
        #expect(d.codesFor(payload) == ["550 5.6.0"])
        #expect(d.commits.isEmpty)
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
    }

    @Test func nulInDATAIsRejected() {
        var d = SessionDriver()
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\n")
        #expect(d.codesFor("a\u{0}b\r\n.\r\n") == ["550 5.6.0"])
        #expect(d.commits.isEmpty)
    }

    // MARK: - 421 4.7.0 after too many errors

    @Test func tooManyErrorsCloseTheSession() {
        var d = SessionDriver(sessionConfig(maxErrors: 3))
        #expect(d.codesFor("FOO\r\nBAR\r\nBAZ\r\n") == ["500 5.5.1", "500 5.5.1", "500 5.5.1"])
        #expect(!d.session.isClosed)
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
        #expect(d.codesFor("QUX\r\nNOOP\r\n") == ["421 4.7.0 close"])
        #expect(d.session.isClosed)
        #expect(d.send("NOOP\r\n").isEmpty)
    }

    @Test func errorsOfEveryKindCount() {
        var d = SessionDriver(sessionConfig(maxErrors: 4), trusted: false)
        // Sequencing, syntax, relay denial and an over-long line each count.
        let all = d.codesFor("MAIL FROM:<a@b.example>\r\nEHLO\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@y.example>\r\n"
            + String(repeating: "x", count: 600) + "\r\nNOOP\r\nNOOP\r\n")
        #expect(all == ["503 5.5.1", "501 5.5.4", "250", "250 2.1.0", "554 5.7.1", "500 5.5.2", "250 2.0.0", "250 2.0.0"])
        #expect(d.codesFor("DATA\r\n") == ["421 4.7.0 close"])
    }

    // MARK: - 452 4.3.1 and 250 2.0.0 queued as

    @Test func commitFailureIs452AndTheClientMayRetry() {
        var d = SessionDriver()
        d.autoCommit = false
        let actions = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbody\r\n.\r\n")
        #expect(codes(actions) == ["250", "250 2.1.0", "250 2.1.5", "354", "commit"])
        #expect(d.session.isWaiting)
        #expect(codes(d.session.commitFailed()) == ["452 4.3.1"])
        #expect(!d.session.isWaiting)
        #expect(!d.session.inTransaction)
        #expect(d.session.errorCount == 1)
        d.autoCommit = true
        let retry = d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbody\r\n.\r\n")
        #expect(retry.map(render).last == "250 2.0.0 Ok: queued as Q1\r\n")
    }

    @Test func queuedReplyCarriesTheQueueID() {
        var d = SessionDriver()
        d.autoCommit = false
        _ = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbody\r\n.\r\n")
        let done = d.session.commitSucceeded(queueID: "01HXYZ-abc")
        #expect(done.map(render) == ["250 2.0.0 Ok: queued as 01HXYZ-abc\r\n"])
    }

    // MARK: - Back-pressure

    @Test func pipelinedCommandsWaitForTheCommit() {
        var d = SessionDriver()
        d.autoCommit = false
        let first = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbody\r\n.\r\nNOOP\r\n")
        #expect(codes(first) == ["250", "250 2.1.0", "250 2.1.5", "354", "commit"])
        #expect(d.session.isWaiting)
        #expect(d.session.inTransaction)
        #expect(!d.session.receivingData)
        // More input while waiting is buffered, not answered.
        #expect(d.send("MAIL FROM:<c@b.example>\r\nRCPT TO:<s@d.example>\r\nQUIT\r\n").isEmpty)
        #expect(d.session.isWaiting)
        let rest = d.session.commitSucceeded(queueID: "Q9")
        #expect(codes(rest) == ["250 2.0.0", "250 2.0.0", "250 2.1.0", "250 2.1.5", "221 2.0.0 close"])
        #expect(d.session.isClosed)
    }

    @Test func aSecondMessageQueuedBehindACommitIsCommittedAfterIt() {
        var d = SessionDriver()
        d.autoCommit = false
        let message = "MAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbody\r\n.\r\n"
        #expect(codes(d.send("EHLO c\r\n" + message + message)).last == "commit")
        let second = d.session.commitSucceeded(queueID: "Q1")
        #expect(codes(second) == ["250 2.0.0", "250 2.1.0", "250 2.1.5", "354", "commit"])
        #expect(codes(d.session.commitSucceeded(queueID: "Q2")) == ["250 2.0.0"])
    }

    // MARK: - Shutdown and time-outs

    @Test func shutdownWhileIdle() {
        var d = SessionDriver()
        _ = d.send("EHLO c\r\n")
        let actions = d.session.shutdownRequested()
        #expect(codes(actions) == ["421 4.3.2 close"])
        #expect(d.session.isClosed)
        #expect(d.send("NOOP\r\n").isEmpty)
    }

    @Test func shutdownInsideATransactionBeforeDATAClosesAtOnce() {
        var d = SessionDriver()
        _ = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\n")
        #expect(codes(d.session.shutdownRequested()) == ["421 4.3.2 close"])
    }

    @Test func shutdownDuringDATALetsTheMessageFinish() {
        var d = SessionDriver()
        d.autoCommit = false
        _ = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nhalf")
        #expect(d.session.receivingData)
        #expect(d.session.shutdownRequested().isEmpty)
        #expect(d.session.closing)
        #expect(codes(d.send(" of the body\r\n.\r\nNOOP\r\n")) == ["commit"])
        let done = d.session.commitSucceeded(queueID: "Q7")
        #expect(codes(done) == ["250 2.0.0", "421 4.3.2 close"])
        #expect(d.session.isClosed)
    }

    @Test func shutdownWhileACommitIsPending() {
        var d = SessionDriver()
        d.autoCommit = false
        _ = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbody\r\n.\r\n")
        #expect(d.session.shutdownRequested().isEmpty)
        #expect(codes(d.session.commitFailed()) == ["452 4.3.1", "421 4.3.2 close"])
        #expect(d.session.isClosed)
    }

    @Test func shutdownDuringDATAWithARejectedMessageStillCloses() {
        var d = SessionDriver()
        _ = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\nbad\nline\r\n")
        #expect(d.session.shutdownRequested().isEmpty)
        #expect(d.codesFor(".\r\nNOOP\r\n") == ["550 5.6.0", "421 4.3.2 close"])
        #expect(d.session.isClosed)
    }

    @Test func timeOut() {
        var d = SessionDriver()
        _ = d.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@d.example>\r\nDATA\r\npartial")
        #expect(codes(d.session.timedOut()) == ["421 4.4.2 close"])
        #expect(d.session.isClosed)
        #expect(d.session.timedOut().isEmpty)
    }

    @Test func timeOutBeforeAnyCommand() {
        var d = SessionDriver()
        #expect(codes(d.session.timedOut()) == ["421 4.4.2 close"])
    }
}
