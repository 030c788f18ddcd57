/// Bounce and complaint messages as the mailbox that receives them would hold them,
/// written for these tests after the formats of Postfix, Exim, qmail, Exchange and the
/// mailbox providers' feedback loops. Written with LF line ends; `bytes(_:crlf:)` gives
/// the wire form.
enum ReportSamples {
    /// `text` as bytes, with every LF turned into CRLF when `crlf` is set.
    static func bytes(_ text: String, crlf: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        for byte in text.utf8 {
            if crlf && byte == 10 { out.append(13) }
            out.append(byte)
        }
        return out
    }

    /// Postfix's DSN: one failed recipient, a folded Diagnostic-Code, the returned
    /// message's headers only.
    static let postfixDSN = """
        Return-Path: <>
        Received: by mx.example.net (Postfix)
        \tid 4Vx1Kq3Zz1z9sT; Tue,  5 Mar 2024 09:00:02 +0000 (UTC)
        Date: Tue,  5 Mar 2024 09:00:02 +0000 (UTC)
        From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
        Subject: Undelivered Mail Returned to Sender
        To: news+c12-s3456@bounces.example.org
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="4Vx1Kq3Zz1z9sT.1709629202/mx.example.net"
        Content-Transfer-Encoding: 8bit
        Message-Id: <20240305090002.4Vx1Kq3Zz1z9sV@mx.example.net>

        This is a MIME-encapsulated message.

        --4Vx1Kq3Zz1z9sT.1709629202/mx.example.net
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        This is the mail system at host mx.example.net.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients. It's attached below.

        For further assistance, please send mail to postmaster.

        If you do so, please include this problem report. You can
        delete your own text from the attached returned message.

                           The mail system

        <nobody@example.net>: host mail.example.net[192.0.2.25] said: 550 5.1.1
            <nobody@example.net>: Recipient address rejected: User unknown in local
            recipient table (in reply to RCPT TO command)

        --4Vx1Kq3Zz1z9sT.1709629202/mx.example.net
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net
        X-Postfix-Queue-ID: 4Vx1Kq3Zz1z9sT
        X-Postfix-Sender: rfc822; news+c12-s3456@bounces.example.org
        Arrival-Date: Tue,  5 Mar 2024 09:00:01 +0000 (UTC)

        Final-Recipient: rfc822; nobody@example.net
        Original-Recipient: rfc822;nobody@example.net
        Action: failed
        Status: 5.1.1
        Remote-MTA: dns; mail.example.net
        Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address rejected:
            User unknown in local recipient table

        --4Vx1Kq3Zz1z9sT.1709629202/mx.example.net
        Content-Description: Undelivered Message Headers
        Content-Type: text/rfc822-headers
        Content-Transfer-Encoding: 8bit

        Return-Path: <news+c12-s3456@bounces.example.org>
        Received: from herald.example.org (herald.example.org [198.51.100.7])
        \tby mx.example.net (Postfix) with ESMTPS id 4Vx1Kq3Zz1z9sT
        \tfor <nobody@example.net>; Tue,  5 Mar 2024 09:00:01 +0000 (UTC)
        From: Example News <news@example.org>
        To: nobody@example.net
        Subject: March newsletter
        Message-ID: <c12.s3456@example.org>

        --4Vx1Kq3Zz1z9sT.1709629202/mx.example.net--

        """

