import SMTPCore
import SMTPServer
import Testing

/// Feeds a transcript in the given chunks to a fresh session and returns everything it
/// did, rendered (reply codes and texts), with commits answered at once.
private func run(_ chunks: [ArraySlice<UInt8>], configuration: SMTPSessionConfiguration = sessionConfig(),
                 trusted: Bool = true) -> (log: [String], messages: [[UInt8]]) {
    var d = SessionDriver(configuration, trusted: trusted, greet: false)
    var log = d.session.greet().map(render)
    for chunk in chunks {
        log += d.send(Array(chunk)).map(render)
    }
    return (log, d.commits.map(\.message))
}

/// Whole, one byte at a time, and split in two at every byte boundary: all must agree.
private func expectSameEveryWay(_ transcript: String, configuration: SMTPSessionConfiguration = sessionConfig(),
                                trusted: Bool = true,
                                sourceLocation: SourceLocation = #_sourceLocation) -> (log: [String], messages: [[UInt8]]) {
    let bytes = Array(transcript.utf8)
    let whole = run([bytes[...]], configuration: configuration, trusted: trusted)
    let byByte = run(bytes.indices.map { bytes[$0...$0] }, configuration: configuration, trusted: trusted)
    #expect(byByte.log == whole.log, "byte by byte", sourceLocation: sourceLocation)
    #expect(byByte.messages == whole.messages, "byte by byte", sourceLocation: sourceLocation)
    var failures = 0
    for k in 0...bytes.count {
        let split = run([bytes[..<k], bytes[k...]], configuration: configuration, trusted: trusted)
        if split.log != whole.log || split.messages != whole.messages {
            failures += 1
            if failures <= 3 {
                Issue.record("split at \(k): \(split.log) != \(whole.log)", sourceLocation: sourceLocation)
            }
        }
    }
    #expect(failures == 0, "\(failures) of \(bytes.count + 1) splits differ", sourceLocation: sourceLocation)
    return whole
}

@Suite("SMTPSession: pipelining at every byte boundary")
struct SMTPSessionPipeliningTests {
    @Test func pipelinedTransactionGivesTheSameRepliesHoweverItIsSplit() {
        let transcript = "EHLO client.example\r\n"
            + "MAIL FROM:<sender@app.example> SIZE=64\r\n"
            + "RCPT TO:<one@dest.example>\r\n"
            + "RCPT TO:<two@dest.example> NOTIFY=FAILURE\r\n"
            + "DATA\r\n"
            + "Subject: pipelined\r\n\r\n..dot\r\nbody\r\n.\r\n"
            + "QUIT\r\n"
        let result = expectSameEveryWay(transcript)
        #expect(result.log == [
            "220 mx.herald.test ESMTP Herald\r\n",
            "250-mx.herald.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 DSN\r\n",
            "250 2.1.0 Ok\r\n",
            "250 2.1.5 Ok\r\n",
            "250 2.1.5 Ok\r\n",
            "354 End data with <CR><LF>.<CR><LF>\r\n",
            "[commit]",
            "250 2.0.0 Ok: queued as Q1\r\n",
            "221 2.0.0 Bye\r\n[close]",
        ])
        #expect(result.messages == [Array("Subject: pipelined\r\n\r\n.dot\r\nbody\r\n".utf8)])
    }

    @Test func transcriptWithErrorsSmugglingAndTwoMessages() {
        let transcript = "EHLO client.example\r\n"
            + "NOOP\r\n"
            + String(repeating: "L", count: 600) + "\r\n"      // 500 5.5.2
            + "BOGUS\r\n"                                      // 500 5.5.1
            + "MAIL FROM:<a@b.example>\r\n"
            + "RCPT TO:<r@d.example>\r\n"
            + "DATA\r\n"
            + "Subject: smuggle\r\n\r\nx\n.\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@d.example>\r\nDATA\r\nevil\r\n.\r\n"  // 550 5.6.0
            + "RSET\r\n"
            + "MAIL FROM:<>\r\n"
            + "RCPT TO:<r2@d.example>\r\n"
            + "DATA\r\n"
            + "second\r\n.\r\n"
            + "NOOP\r\nQUIT\r\n"
        let result = expectSameEveryWay(transcript)
        #expect(result.log.map { $0.prefix(9) } == [
            "220 mx.he", "250-mx.he", "250 2.0.0", "500 5.5.2", "500 5.5.1", "250 2.1.0", "250 2.1.5", "354 End d",
            "550 5.6.0", "250 2.0.0", "250 2.1.0", "250 2.1.5", "354 End d", "[commit]", "250 2.0.0", "250 2.0.0",
            "221 2.0.0",
        ])
        #expect(result.messages == [Array("second\r\n".utf8)])
    }

    @Test func pipelinedRelayDenialHoweverSplit() {
        let transcript = "EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x%y.example@mx.herald.test>\r\n"
            + "RCPT TO:<@mx.herald.test:x@y.example>\r\nDATA\r\nQUIT\r\n"
        let result = expectSameEveryWay(transcript, trusted: false)
        #expect(result.log.map { String($0.prefix(9)) } == [
            "220 mx.he", "250-mx.he", "250 2.1.0", "554 5.7.1", "554 5.7.1", "554 5.5.1", "221 2.0.0",
        ])
        #expect(result.messages.isEmpty)
    }

    @Test func startTLSWithInjectedPlaintextHoweverSplit() {
        // Split anywhere, the plaintext after STARTTLS is never answered: if it arrives in
        // the same read it is discarded, if it arrives during the handshake the session closes.
        let transcript = Array("EHLO c.example\r\nSTARTTLS\r\nRSET\r\n".utf8)
        let starttlsEnd = "EHLO c.example\r\nSTARTTLS\r\n".utf8.count
        for k in 0...transcript.count {
            var d = SessionDriver(submissionConfig(), trusted: false)
            var log: [String] = []
            // NIO never delivers an empty read; neither does this test.
            for chunk in [transcript[..<k], transcript[k...]] where !chunk.isEmpty {
                log += codes(d.send(Array(chunk)))
            }
            log += codes(d.session.tlsEstablished())
            #expect(log.filter { $0 == "250 2.0.0" }.isEmpty, "RSET answered, split at \(k): \(log)")
            if k < starttlsEnd || k == transcript.count {
                #expect(log == ["250", "220 2.0.0", "startTLS", "discarded 6"], "split at \(k)")
            } else if k == starttlsEnd {
                #expect(log == ["250", "220 2.0.0", "startTLS", "421 4.7.0 close"], "split at \(k): \(log)")
            } else if k < transcript.count {
                #expect(log == ["250", "220 2.0.0", "startTLS", "discarded \(k - starttlsEnd)", "421 4.7.0 close"],
                        "split at \(k): \(log)")
            }
        }
    }
}
