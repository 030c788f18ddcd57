import HeraldTestSupport
import MailFormat
import Testing

@Suite struct InboundReportTests {
    func parse(_ text: String, crlf: Bool = true) -> InboundReport {
        InboundReport.parse(ReportSamples.bytes(text, crlf: crlf))
    }

    func dsn(_ report: InboundReport) -> DeliveryStatusReport? {
        if case .deliveryStatus(let dsn) = report { return dsn }
        return nil
    }

    func feedback(_ report: InboundReport) -> FeedbackReport? {
        if case .feedback(let feedback) = report { return feedback }
        return nil
    }

    func unstructured(_ report: InboundReport) -> UnstructuredBounce? {
        if case .unstructured(let bounce) = report { return bounce }
        return nil
    }

    func value(_ name: String, in headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    // MARK: Delivery status notifications (RFC 3464)

    @Test("Postfix DSN: per-message fields, one recipient, folded diagnostic, returned headers", arguments: [true, false])
    func postfix(crlf: Bool) throws {
        let report = try #require(dsn(parse(ReportSamples.postfixDSN, crlf: crlf)))
        #expect(report.reportingMTA == "mx.example.net")
        #expect(report.originalEnvelopeID == nil)
        #expect(report.arrivalDate == "Tue, 5 Mar 2024 09:00:01 +0000 (UTC)")
        try #require(report.recipients.count == 1)
        let recipient = report.recipients[0]
        #expect(recipient.finalRecipient == "nobody@example.net")
        #expect(recipient.originalRecipient == "nobody@example.net")
        #expect(recipient.action == "failed")
        #expect(recipient.status == "5.1.1")
        #expect(recipient.remoteMTA == "mail.example.net")
        #expect(
            recipient.diagnosticCode
                == "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown in local recipient table"
        )
        #expect(report.humanReadable.hasPrefix("This is the mail system at host mx.example.net.\n"))
        #expect(report.humanReadable.contains("(in reply to RCPT TO command)"))
        #expect(!report.humanReadable.contains("\r"))
        #expect(report.originalHeaders.map(\.name) == ["Return-Path", "Received", "From", "To", "Subject", "Message-ID"])
        #expect(value("Return-Path", in: report.originalHeaders) == "<news+c12-s3456@bounces.example.org>")
        #expect(value("Received", in: report.originalHeaders)?.hasSuffix("for <nobody@example.net>; Tue,  5 Mar 2024 09:00:01 +0000 (UTC)") == true)
    }

    @Test("a DSN with a failed and a delayed recipient, and the returned message attached")
    func twoRecipients() throws {
        let report = try #require(dsn(parse(ReportSamples.twoRecipientDSN)))
        #expect(report.reportingMTA == "relay.example.com")
        #expect(report.originalEnvelopeID == "c12-batch-7")
        try #require(report.recipients.count == 2)

        let failed = report.recipients[0]
        #expect(failed.finalRecipient == "full@example.com")
        #expect(failed.originalRecipient == nil)
        #expect(failed.action == "failed")
        #expect(failed.status == "5.2.2")
        #expect(failed.diagnosticCode == "552 5.2.2 Mailbox full")
        #expect(failed.remoteMTA == "mx1.example.com")
        #expect(failed.lastAttemptDate == "Tue, 5 Mar 2024 09:00:03 +0000")

        let delayed = report.recipients[1]
        #expect(delayed.finalRecipient == "slow@example.com")
        #expect(delayed.action == "delayed")
        #expect(delayed.status == "4.4.1")
        #expect(delayed.diagnosticCode == "connect to mx.slow.example[203.0.113.9]:25: Connection timed out")
        #expect(delayed.remoteMTA == nil)
        #expect(delayed.willRetryUntil == "Tue, 10 Mar 2024 09:00:01 +0000")

        #expect(value("Return-Path", in: report.originalHeaders) == "<news+c12-s777@bounces.example.org>")
        #expect(value("Message-ID", in: report.originalHeaders) == "<c12.s777@example.org>")
        #expect(report.humanReadable.contains("permanent fatal errors"))
    }

