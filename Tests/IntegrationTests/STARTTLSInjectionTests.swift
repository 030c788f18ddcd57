import Foundation
import HeraldTestSupport
import Testing

/// STARTTLS command injection (CVE-2011-0411 class): plaintext pipelined behind
/// STARTTLS must be discarded, never answered as if it had arrived over TLS; plaintext
/// sent while the handshake is pending must not be executed either.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct STARTTLSInjection {
        @Test("STARTTLS\\r\\nRSET\\r\\n in one packet: the RSET is never answered")
        func pipelinedRSET() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay()])) { herald in
                let r = try await IT.runJSON("starttls_injection.py", ["--port", "\(herald.port())", "--scenario", "pipelined-rset"])
                #expect(IT.reply(r["starttls"]).hasPrefix("220"), "\(r)")
                #expect(r["plaintext_after_220"] as? String == "", "no plaintext after the 220: \(r)")
                #expect(r["closed_before_handshake"] as? Bool == false, "\(r)")
                // The first reply over TLS is the EHLO's (250-mx.test …), not the RSET's "250 2.0.0 Ok".
                let first = r["first_reply_over_tls"] as? [Any]
                #expect(first?.first as? Int == 250, "\(r)")
                let lines = first?.last as? [String] ?? []
                #expect(lines.first == "mx.test" && lines.contains("PIPELINING") && !lines.contains("STARTTLS"), "\(r)")
                #expect(r["extra_after_ehlo"] as? String == "", "nothing else queued up over TLS: \(r)")
                #expect(IT.reply(r["end_of_data"]).hasPrefix("250 2.0.0 Ok: queued as "), "\(r)\n\(herald.diagnostics())")
                #expect(herald.log.contains("plaintext octets discarded"), "the discarded plaintext is logged")
                await IT.expectServesNormally(herald)
            }
        }

        @Test("plaintext commands while the TLS handshake is pending are not executed")
        func plaintextDuringHandshake() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay()])) { herald in
                let r = try await IT.runJSON("starttls_injection.py",
                                             ["--port", "\(herald.port())", "--scenario", "plaintext-during-handshake"])
                #expect(IT.reply(r["starttls"]).hasPrefix("220"), "\(r)")
                let received = r["received"] as? String ?? "?"
                #expect(!received.contains("250"), "no SMTP reply to the plaintext commands: \(received.debugDescription)")
                #expect(r["closed"] as? Bool == true, "the connection is closed: \(r)")
                #expect(try await herald.queueList().isEmpty)
                await IT.expectServesNormally(herald)
            }
        }

        @Test("an AUTH given in plaintext is forgotten after STARTTLS (RFC 3207 §4.2)")
        func authForgottenAfterSTARTTLS() async throws {
            let options = HeraldProcess.Options(listeners: [.submission(tls: "starttls", allowPlaintextAuth: true)],
                                                users: [.init("app", "secret")])
            try await HeraldProcess.with(options) { herald in
                let r = try await IT.runJSON("starttls_injection.py",
                                             ["--port", "\(herald.port())", "--scenario", "auth-before-starttls"])
                #expect(IT.reply(r["auth_plaintext"]).hasPrefix("235"), "\(r)")
                #expect(IT.reply(r["starttls"]).hasPrefix("220"), "\(r)")
                #expect(IT.reply(r["rcpt_before_auth"]).hasPrefix("554 5.7.1"), "the plaintext AUTH no longer counts: \(r)")
                #expect(IT.reply(r["auth_tls"]).hasPrefix("235"), "\(r)")
                #expect(IT.reply(r["rcpt_after_auth"]).hasPrefix("250"), "\(r)")
            }
        }
    }
}
