import Foundation
import HeraldTestSupport
import Testing

/// Python's `smtplib` (Clients/smtplib_submit.py) against Herald: plain relay, STARTTLS +
/// AUTH PLAIN / LOGIN on a submission listener, SMTPUTF8. Each accepted message must then
/// be listed by `herald queue list --json` and printed by `herald queue show` byte for
/// byte after Herald's added lines.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct SmtplibClients {
        static let options: HeraldProcess.Options = {
            var o = HeraldProcess.Options(listeners: [.relay(), .submission()], users: [.init("app", "secret")])
            o.maxMessageSize = 100_000
            return o
        }()

        struct Steps {
            var steps: [(step: String, code: Int, text: String)]
            var raw: [String: Any]
            init(_ raw: [String: Any]) {
                self.raw = raw
                steps = (raw["steps"] as? [[String: Any]] ?? []).map {
                    ($0["step"] as? String ?? "", $0["code"] as? Int ?? 0, $0["text"] as? String ?? "")
                }
            }
            func code(_ step: String) -> Int? { steps.last { $0.step == step }?.code }
            func text(_ step: String) -> String { steps.last { $0.step == step }?.text ?? "" }
            var queueID: String? {
                let t = text("data")
                guard code("data") == 250, let r = t.range(of: "queued as ") else { return nil }
                return String(t[r.upperBound...].prefix { !$0.isWhitespace })
            }
        }

        func submit(_ herald: HeraldProcess, port: Int, message: [UInt8], sender: String, rcpts: [String],
                    extra: [String] = []) async throws -> Steps {
            let file = try IT.writeTemp(message, in: herald.directory, name: "message-\(UUID().uuidString).eml")
            var args = ["--port", "\(port)", "--sender", sender, "--message", file] + extra
            for r in rcpts { args += ["--rcpt", r] }
            return Steps(try await IT.runJSON("smtplib_submit.py", args))
        }

        /// The message is queued with this envelope, and `queue show` prints it exactly.
        func verifyQueued(_ herald: HeraldProcess, id: String, message: [UInt8], sender: String, rcpts: [String],
                          user: String?, tls: Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let list = try await herald.queueList()
            let entry = list.first { $0.id == id }
            #expect(entry != nil, "queue list --json shows \(id): \(list.map(\.id))", sourceLocation: sourceLocation)
            #expect(entry?.queue == "queue", sourceLocation: sourceLocation)
            #expect(entry?.sender == sender, sourceLocation: sourceLocation)
            #expect(entry?.recipients.map(\.address) == rcpts, sourceLocation: sourceLocation)
            #expect(entry?.recipients.allSatisfy { $0.state == "pending" } == true, sourceLocation: sourceLocation)

            let stored = try #require(herald.storedMessage(id), "the .msg of \(id) exists", sourceLocation: sourceLocation)
            #expect(TestMessage.problems(stored: stored, original: message, queueID: id) == [],
                    sourceLocation: sourceLocation)

            // `queue show ID`: envelope, then the stored message verbatim.
            let show = try await herald.queueShow(id)
            #expect(show.termination.succeeded, "\(show)", sourceLocation: sourceLocation)
            let marker = Array("*** MESSAGE ***\n".utf8)
            let printed = show.stdout.firstRange(of: marker).map { Array(show.stdout[$0.upperBound...]) }
            #expect(printed == stored, "queue show prints the message byte for byte", sourceLocation: sourceLocation)
            #expect(printed.map { TestMessage.problems(stored: $0, original: message, queueID: id) } == [],
                    sourceLocation: sourceLocation)

            // `--body` is the client's body exactly; `--envelope` is the JSON envelope.
            let body = try await herald.queueShow(id, ["--body"])
            let originalBody = message.firstRange(of: Array("\r\n\r\n".utf8)).map { Array(message[$0.upperBound...]) }
            #expect(body.stdout == originalBody, "queue show --body", sourceLocation: sourceLocation)
            let envelope = try await herald.queueShow(id, ["--envelope"])
            let json = try JSONSerialization.jsonObject(with: Data(envelope.stdout)) as? [String: Any]
            let origin = json?["origin"] as? [String: Any]
            #expect(json?["id"] as? String == id, sourceLocation: sourceLocation)
            #expect(json?["sender"] as? String == sender, sourceLocation: sourceLocation)
            #expect(origin?["authenticatedUser"] as? String == user, "\(envelope.stdoutText)", sourceLocation: sourceLocation)
            #expect(origin?["tls"] as? Bool == tls, "\(envelope.stdoutText)", sourceLocation: sourceLocation)
            let file = json?["messageFile"] as? [String: Any]
            #expect(file?["size"] as? Int == stored.count, sourceLocation: sourceLocation)
        }

        @Test("plain relay submission from a trusted address")
        func plainRelay() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let message = TestMessage.make(tag: "smtplib-plain")
                let r = try await submit(herald, port: herald.port(role: "relay"), message: message,
                                         sender: "sender@client.test", rcpts: ["a@example.com", "b@example.org"])
                let id = try #require(r.queueID, "250 queued as: \(r.steps)\n\(herald.diagnostics())")
                #expect(r.code("mail") == 250)
                try await verifyQueued(herald, id: id, message: message, sender: "sender@client.test",
                                       rcpts: ["a@example.com", "b@example.org"], user: nil, tls: false)
            }
        }

        @Test("STARTTLS + AUTH on the submission listener", arguments: ["PLAIN", "LOGIN", "LOGIN-NO-IR"])
        func submissionWithAuth(mechanism: String) async throws {
            try await HeraldProcess.with(Self.options) { herald in
                // Without Message-ID and Date: Herald adds both (after Received).
                let message = TestMessage.make(tag: "smtplib-\(mechanism.lowercased())", withIDAndDate: false)
                let r = try await submit(herald, port: herald.port(role: "submission"), message: message,
                                         sender: "app@client.test", rcpts: ["x@example.net"],
                                         extra: ["--starttls", "--auth", mechanism])
                let plain = r.raw["features_plain"] as? [String] ?? []
                let tls = r.raw["features_tls"] as? [String] ?? []
                #expect(plain.contains("starttls"), "STARTTLS offered in plaintext: \(plain)")
                #expect(!plain.contains("auth"), "AUTH not offered before TLS: \(plain)")
                #expect(tls.contains("auth") && !tls.contains("starttls"), "after TLS: \(tls)")
                #expect(r.code("starttls") == 220)
                #expect(r.code("auth") == 235, "\(r.steps)")
                let id = try #require(r.queueID, "250 queued as: \(r.steps)\n\(herald.diagnostics())")
                try await verifyQueued(herald, id: id, message: message, sender: "app@client.test",
                                       rcpts: ["x@example.net"], user: "app", tls: true)
                let stored = herald.storedMessage(id) ?? []
                let received = String(decoding: stored.prefix(300), as: UTF8.self)
                #expect(received.contains("with ESMTPSA id \(id)"), "Received names TLS + AUTH: \(received)")
                #expect(received.contains("Message-ID: <\(id)@mx.test>"), "generated Message-ID: \(received)")
            }
        }

        @Test("submission refuses unauthenticated mail and wrong passwords")
        func submissionRefusals() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let message = TestMessage.make(tag: "smtplib-refused")
                let port = herald.port(role: "submission")
                let noAuth = try await submit(herald, port: port, message: message, sender: "app@client.test",
                                              rcpts: ["x@example.net"], extra: ["--starttls"])
                #expect(noAuth.code("rcpt") == 554 && noAuth.text("rcpt").hasPrefix("5.7.1"), "\(noAuth.steps)")
                #expect(noAuth.code("data") == nil)
                let wrong = try await submit(herald, port: port, message: message, sender: "app@client.test",
                                             rcpts: ["x@example.net"],
                                             extra: ["--starttls", "--auth", "PLAIN", "--password", "wrong"])
                #expect(wrong.code("auth") == 535 && wrong.text("auth").hasPrefix("5.7.8"), "\(wrong.steps)")
                #expect(wrong.code("data") == nil)
                #expect(try await herald.queueList().isEmpty, "nothing queued")
            }
        }

        @Test("SMTPUTF8: UTF-8 mailboxes and headers")
        func smtputf8() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let sender = "josé.müller@client.test"
                let rcpts = ["用户@example.com", "δοκιμή@example.org"]
                let text = "From: José Müller <\(sender)>\r\nTo: <\(rcpts[0])>, <\(rcpts[1])>\r\n"
                    + "Subject: Grüße, 你好\r\nMessage-ID: <utf8-\(UUID().uuidString)@client.test>\r\n"
                    + "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                    + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                    + "Ünïcödé body — ✓\r\n.a line with a leading dot\r\n"
                let message = Array(text.utf8)
                let r = try await submit(herald, port: herald.port(role: "relay"), message: message, sender: sender,
                                         rcpts: rcpts, extra: ["--smtputf8"])
                #expect((r.raw["features_plain"] as? [String] ?? []).contains("smtputf8"))
                let id = try #require(r.queueID, "250 queued as: \(r.steps)\n\(herald.diagnostics())")
                try await verifyQueued(herald, id: id, message: message, sender: sender, rcpts: rcpts,
                                       user: nil, tls: false)
                let envelope = try await herald.queueShow(id, ["--envelope"])
                let json = try JSONSerialization.jsonObject(with: Data(envelope.stdout)) as? [String: Any]
                #expect(json?["smtputf8"] as? Bool == true, "\(envelope.stdoutText)")
                let head = String(decoding: (herald.storedMessage(id) ?? []).prefix(200), as: UTF8.self)
                #expect(head.contains("with UTF8SMTP id"), "\(head)")
            }
        }

        @Test("a UTF-8 mailbox without SMTPUTF8 is refused")
        func utf8WithoutSMTPUTF8() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port(role: "relay"))
                try c.greetAndEhlo()
                #expect(try c.command("MAIL FROM:<sender@client.test>").code == 250)
                let rcpt = try c.command("RCPT TO:<用户@example.com>")
                #expect(rcpt.status == "553 5.6.7", "\(rcpt)")
                c.close()
                await IT.expectServesNormally(herald)
            }
        }
    }
}
