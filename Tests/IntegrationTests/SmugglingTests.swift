import Foundation
import HeraldTestSupport
import Testing

/// SMTP smuggling (CVE-2023-51764 class): only CRLF.CRLF ends DATA. A message holding a
/// fake end of data (`\n.\n`, `\r\n.\n`, `\n.\r\n`, `\r.\r\n`, `\r\n.\r`) followed by a
/// smuggled transaction is refused as a whole with `550 5.6.0` after the real CRLF.CRLF;
/// nothing is spooled and the smuggled commands are never executed (no extra replies).
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct Smuggling {
        static let separators: [(name: String, bytes: String)] = [
            ("LF.LF", "\n.\n"),
            ("CRLF.LF", "\r\n.\n"),
            ("LF.CRLF", "\n.\r\n"),
            ("CR.CRLF", "\r.\r\n"),
            ("CRLF.CR", "\r\n.\r"),
        ]

        @Test("a fake end of data followed by a smuggled transaction", arguments: Self.separators.map(\.name))
        func smuggle(separator name: String) async throws {
            let separator = Self.separators.first { $0.name == name }!.bytes
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay(tls: "off")])) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                #expect(try c.command("MAIL FROM:<honest@client.test>").code == 250)
                #expect(try c.command("RCPT TO:<rcpt@example.com>").code == 250)
                #expect(try c.command("DATA").code == 354)
                let payload = "From: <honest@client.test>\r\nTo: <rcpt@example.com>\r\nSubject: carrier\r\n\r\n"
                    + "innocent text" + separator
                    + "MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
                    + "From: <ceo@client.test>\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n"
                    + "\r\n.\r\n"
                try c.send(payload)
                let reply = try c.readReply()
                #expect(reply.status == "550 5.6.0", "\(reply)\n\(herald.diagnostics())")
                // Exactly one reply: had the smuggled commands run, 250/250/354 would follow.
                let extra = try c.drain(wait: 0.5)
                #expect(extra.bytes.isEmpty, "no reply to smuggled commands: \(String(decoding: extra.bytes, as: UTF8.self).debugDescription)")
                #expect(!extra.closed)
                // The session is usable and back outside any transaction.
                let noop = try c.command("NOOP")
                #expect(noop.code == 250, "\(noop)")
                let rcptOutside = try c.command("RCPT TO:<victim@example.com>")
                #expect(rcptOutside.status == "503 5.5.1", "no smuggled MAIL is pending: \(rcptOutside)")
                #expect(try await herald.queueList().isEmpty, "nothing spooled")

                // A normal message afterwards, in the same session.
                let message = TestMessage.make(tag: "after-smuggling-\(name)")
                let ok = try c.sendMail(from: "honest@client.test", to: ["rcpt@example.com"], message: message)
                #expect(ok.code == 250, "\(ok)")
                _ = try? c.command("QUIT")
                let list = try await herald.queueList()
                #expect(list.count == 1 && list.first?.sender == "honest@client.test", "\(list)")
                #expect(!herald.log.contains("smuggler@evil.test"))
            }
        }

        /// Commands end with CRLF only: a bare LF is refused with 500 5.5.2 and the line it
        /// seemed to end runs on to the next CRLF, so nothing hidden after it executes.
        @Test("a bare LF in the command channel: 500 5.5.2, and what follows it up to the CRLF never runs")
        func bareLFInCommands() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay(tls: "off")])) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                try c.send("MAIL FROM:<a@client.test>\nRCPT TO:<victim@example.com>\r\nRCPT TO:<victim@example.com>\r\n")
                #expect(try c.readReply().status == "500 5.5.2")
                #expect(try c.readReply().status == "503 5.5.1", "no MAIL was executed before the RCPT")
                let extra = try c.drain(wait: 0.3)
                #expect(extra.bytes.isEmpty && !extra.closed, "\(String(decoding: extra.bytes, as: UTF8.self))")
                #expect(try c.command("NOOP").code == 250)
                _ = try? c.command("QUIT")
                #expect(try await herald.queueList().isEmpty)
            }
        }
    }
}