    /// A DSN about two recipients: one failed (mailbox full), one delayed; the whole
    /// returned message attached as message/rfc822.
    static let twoRecipientDSN = """
        From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>
        To: <news+c12-s777@bounces.example.org>
        Subject: Returned mail: see transcript for details
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type="delivery-status";
            boundary="=_report_b0a7"

        --=_report_b0a7
        Content-Type: text/plain; charset=utf-8

        The original message was received at Tue, 5 Mar 2024 09:00:01 +0000
        from herald.example.org [198.51.100.7]

           ----- The following addresses had permanent fatal errors -----
        <full@example.com>
            (reason: 552 5.2.2 Mailbox full)

           ----- The following addresses had transient non-fatal errors -----
        <slow@example.com>

        --=_report_b0a7
        Content-Type: message/delivery-status

        Reporting-MTA: dns; relay.example.com
        Original-Envelope-Id: c12-batch-7
        Arrival-Date: Tue, 5 Mar 2024 09:00:01 +0000

        Final-Recipient: rfc822;full@example.com
        Action: failed
        Status: 5.2.2 (mailbox full)
        Remote-MTA: dns; mx1.example.com
        Diagnostic-Code: smtp;552 5.2.2 Mailbox full
        Last-Attempt-Date: Tue, 5 Mar 2024 09:00:03 +0000

        Final-Recipient: RFC822; <slow@example.com>
        Action: Delayed
        Status: 4.4.1
        Diagnostic-Code: X-Postfix; connect to mx.slow.example[203.0.113.9]:25:
            Connection timed out
        Will-Retry-Until: Tue, 10 Mar 2024 09:00:01 +0000

        --=_report_b0a7
        Content-Type: message/rfc822

        Return-Path: <news+c12-s777@bounces.example.org>
        From: Example News <news@example.org>
        To: full@example.com, slow@example.com
        Subject: March newsletter
        Message-ID: <c12.s777@example.org>
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Hello, here is our March news.
        --=_report_b0a7--
        """

    /// A DSN whose delivery-status part is base64 (as some gateways re-encode every part).
    static let base64DSN = """
        From: Mail Delivery Subsystem <mailer-daemon@smtp.example.com>
        To: news+c3-s9@bounces.example.org
        Subject: Delivery Status Notification (Failure)
        MIME-Version: 1.0
        Content-Type: multipart/report; boundary=000000000000a1b2c3;
         report-type=delivery-status

        --000000000000a1b2c3
        Content-Type: text/plain; charset="UTF-8"

        ** Address not found **

        Your message wasn't delivered to carol@example.com because the address couldn't be found.

        --000000000000a1b2c3
        Content-Type: message/delivery-status
        Content-Transfer-Encoding: base64

        UmVwb3J0aW5nLU1UQTogZG5zOyBzbXRwLmV4YW1wbGUuY29tDQpBcnJpdmFsLURhdGU6IFR1ZSwg
        NSBNYXIgMjAyNCAwOTowMDowMSArMDAwMA0KDQpGaW5hbC1SZWNpcGllbnQ6IHJmYzgyMjsgPGNh
        cm9sQGV4YW1wbGUuY29tPg0KQWN0aW9uOiBmYWlsZWQNClN0YXR1czogNS4xLjENCkRpYWdub3N0
        aWMtQ29kZTogc210cDsgNTUwIDUuMS4xIFRoZSBlbWFpbCBhY2NvdW50IHRoYXQgeW91IHRyaWVk
        IHRvIHJlYWNoDQogZG9lcyBub3QgZXhpc3QuDQo=

        --000000000000a1b2c3
        Content-Type: message/rfc822

        From: Example News <news@example.org>
        To: carol@example.com
        Subject: Offer

        Hi Carol
        --000000000000a1b2c3--
        """

    /// An ARF abuse report with the whole reported message.
    static let arfAbuse = """
        From: Mail Feedback <feedback@fbl.example.com>
        To: fbl@example.org
        Subject: FW: March newsletter
        Date: Tue, 5 Mar 2024 10:12:40 +0000
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report;
             boundary="part1_13d.2e68ed54_boundary"

        This is a multi-part message in MIME format.

        --part1_13d.2e68ed54_boundary
        Content-Type: text/plain; charset="US-ASCII"
        Content-Transfer-Encoding: 7bit

        This is an email abuse report for an email message received from IP
        198.51.100.7 on Tue, 5 Mar 2024 09:00:01 +0000.
        For more information about this format please see
        https://www.rfc-editor.org/rfc/rfc5965.

        --part1_13d.2e68ed54_boundary
        Content-Type: message/feedback-report

        Feedback-Type: abuse
        User-Agent: ExampleFBL/1.0
        Version: 1
        Original-Mail-From: <news+c7-s42@bounces.example.org>
        Original-Rcpt-To: <reader@example.com>
        Arrival-Date: Tue, 5 Mar 2024 09:00:01 +0000
        Reporting-MTA: dns; mail.example.com
        Source-IP: 198.51.100.7
        Authentication-Results: mail.example.com;
                  spf=pass smtp.mail=news+c7-s42@bounces.example.org
        Reported-Domain: example.org
        Reported-Domain: bounces.example.org

        --part1_13d.2e68ed54_boundary
        Content-Type: message/rfc822
        Content-Disposition: inline

        Return-Path: <news+c7-s42@bounces.example.org>
        Received: from herald.example.org (herald.example.org [198.51.100.7])
                by mail.example.com with ESMTP id 7Hx2; Tue, 5 Mar 2024 09:00:01 +0000
        From: Example News <news@example.org>
        To: reader@example.com
        Subject: March newsletter
        Message-ID: <c7.s42@example.org>
        List-Unsubscribe: <https://example.org/u/c7-s42>
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Hello reader, here is our March news.

        --part1_13d.2e68ed54_boundary--
        """

