import Foundation
import HeraldTestSupport
import Testing

/// Herald is never an open relay: an unauthenticated client outside the trusted
/// networks gets `554 5.7.1` for every recipient, however the address is dressed up
/// (`%` hack, bang path, quoted local part, source route, address literal), and nothing
/// is spooled. Loopback is made untrusted with `trusted_networks = ["10.0.0.0/8"]`.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct OpenRelay {
        static let options = HeraldProcess.Options(
            listeners: [.untrustedRelay(tls: "off"), .submission(tls: "off"), .relay(tls: "off")],
            users: [.init("app", "secret")])

        static let tricks = [
            "victim@example.com",
            "victim%example.com@mx.test",
            "victim%example.com@[127.0.0.1]",
            "example.com!victim@mx.test",
            "\"victim@example.com\"@mx.test",
            "\"victim%example.com\"@mx.test",
            "@mx.test:victim@example.com",
            "@mx.test,@relay.example:victim@example.com",
            "Postmaster",
            "postmaster@mx.test",
        ]

        /// One session per listener: every trick refused, then DATA refused, nothing queued.
        func attempt(port: Int) throws -> [String] {
            var problems: [String] = []
            let c = try SMTPTestClient(port: port)
            defer { c.close() }
            try c.greetAndEhlo("relay-abuser.test")
            let mail = try c.command("MAIL FROM:<spammer@spam.test>")
            if mail.code != 250 { problems.append("MAIL: \(mail)") }
            for address in Self.tricks {
                let reply = try c.command("RCPT TO:<\(address)>")
                if reply.status != "554 5.7.1" { problems.append("RCPT TO:<\(address)> got \(reply), expected 554 5.7.1") }
            }
            let data = try c.command("DATA")
            if data.code / 100 != 5 { problems.append("DATA got \(data), expected a 5xx refusal") }
            if data.code == 354 {
                try c.send(TestMessage.wire(TestMessage.make(tag: "relayed")))
                problems.append("after the data: \(try c.readReply())")
            }
            _ = try? c.command("QUIT")
            return problems
        }

        @Test("unauthenticated relay attempts from an untrusted address get 554 5.7.1")
        func untrustedRelayListener() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let problems = try attempt(port: herald.port(0))
                #expect(problems == [])
                let queued = try await herald.queueList()
                #expect(queued.isEmpty, "nothing spooled")
                #expect(herald.spoolIDs("queue").isEmpty)
                await IT.expectServesNormally(herald, port: herald.port(2))
            }
        }

        @Test("unauthenticated relay attempts on the submission listener get 554 5.7.1")
        func submissionListener() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let problems = try attempt(port: herald.port(1))
                #expect(problems == [])
                let queued = try await herald.queueList()
                #expect(queued.isEmpty, "nothing spooled")
                await IT.expectServesNormally(herald, port: herald.port(2))
            }
        }

        @Test("pipelined relay attempt: every RCPT refused, DATA refused, the data is not read as commands")
        func pipelinedAttempt() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port(0))
                try c.greetAndEhlo()
                // RFC 2920 pipelining with the message right behind DATA, as spam tools do.
                try c.send("MAIL FROM:<spammer@spam.test>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b%example.com@mx.test>\r\n"
                    + "DATA\r\nSubject: spam\r\n\r\nspam\r\n.\r\nQUIT\r\n")
                #expect(try c.readReply().code == 250)
                #expect(try c.readReply().status == "554 5.7.1")
                #expect(try c.readReply().status == "554 5.7.1")
                let data = try c.readReply()
                #expect(data.code / 100 == 5 && data.code != 354, "\(data)")
                // The message lines are then unknown commands; the final QUIT still ends the session.
                let rest = try c.waitForClose(timeout: 5)
                #expect(rest.closed, "\(rest.received)")
                #expect(!rest.received.contains("queued"), "\(rest.received)")
                #expect(rest.received.contains("221 2.0.0"), "\(rest.received)")
                #expect(try await herald.queueList().isEmpty)
                await IT.expectServesNormally(herald, port: herald.port(2))
            }
        }
    }
}