    @Test("a DSN whose delivery-status part is base64")
    func base64StatusPart() throws {
        let report = try #require(dsn(parse(ReportSamples.base64DSN)))
        #expect(report.reportingMTA == "smtp.example.com")
        #expect(report.arrivalDate == "Tue, 5 Mar 2024 09:00:01 +0000")
        try #require(report.recipients.count == 1)
        #expect(report.recipients[0].finalRecipient == "carol@example.com")
        #expect(report.recipients[0].status == "5.1.1")
        #expect(report.recipients[0].diagnosticCode == "550 5.1.1 The email account that you tried to reach does not exist.")
        #expect(report.humanReadable.contains("** Address not found **"))
        #expect(value("Subject", in: report.originalHeaders) == "Offer")
    }

    @Test("found by its part type: message/global-delivery-status (RFC 6533) inside multipart/mixed")
    func globalDeliveryStatus() throws {
        let report = try #require(dsn(parse(
            """
            Content-Type: multipart/mixed; boundary=g

            --g
            Content-Type: text/plain; charset=utf-8

            Zustellung fehlgeschlagen.
            --g
            Content-Type: message/global-delivery-status

            Reporting-MTA: dns; mx.bücher.example

            Final-Recipient: utf-8; jürgen@bücher.example
            Action: failed
            Status: 5.1.1
            --g
            Content-Type: message/global-headers

            Return-Path: <news+c1-s2@bounces.example.org>
            --g--
            """)))
        #expect(report.reportingMTA == "mx.bücher.example")
        #expect(report.recipients.first?.finalRecipient == "jürgen@bücher.example")
        #expect(report.humanReadable == "Zustellung fehlgeschlagen.")
        #expect(value("Return-Path", in: report.originalHeaders) == "<news+c1-s2@bounces.example.org>")
    }

    @Test("a delivery-status report whose status part is mislabelled text/plain, with no per-message group")
    func mislabelled() throws {
        let report = try #require(dsn(parse(
            """
            Content-Type: multipart/report; report-type="Delivery-Status"; boundary=m

            --m

            Delivery failed.
            --m
            Content-Type: text/plain


            Final-Recipient: <lee@example.com>
            Action: FAILED (permanent)
            Diagnostic-Code: 550-5.7.1 blocked; see policy
            --m--
            """)))
        #expect(report.reportingMTA == nil)
        try #require(report.recipients.count == 1)
        #expect(report.recipients[0].finalRecipient == "lee@example.com")
        #expect(report.recipients[0].action == "failed")
        #expect(report.recipients[0].status == "5.7.1")
        #expect(report.recipients[0].diagnosticCode == "550-5.7.1 blocked; see policy")
        #expect(report.originalHeaders.isEmpty)
    }

    @Test("a truncated DSN keeps what it holds")
    func truncatedDSN() throws {
        let report = try #require(dsn(parse(
            """
            Content-Type: multipart/report; report-type=delivery-status; boundary=r

            --r

            Failed.
            --r
            Content-Type: message/delivery-status

            Reporting-MTA: dns; x.example

            Final-Recipient: rfc822; a@b.example
            Action: fail
            """)))
        #expect(report.reportingMTA == "x.example")
        #expect(report.recipients.map(\.finalRecipient) == ["a@b.example"])
        #expect(report.recipients.first?.status == nil)
    }

    // MARK: Feedback reports (RFC 5965)

    @Test("ARF abuse report with the whole message", arguments: [true, false])
    func arfAbuse(crlf: Bool) throws {
        let report = try #require(feedback(parse(ReportSamples.arfAbuse, crlf: crlf)))
        #expect(report.feedbackType == "abuse")
        #expect(report.userAgent == "ExampleFBL/1.0")
        #expect(report.version == "1")
        #expect(report.originalMailFrom == "news+c7-s42@bounces.example.org")
        #expect(report.originalRcptTo == ["reader@example.com"])
        #expect(report.arrivalDate == "Tue, 5 Mar 2024 09:00:01 +0000")
        #expect(report.sourceIP == "198.51.100.7")
        #expect(report.reportedDomain == ["example.org", "bounces.example.org"])
        #expect(report.reportingMTA == "mail.example.com")
        #expect(report.authenticationResults == "mail.example.com; spf=pass smtp.mail=news+c7-s42@bounces.example.org")
        #expect(report.humanReadable.hasPrefix("This is an email abuse report"))
        #expect(value("Return-Path", in: report.originalHeaders) == "<news+c7-s42@bounces.example.org>")
        #expect(value("List-Unsubscribe", in: report.originalHeaders) == "<https://example.org/u/c7-s42>")
        #expect(report.originalHeaders.count == 9)
    }

    @Test("ARF with text/rfc822-headers and two recipients")
    func arfHeadersOnly() throws {
        let report = try #require(feedback(parse(ReportSamples.arfHeadersOnly)))
        #expect(report.feedbackType == "abuse")
        #expect(report.userAgent == "ISP-FBL/2.3")
        #expect(report.originalMailFrom == "news+c9-s1001@bounces.example.org")
        #expect(report.originalRcptTo == ["first@isp.example", "second@isp.example"])
        #expect(report.arrivalDate == "Wed, 6 Mar 2024 08:30:00 -0500")
        #expect(report.reportedDomain == ["example.org"])
        #expect(report.originalHeaders.map(\.name) == ["Return-Path", "From", "To", "Subject"])
        #expect(report.humanReadable == "A subscriber marked this message as spam.")
    }

    @Test("ARF found by its part type, with a missing type and a null sender")
    func arfMinimal() throws {
        let report = try #require(feedback(parse(
            """
            Content-Type: multipart/mixed; boundary=f

            --f
            Content-Type: message/feedback-report

            User-Agent: x/1
            Original-Mail-From: <>
            Reported-URI: <https://example.org/offer>
            --f--
            """)))
        #expect(report.feedbackType == "other")
        #expect(report.originalMailFrom == nil)
        #expect(report.originalRcptTo.isEmpty)
        #expect(report.reportedURI == ["https://example.org/offer"])
        #expect(report.originalHeaders.isEmpty)
        #expect(report.humanReadable == "")
    }

    @Test("a bounce of a report is read as the outer report, not the attached one")
    func reportInsideAttachment() throws {
        let attached = ReportSamples.arfAbuse
        let outer = """
            Content-Type: multipart/mixed; boundary=outer

            --outer
            Content-Type: text/plain

            <fbl@example.org>: host mx.example.org said: 552 5.3.4 message too big
            --outer
            Content-Type: message/rfc822

            \(attached)
            --outer--
            """
        let bounce = try #require(unstructured(parse(outer)))
        #expect(bounce.recipients == ["fbl@example.org"])
        #expect(bounce.status == "5.3.4")
        #expect(bounce.replyCode == 552)
        #expect(value("Subject", in: bounce.originalHeaders) == "FW: March newsletter")
    }

    // MARK: Non-standard bounces

    @Test("qmail: recipient line, 'said: 550 5.1.1', inline copy of the message", arguments: [true, false])
    func qmail(crlf: Bool) throws {
        let bounce = try #require(unstructured(parse(ReportSamples.qmailBounce, crlf: crlf)))
        #expect(bounce.text.hasPrefix("Hi. This is the qmail-send program at mail.example.com.\n"))
        #expect(bounce.status == "5.1.1")
        #expect(bounce.replyCode == 550)
        #expect(bounce.recipients == ["user@example.com"])
        #expect(bounce.originalHeaders.map(\.name) == ["Return-Path", "Received", "From", "To", "Subject"])
        #expect(value("Return-Path", in: bounce.originalHeaders) == "<news+c12-s3456@bounces.example.org>")
    }

    @Test("Exim: indented address list, RCPT TO, inline copy")
    func exim() throws {
        let bounce = try #require(unstructured(parse(ReportSamples.eximBounce)))
        #expect(bounce.status == "5.1.1")
        #expect(bounce.replyCode == 550)
        #expect(bounce.recipients == ["user@example.com"])
        #expect(value("Return-path", in: bounce.originalHeaders) == "<news+c12-s3456@bounces.example.org>")
        #expect(
            value("Received", in: bounce.originalHeaders)
                == "from [198.51.100.7] (helo=herald.example.org)\tby mx.example.com with esmtp (Exim 4.96)"
        )
    }

    @Test("Exchange: HTML only, quoted-printable, tags and entities")
    func exchange() throws {
        let bounce = try #require(unstructured(parse(ReportSamples.exchangeHTML)))
        #expect(bounce.text.contains("Delivery has failed to these recipients or groups:"))
        #expect(bounce.text.contains("The email address you entered couldn't be found."))
        #expect(bounce.text.contains("address & try to resend"))
        #expect(bounce.text.contains("Recipient not found by SMTP address lookup"))
        #expect(!bounce.text.contains("<"))
        #expect(!bounce.text.contains("font-family"))
        #expect(!bounce.text.contains("generated by"))
        #expect(bounce.status == "5.1.10")
        #expect(bounce.replyCode == 550)
        #expect(bounce.recipients == ["jane.doe@contoso.example"])
        #expect(bounce.originalHeaders.isEmpty)
    }

    @Test("a CR or LF written as a character reference in HTML is white space, not a CR in the text")
    func htmlCharacterReferenceCR() throws {
        let message = "Subject: x\nContent-Type: text/html\n\n<p>Delivery failed&#13;to&#xD;bob@example.com&#10;now</p>\n"
        let bounce = try #require(unstructured(parse(message)))
        #expect(!bounce.text.unicodeScalars.contains("\r"))
        #expect(bounce.text == "Delivery failed to bob@example.com now")
    }

    @Test("quoted-printable ISO-8859-1 text")
    func quotedPrintable() throws {
        let bounce = try #require(unstructured(parse(ReportSamples.quotedPrintableBounce)))
        #expect(bounce.text.hasPrefix("Votre message n'a pas pu être remis à <marie@example.fr>:\n"))
        #expect(bounce.text.contains("très long qui se poursuit sur une ligne de continuation sans coupure."))
        #expect(bounce.status == "5.1.1")
        #expect(bounce.replyCode == 550)
        #expect(bounce.recipients == ["marie@example.fr"])
    }

    @Test("base64 text")
    func base64() throws {
        let bounce = try #require(unstructured(parse(ReportSamples.base64Bounce)))
        #expect(bounce.text.hasPrefix("Delivery to the following recipient failed permanently:"))
        #expect(bounce.status == "5.1.1")
        #expect(bounce.replyCode == 550)
        #expect(bounce.recipients == ["bob@example.com"])
    }

    @Test("no code at all: mailbox is full")
    func noCode() throws {
        let bounce = try #require(unstructured(parse(ReportSamples.mailboxFull)))
        #expect(bounce.text.contains("mailbox is full"))
        #expect(bounce.status == nil)
        #expect(bounce.replyCode == nil)
        #expect(bounce.recipients == ["jane@example.com"])
    }

    @Test("multipart/mixed with the message attached: its text is left out of the diagnosis")
    func attachedMessage() throws {
        let bounce = try #require(unstructured(parse(ReportSamples.mixedWithAttachment)))
        #expect(bounce.recipients == ["pat@legacy.example"])
        #expect(bounce.replyCode == 554)
        #expect(bounce.status == nil)
        #expect(!bounce.text.contains("sales@example.org"))
        #expect(value("Return-Path", in: bounce.originalHeaders) == "<news+c5-s6@bounces.example.org>")
    }

    @Test("status and reply codes are not read from IP addresses, versions or longer numbers", arguments: [
        ("host [192.0.2.5] at 10.4.4.1 runs Exim 4.96.2 since 2024", nil, nil),
        ("error 5.1.1.2 and 4501 and 550x and 5.1.1x", nil, nil),
        ("Postfix 2.11.3 said: 451 4.7.1 try later", 451, "4.7.1"),
        ("first 4.2.2, then 552-5.2.2 full", 552, "5.2.2"),
        ("just 5.7.1.", nil, "5.7.1"),
        ("#550 no", 550, nil),
        ("port 465 and 599 and 560", nil, nil),
    ] as [(String, Int?, String?)])
    func codes(text: String, reply: Int?, status: String?) throws {
        let bounce = try #require(unstructured(parse("Subject: x\n\n" + text)))
        #expect(bounce.replyCode == reply)
        #expect(bounce.status == status)
    }

    @Test("recipient heuristics", arguments: [
        ("<a@example.com>: bad\n<B@Example.com>... User unknown\nRCPT TO:<c@example.com> rejected",
            ["a@example.com", "B@Example.com", "c@example.com"]),
        ("mailbox for d@example.com is full; recipient: 'e@example.com'.", ["d@example.com", "e@example.com"]),
        ("Sent by <postmaster@example.com>. Contact help@example.com", []),
        ("  f@example.com\n  F@EXAMPLE.COM\n  notanaddress@localhost", ["f@example.com"]),
        ("Your message to g@ex-ample.co.uk. was rejected", ["g@ex-ample.co.uk"]),
    ] as [(String, [String])])
    func recipients(text: String, expected: [String]) throws {
        let bounce = try #require(unstructured(parse("Subject: x\n\n" + text)))
        #expect(bounce.recipients == expected)
    }

    // MARK: Garbage

    @Test("empty, headers only, and a multipart whose boundary never appears")
    func degenerate() throws {
        let empty = try #require(unstructured(InboundReport.parse([])))
        #expect(empty.text == "")
        #expect(empty.recipients.isEmpty)
        #expect(empty.status == nil)

        let headersOnly = try #require(unstructured(parse("From: a@example.com\nSubject: 550 5.1.1")))
        #expect(headersOnly.text == "")
        #expect(headersOnly.status == nil)

        let noBoundary = try #require(unstructured(parse(
            "Content-Type: multipart/report; report-type=delivery-status; boundary=zz\n\n<x@example.com>: 550 5.1.1 unknown\n")))
        #expect(noBoundary.recipients == ["x@example.com"])
        #expect(noBoundary.status == "5.1.1")

        let reportWithoutParts = parse("Content-Type: multipart/report; report-type=feedback-report; boundary=q\n\n--q--\n")
        #expect(unstructured(reportWithoutParts) != nil)
    }

    @Test("50 nested multiparts do not crash and stop at the depth limit")
    func deepNesting() throws {
        var message = "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; deep@example.com\nStatus: 5.0.0\n"
        for level in (0..<50).reversed() {
            message = "Content-Type: multipart/mixed; boundary=\"n\(level)\"\n\n--n\(level)\n\(message)\n--n\(level)--\n"
        }
        #expect(unstructured(parse(message)) != nil)

        var shallow = "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; deep@example.com\nStatus: 5.0.0\n"
        for level in (0..<5).reversed() {
            shallow = "Content-Type: multipart/mixed; boundary=\"n\(level)\"\n\n--n\(level)\n\(shallow)\n--n\(level)--\n"
        }
        let report = try #require(dsn(parse(shallow)))
        #expect(report.recipients.first?.finalRecipient == "deep@example.com")
    }

    @Test("pathological inputs finish")
    func pathological() {
        let size = 200_000
        let inputs: [String] = [
            "Content-Type: text/html\n\n" + String(repeating: "<", count: size),
            "Content-Type: text/html\n\n" + String(repeating: "<script>", count: size / 8),
            "Content-Type: text/html\n\n" + String(repeating: "&#", count: size / 2),
            "Content-Type: text/plain; charset=\"" + String(repeating: "\\", count: size),
            "Content-Type: multipart/mixed; " + String(repeating: "a*0=b;", count: size / 6) + "\n\n",
            "Content-Transfer-Encoding: quoted-printable\n\n" + String(repeating: "=", count: size),
            "\n" + String(repeating: "a@b.c ", count: size / 6),
            "\n" + String(repeating: "5.5.5.", count: size / 6) + String(repeating: "550 ", count: size / 4),
            "Content-Type: multipart/mixed; boundary=b\n\n" + String(repeating: "--b\n", count: size / 4),
            String(repeating: "X-A: b\n c\n", count: size / 10),
        ]
        for input in inputs {
            _ = InboundReport.parse(ReportSamples.bytes(input, crlf: false))
        }
    }

    // MARK: Fuzzing

    func checkShape(_ entity: MIMEEntity, maxDepth: Int, maxParts: Int) {
        var count = 0
        var deepest = 0
        var stack: [(MIMEEntity, Int)] = [(entity, 0)]
        while let (node, depth) = stack.popLast() {
            deepest = max(deepest, depth)
            for part in node.parts {
                count += 1
                stack.append((part, depth + 1))
            }
        }
        #expect(deepest <= maxDepth)
        #expect(count <= maxParts)
    }

    @Test("random bytes never crash")
    func randomBytes() {
        var generator = SplitMix64(state: 0x4845_5241_4C44)
        for _ in 0..<3000 {
            let length = Int.random(in: 0...256, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = InboundReport.parse(bytes)
            checkShape(MIMEEntity.parse(bytes, maxDepth: 3, maxParts: 20), maxDepth: 3, maxParts: 20)
        }
    }

    @Test("MIME-shaped token soup never crashes and respects the limits")
    func tokenSoup() {
        let tokens = [
            "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n", "Content-Type: message/rfc822\r\n",
            "Content-Type: message/delivery-status\r\n", "Content-Type: message/feedback-report\r\n",
            "Content-Type: text/html\r\n", "Content-Type: text/rfc822-headers\r\n",
            "Content-Transfer-Encoding: base64\r\n", "Content-Transfer-Encoding: quoted-printable\r\n",
            "--b\r\n", "--b--\r\n", "\r\n", "\n", " folded\r\n", "Final-Recipient: rfc822; <a@b.example>\r\n",
            "Status: 5.1.1\r\n", "Action: failed\r\n", "Diagnostic-Code: smtp; 550 5.1.1 x\r\n",
            "Feedback-Type: abuse\r\n", "Original-Rcpt-To: <c@d.example>\r\n", "<e@f.example>: ", "550 ", "5.7.1 ",
            "=", "=4", "=41", "QUJD", "<p>", "</script", "<script>", "&amp;", "&#", "--- Below this line is a copy of the message.\n",
            "Return-Path: <x@y.example>\r\n", "\u{00E9}", "\r", ";", "\"", "(", "boundary*0=b;",
        ]
        var generator = SplitMix64(state: 5965)
        for _ in 0..<2000 {
            var text = ""
            for _ in 0..<Int.random(in: 0...40, using: &generator) {
                text += tokens[Int.random(in: 0..<tokens.count, using: &generator)]
            }
            let bytes = Array(text.utf8)
            _ = InboundReport.parse(bytes)
            checkShape(MIMEEntity.parse(bytes, maxDepth: 4, maxParts: 12), maxDepth: 4, maxParts: 12)
        }
    }

    @Test("mutated samples never crash")
    func mutatedSamples() {
        let samples = [
            ReportSamples.postfixDSN, ReportSamples.twoRecipientDSN, ReportSamples.base64DSN, ReportSamples.arfAbuse,
            ReportSamples.arfHeadersOnly, ReportSamples.qmailBounce, ReportSamples.eximBounce,
            ReportSamples.exchangeHTML, ReportSamples.quotedPrintableBounce, ReportSamples.base64Bounce,
        ].map { ReportSamples.bytes($0) }
        var generator = SplitMix64(state: 3464)
        for iteration in 0..<1500 {
            var bytes = samples[iteration % samples.count]
            for _ in 0..<Int.random(in: 1...8, using: &generator) {
                guard !bytes.isEmpty else { break }
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: at)
                case 2: bytes.insert(contentsOf: Array("\r\n--".utf8), at: at)
                default: bytes.removeSubrange(at...)
                }
            }
            _ = InboundReport.parse(bytes)
        }
    }
}