    /// An ARF report carrying only the reported message's headers, with two recipients.
    static let arfHeadersOnly = """
        From: complaints@isp.example
        To: fbl@example.org
        Subject: Complaint about message from 198.51.100.7
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary=arf-77

        --arf-77
        Content-Type: text/plain

        A subscriber marked this message as spam.
        --arf-77
        Content-Type: message/feedback-report

        Feedback-Type: Abuse
        User-Agent: ISP-FBL/2.3
        Version: 1
        Original-Mail-From: news+c9-s1001@bounces.example.org
        Original-Rcpt-To: first@isp.example
        Original-Rcpt-To: <second@isp.example>
        Received-Date: Wed, 6 Mar 2024 08:30:00 -0500
        Source-IP: 198.51.100.7
        Reported-Domain: example.org
        --arf-77
        Content-Type: text/rfc822-headers

        Return-Path: <news+c9-s1001@bounces.example.org>
        From: Example News <news@example.org>
        To: first@isp.example
        Subject: Weekly digest
        --arf-77--
        """

    static let qmailBounce = """
        Return-Path: <>
        Date: 5 Mar 2024 09:00:03 -0000
        From: MAILER-DAEMON@mail.example.com
        To: news+c12-s3456@bounces.example.org
        Subject: failure notice

        Hi. This is the qmail-send program at mail.example.com.
        I'm afraid I wasn't able to deliver your message to the following addresses.
        This is a permanent error; I've given up. Sorry it didn't work out.

        <user@example.com>:
        192.0.2.30 does not like recipient.
        Remote host said: 550 5.1.1 <user@example.com>... User unknown
        Giving up on 192.0.2.30.

        --- Below this line is a copy of the message.

        Return-Path: <news+c12-s3456@bounces.example.org>
        Received: (qmail 12345 invoked from network); 5 Mar 2024 09:00:02 -0000
        From: Example News <news@example.org>
        To: user@example.com
        Subject: March newsletter

        Hello! Questions? Write to help@example.org, or call 555 0100.
        """

    static let eximBounce = """
        Return-path: <>
        From: Mail Delivery System <Mailer-Daemon@mx.example.com>
        To: news+c12-s3456@bounces.example.org
        Subject: Mail delivery failed: returning message to sender
        Auto-Submitted: auto-replied

        This message was created automatically by mail delivery software.

        A message that you sent could not be delivered to one or more of its
        recipients. This is a permanent error. The following address(es) failed:

          user@example.com
            host mx.example.com [192.0.2.40]
            SMTP error from remote mail server after RCPT TO:<user@example.com>:
            550 5.1.1 <user@example.com>: Recipient address rejected: User unknown

        ------ This is a copy of the message, including all the headers. ------

        Return-path: <news+c12-s3456@bounces.example.org>
        Received: from [198.51.100.7] (helo=herald.example.org)
        \tby mx.example.com with esmtp (Exim 4.96)
        From: Example News <news@example.org>
        To: user@example.com
        Subject: March newsletter

        Reply to other@example.org with 421 questions.
        """

