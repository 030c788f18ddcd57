import Foundation
import SMTPServer
import Testing

private func context(helo: String? = "client.example", authenticated: Bool = false, tls: Bool = false,
                     esmtp: Bool = true, smtputf8: Bool = false, singleRecipient: String? = nil) -> MessagePreparation.Context {
    MessagePreparation.Context(
        queueID: "QID123", hostname: "mx.herald.test", clientIP: "192.0.2.7", helo: helo,
        authenticated: authenticated, tls: tls, esmtp: esmtp, smtputf8: smtputf8,
        singleRecipient: singleRecipient, arrival: Date(timeIntervalSince1970: 1_700_000_000))
}

private func prepare(_ message: String, _ ctx: MessagePreparation.Context = context()) -> String {
    String(decoding: MessagePreparation.prepare(Array(message.utf8), ctx), as: UTF8.self)
}

/// The lines Herald put on top (everything before the original message).
private func added(_ message: String, _ ctx: MessagePreparation.Context = context()) -> String {
    let out = prepare(message, ctx)
    #expect(out.hasSuffix(message))
    return String(out.dropLast(message.count))
}

@Suite("MessagePreparation")
struct MessagePreparationTests {
    static let date = "Tue, 14 Nov 2023 22:13:20 +0000"

    @Test func receivedGoesOnTopAndMissingHeadersAreAdded() {
        let message = "Subject: hi\r\nFrom: a@b.example\r\n\r\nbody\r\n"
        let out = prepare(message)
        #expect(out == "Received: from client.example ([192.0.2.7])\r\n"
            + "\tby mx.herald.test (Herald) with ESMTP id QID123; \(Self.date)\r\n"
            + "Message-ID: <QID123@mx.herald.test>\r\n"
            + "Date: \(Self.date)\r\n"
            + message)
    }

    @Test func originalBytesAreKeptExactly() {
        // Odd but legal bytes, 8-bit content, trailing spaces, no final CRLF.
        let original: [UInt8] = Array("X-Odd:  value  \r\n\tfolded\r\nSubject: caf".utf8) + [0xC3, 0xA9]
            + Array("\r\n\r\n.\r\n\u{1}body without final CRLF".utf8)
        let out = MessagePreparation.prepare(original, context())
        #expect(out.count > original.count)
        #expect(Array(out.suffix(original.count)) == original)
        #expect(out.starts(with: Array("Received: ".utf8)))
    }

    @Test(arguments: [
        "Message-ID: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n",
        "message-id: <x@y>\r\ndate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n",
        "MESSAGE-ID: <x@y>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n",
        "Subject: s\r\nDate:Mon, 1 Jan 2024 00:00:00 +0000\r\nX: y\r\nMessage-Id:\r\n <x@y>\r\n\r\nbody\r\n",
    ])
    func existingMessageIDAndDateAreKept(message: String) {
        let top = added(message)
        #expect(top.hasPrefix("Received: "))
        #expect(!top.contains("Message-ID:"))
        #expect(!top.contains("Date:"))
    }

    @Test func onlyTheMissingOneIsAdded() {
        let onlyDate = added("Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n")
        #expect(onlyDate.contains("Message-ID: <QID123@mx.herald.test>\r\n"))
        #expect(!onlyDate.contains("Date:"))
        let onlyID = added("Message-ID: <x@y>\r\n\r\nb\r\n")
        #expect(!onlyID.contains("Message-ID:"))
        #expect(onlyID.contains("Date: \(Self.date)\r\n"))
    }

    @Test func headerNamesInTheBodyDoNotCount() {
        let top = added("Subject: s\r\n\r\nMessage-ID: <in-body@x>\r\nDate: in body\r\n")
        #expect(top.contains("Message-ID: <QID123@mx.herald.test>\r\n"))
        #expect(top.contains("Date: \(Self.date)\r\n"))
    }

    @Test func lookalikeFieldNamesDoNotCount() {
        let top = added("X-Message-ID: <x@y>\r\nResent-Date: d\r\nDated: d\r\n\r\nb\r\n")
        #expect(top.contains("Message-ID: <QID123@mx.herald.test>"))
        #expect(top.contains("Date: \(Self.date)"))
    }

    @Test(arguments: [
        "just a body line\r\nand another\r\n",
        " starts with a space\r\n",
        "no colon here\r\nSubject: later\r\n",
        "",
    ])
    func messageWithoutHeadersGetsAnEmptyLine(message: String) {
        let top = added(message)
        #expect(top.hasSuffix("\r\n\r\n"), "no empty line between Herald's fields and the body")
        #expect(top.contains("Message-ID: "))
        #expect(top.contains("Date: "))
    }

    @Test func messageWithHeadersGetsNoEmptyLine() {
        let top = added("Subject: x\r\n\r\nbody\r\n")
        #expect(!top.hasSuffix("\r\n\r\n"))
        let headersOnly = added("Subject: x\r\n")
        #expect(!headersOnly.hasSuffix("\r\n\r\n"))
    }

    @Test func messageStartingWithTheEmptyLineKeepsItsBody() {
        // No header fields, then the body: the separator is already there; adding another
        // empty line would put an extra line at the top of the body.
        let message = "\r\nbody\r\n"
        let top = added(message)
        #expect(!top.hasSuffix("\r\n\r\n"))
        let out = prepare(message)
        #expect(out.components(separatedBy: "\r\n\r\n").count == 2)
        #expect(out.hasSuffix("\r\n\r\nbody\r\n"))
    }

    @Test(arguments: [
        (false, false, false, false, "SMTP"),
        (true, false, false, false, "ESMTP"),
        (true, true, false, false, "ESMTPS"),
        (true, false, true, false, "ESMTPA"),
        (true, true, true, false, "ESMTPSA"),
        (true, true, true, true, "UTF8SMTPSA"),
        (true, false, false, true, "UTF8SMTP"),
    ])
    func protocolNameInReceived(esmtp: Bool, tls: Bool, authenticated: Bool, smtputf8: Bool, expected: String) {
        let top = added("Subject: x\r\n\r\n", context(authenticated: authenticated, tls: tls, esmtp: esmtp, smtputf8: smtputf8))
        #expect(top.contains(" with \(expected) id QID123"))
    }

    @Test func singleRecipientAppearsInReceived() {
        let top = added("Subject: x\r\n\r\n", context(singleRecipient: "r@d.example"))
        #expect(top.hasPrefix("Received: from client.example ([192.0.2.7])\r\n"
            + "\tby mx.herald.test (Herald) with ESMTP id QID123\r\n"
            + "\tfor <r@d.example>; \(Self.date)\r\n"))
    }

    @Test func hostileHELOCannotBreakTheHeader() {
        let top = added("Subject: x\r\n\r\n", context(helo: "evil\r\nBcc: x (y) z"))
        let received = top.components(separatedBy: "\r\n")[0]
        #expect(received == "Received: from evilBcc:xyz ([192.0.2.7])")
    }

    @Test func missingHELOIsUnknown() {
        #expect(added("S: x\r\n\r\n", context(helo: nil)).hasPrefix("Received: from unknown ([192.0.2.7])\r\n"))
    }
}
