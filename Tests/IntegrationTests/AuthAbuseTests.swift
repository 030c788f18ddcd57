import Foundation
import HeraldTestSupport
import Testing

/// Password guessing: each failed AUTH from one client address delays its `535 5.7.8`
/// by `auth_failure_delay` more than the last; other addresses are not slowed, the
/// right password still works, and AUTH is refused in plaintext unless allowed.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct AuthAbuse {
        static func plain(_ user: String, _ password: String) -> String {
            Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
        }

        /// Time from sending `AUTH PLAIN …` to its reply.
        static func timedAuth(_ c: SMTPTestClient, _ password: String) throws -> (WireReply, Double) {
            let start = Date()
            let r = try c.command("AUTH PLAIN " + plain("app", password))
            return (r, Date().timeIntervalSince(start))
        }

        @Test("failed AUTH replies slow down per client address; the right password still works")
        func bruteForceIsSlowed() async throws {
            var options = HeraldProcess.Options(listeners: [.submission(tls: "off", allowPlaintextAuth: true)],
                                                users: [.init("app", "secret")])
            options.authFailureDelay = "200ms"
            try await HeraldProcess.with(options) { herald in
                let attacker = try SMTPTestClient(port: herald.port(), source: "127.0.0.7")
                let ehlo = try attacker.greetAndEhlo()
                #expect(ehlo.lines.contains("AUTH PLAIN LOGIN"), "\(ehlo)")
                var delays: [Double] = []
                for _ in 1...4 {
                    let (r, t) = try Self.timedAuth(attacker, "guess-\(UUID().uuidString.prefix(6))")
                    #expect(r.status == "535 5.7.8", "\(r)")
                    delays.append(t)
                }
                #expect(delays[0] >= 0.15, "\(delays)")
                #expect(delays[3] >= 0.7, "the fourth failure waits about 4 × 200 ms: \(delays)")
                #expect(delays[3] > delays[0] + 0.4, "\(delays)")
                // Unauthenticated, the attacker cannot relay.
                #expect(try attacker.command("MAIL FROM:<a@client.test>").code == 250)
                #expect(try attacker.command("RCPT TO:<victim@example.com>").status == "554 5.7.1")
                // The same address in a new connection is still slowed (per address, not per session).
                let again = try SMTPTestClient(port: herald.port(), source: "127.0.0.7")
                try again.greetAndEhlo()
                let (r5, t5) = try Self.timedAuth(again, "another-guess")
                #expect(r5.status == "535 5.7.8" && t5 >= 0.9, "fifth failure from the address: \(t5) s")

                // Another address is not slowed by the attacker's failures.
                let other = try SMTPTestClient(port: herald.port(), source: "127.0.0.8")
                try other.greetAndEhlo()
                let (r1, t1) = try Self.timedAuth(other, "typo")
                #expect(r1.status == "535 5.7.8" && t1 < 0.6, "first failure elsewhere: \(t1) s")
                let (ok, _) = try Self.timedAuth(other, "secret")
                #expect(ok.status == "235 2.7.0", "\(ok)")
                let sent = try other.sendMail(from: "app@client.test", to: ["x@example.com"],
                                              message: TestMessage.make(tag: "after-auth"))
                #expect(sent.code == 250, "\(sent)")
                #expect(try await herald.queueList().count == 1)
                #expect(herald.log.contains("authentication failed"))
            }
        }

        @Test("AUTH before TLS is refused (538) when plaintext AUTH is not allowed, and not advertised")
        func noPlaintextAuth() async throws {
            let options = HeraldProcess.Options(listeners: [.submission(tls: "starttls")], users: [.init("app", "secret")])
            try await HeraldProcess.with(options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                let ehlo = try c.greetAndEhlo()
                #expect(!ehlo.lines.contains { $0.hasPrefix("AUTH") }, "\(ehlo)")
                #expect(ehlo.lines.contains("STARTTLS"), "\(ehlo)")
                let r = try c.command("AUTH PLAIN " + Self.plain("app", "secret"))
                #expect(r.status == "538 5.7.11", "the password is not accepted in clear: \(r)")
                let login = try c.command("AUTH LOGIN")
                #expect(login.status == "538 5.7.11", "\(login)")
                #expect(try c.command("MAIL FROM:<app@client.test>").code == 250)
                #expect(try c.command("RCPT TO:<x@example.com>").status == "554 5.7.1")
                c.close()
                #expect(!herald.log.contains("authenticated"), "no session got authenticated")
            }
        }
    }
}