    /// Exchange's HTML-only non-delivery report, quoted-printable.
    static let exchangeHTML = """
        From: postmaster@contoso.example
        To: news+c12-s3456@bounces.example.org
        Subject: Undeliverable: March newsletter
        MIME-Version: 1.0
        Content-Type: text/html; charset="us-ascii"
        Content-Transfer-Encoding: quoted-printable

        <html><head><style>body { font-family: Calibri; color: #000; }</style>
        <!-- generated by the transport service --></head><body>
        <p><b><font color=3D"#000066" size=3D"3">Delivery has failed to these recipients or gro=
        ups:</font></b></p>
        <font size=3D"2"><a href=3D"mailto:jane.doe@contoso.example">jane.doe@contoso.example</a><br>
        The email address you entered couldn&#39;t be found. Please check the recipient&#39;s email=
         address &amp; try to resend the message.</font>
        <p><font size=3D"2">Diagnostic information for administrators:</font></p>
        <font size=3D"2">Generating server: EX01.contoso.example<br>
        <br>
        jane.doe@contoso.example<br>
        Remote Server returned &#39;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found b=
        y SMTP address lookup&#39;<br>
        </font>
        </body></html>
        """

    /// A provider's own wording, quoted-printable ISO-8859-1.
    static let quotedPrintableBounce = """
        From: postmaster@example.fr
        To: news+c12-s3456@bounces.example.org
        Subject: =?iso-8859-1?q?Message_non_d=E9livr=E9?=
        MIME-Version: 1.0
        Content-Type: text/plain; charset="iso-8859-1"
        Content-Transfer-Encoding: quoted-printable

        Votre message n'a pas pu =EAtre remis =E0 <marie@example.fr>:
        Le destinataire est inconnu. Erreur SMTP : 550 5.1.1 adresse inconnue  =20
        Un message tr=E8s long qui se poursuit sur une ligne de continuation =
        sans coupure.
        """

    static let base64Bounce = """
        From: Mail Delivery Subsystem <mailer-daemon@googlemail.example>
        To: news+c12-s3456@bounces.example.org
        Subject: Delivery Status Notification (Failure)
        MIME-Version: 1.0
        Content-Type: text/plain; charset=UTF-8
        Content-Transfer-Encoding: base64

        RGVsaXZlcnkgdG8gdGhlIGZvbGxvd2luZyByZWNpcGllbnQgZmFpbGVkIHBlcm1hbmVudGx5OgoK
        ICAgICBib2JAZXhhbXBsZS5jb20KClRlY2huaWNhbCBkZXRhaWxzIG9mIHBlcm1hbmVudCBmYWls
        dXJlOgpUaGUgZW1haWwgYWNjb3VudCB0aGF0IHlvdSB0cmllZCB0byByZWFjaCBkb2VzIG5vdCBl
        eGlzdC4gUGxlYXNlIHRyeSBkb3VibGUtY2hlY2tpbmcgdGhlIHJlY2lwaWVudCdzIGVtYWlsIGFk
        ZHJlc3MgZm9yIHR5cG9zIG9yIHVubmVjZXNzYXJ5IHNwYWNlcy4KNTUwLTUuMS4xIFRoZSBlbWFp
        bCBhY2NvdW50IHRoYXQgeW91IHRyaWVkIHRvIHJlYWNoIGRvZXMgbm90IGV4aXN0LiBxN3NpMTIz
        NDUgLSBnc210cAo=
        """

    static let mailboxFull = """
        From: "Mail Delivery" <postmaster@example.com>
        To: news+c12-s3456@bounces.example.org
        Subject: Delivery failure

        Your message to jane@example.com could not be delivered because the
        recipient's mailbox is full. Please try again later.
        """

    /// A non-standard bounce in multipart/mixed with the returned message attached.
    static let mixedWithAttachment = """
        From: MAILER-DAEMON@legacy.example
        To: news+c5-s6@bounces.example.org
        Subject: Undeliverable mail
        MIME-Version: 1.0
        Content-Type: multipart/mixed; boundary="mixed-1"

        --mixed-1
        Content-Type: text/plain

        Delivery failed for recipient: pat@legacy.example
        Reason: 554 mailbox disabled
        --mixed-1
        Content-Type: message/rfc822

        Return-Path: <news+c5-s6@bounces.example.org>
        From: news@example.org
        To: pat@legacy.example
        Subject: Spring sale

        Call 555 0199 or write to sales@example.org.
        --mixed-1--
        """
}
