import Foundation
import HeraldTestSupport
import Testing

/// `openssl s_client -starttls smtp`: OpenSSL's own STARTTLS negotiation, then a whole
/// (pipelined) transaction typed over the TLS session.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct OpenSSLClient {
        @Test("openssl s_client -starttls smtp: EHLO, MAIL, RCPT, DATA over TLS get 250 queued")
        func sClientStartTLS() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay()])) { herald in
                // s_client -crlf turns each LF into CRLF, so the input uses bare LFs.
                let tag = "s-client-\(UUID().uuidString.prefix(8))"
                let lines = [
                    "From: <openssl@client.test>", "To: <rcpt@example.com>", "Subject: \(tag)",
                    "Message-ID: <\(tag)@client.test>", "Date: Mon, 23 Nov 2026 10:00:00 +0000", "",
                    "typed over TLS by openssl s_client", "second line",
                ]
                let input = "EHLO sclient.test\nMAIL FROM:<openssl@client.test>\nRCPT TO:<rcpt@example.com>\nDATA\n"
                    + lines.joined(separator: "\n") + "\n.\nQUIT\n"
                let r = try await Command.run("openssl", [
                    "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:\(herald.port())", "-quiet", "-crlf",
                    "-servername", "mx.test",
                ], stdin: Array(input.utf8), timeout: 30)
                let out = r.stdoutText
                #expect(r.exitCode == 0, "\(r)")
                // The first reply over TLS answers our EHLO; STARTTLS is no longer offered.
                let replies = out.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                #expect(replies.first?.hasPrefix("250-mx.test") == true, "\(out)")
                #expect(!replies.contains { $0.contains("STARTTLS") }, "\(out)")
                #expect(replies.contains("354 End data with <CR><LF>.<CR><LF>"), "\(out)")
                #expect(replies.contains("221 2.0.0 Bye"), "\(out)")
                let queued = try #require(replies.first { $0.hasPrefix("250 2.0.0 Ok: queued as ") }, "\(r)\n\(herald.diagnostics())")
                let id = String(queued.dropFirst("250 2.0.0 Ok: queued as ".count))
                let original = Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
                let stored = try #require(herald.storedMessage(id))
                #expect(TestMessage.problems(stored: stored, original: original, queueID: id) == [])
                let env = try await herald.queueShow(id, ["--envelope"])
                let json = try JSONSerialization.jsonObject(with: Data(env.stdout)) as? [String: Any]
                #expect((json?["origin"] as? [String: Any])?["tls"] as? Bool == true, "\(env.stdoutText)")
                #expect(String(decoding: stored.prefix(200), as: UTF8.self).contains("with ESMTPS id \(id)"))
            }
        }
    }
}
