import Foundation
import HeraldTestSupport
import Testing

/// swaks against Herald: `--pipeline`, `--tls`, `--tls-on-connect`, `--auth PLAIN/LOGIN`.
/// swaks's exit code says which phase failed (0 = mail accepted, 24 = no RCPT accepted,
/// 28 = AUTH failed); the transcript carries the `queued as` id.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct Swaks {
        static let options = HeraldProcess.Options(
            listeners: [.relay(), .submission(), .submission(tls: "implicit"), .untrustedRelay()],
            users: [.init("app", "secret")])

        struct Run {
            var result: CommandResult
            var queueID: String? {
                // "<-  250 2.0.0 Ok: queued as ID" (or "<~ " over TLS).
                for line in result.stdoutText.split(whereSeparator: \.isNewline) where line.contains("queued as ") {
                    if let r = line.range(of: "queued as ") {
                        return String(line[r.upperBound...].prefix { !$0.isWhitespace })
                    }
                }
                return nil
            }
        }

        func swaks(_ herald: HeraldProcess, port: Int, message: [UInt8], _ args: [String]) async throws -> Run {
            // swaks sends the file, then CRLF.CRLF: leave out the message's last CRLF.
            let file = try IT.writeTemp(Array(message.dropLast(2)), in: herald.directory,
                                        name: "swaks-\(UUID().uuidString).eml")
            let r = try await Command.run("swaks", [
                "--server", "127.0.0.1:\(port)", "--helo", "swaks.client.test",
                "--from", "sender@client.test", "--data", "@" + file, "--timeout", "15",
            ] + args, timeout: 60)
            return Run(result: r)
        }

        func expectStored(_ herald: HeraldProcess, _ run: Run, _ message: [UInt8], rcpts: [String], user: String?,
                          sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let id = try #require(run.queueID, "swaks saw queued as: \(run.result)", sourceLocation: sourceLocation)
            let list = try await herald.queueList()
            let entry = list.first { $0.id == id }
            #expect(entry?.recipients.map(\.address) == rcpts, "\(list)", sourceLocation: sourceLocation)
            #expect(entry?.sender == "sender@client.test", sourceLocation: sourceLocation)
            let stored = try #require(herald.storedMessage(id), sourceLocation: sourceLocation)
            #expect(TestMessage.problems(stored: stored, original: message, queueID: id) == [],
                    sourceLocation: sourceLocation)
            let env = try await herald.queueShow(id, ["--envelope"])
            let json = try JSONSerialization.jsonObject(with: Data(env.stdout)) as? [String: Any]
            let origin = json?["origin"] as? [String: Any]
            #expect(origin?["authenticatedUser"] as? String == user, "\(env.stdoutText)", sourceLocation: sourceLocation)
            #expect(origin?["helo"] as? String == "swaks.client.test", sourceLocation: sourceLocation)
        }

        @Test("--pipeline on the relay listener")
        func pipeline() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let message = TestMessage.make(tag: "swaks-pipeline", bodyLines: 40)
                let run = try await swaks(herald, port: herald.port(0), message: message,
                                          ["--to", "a@example.com,b@example.net,c@example.org", "--pipeline"])
                #expect(run.result.exitCode == 0, "\(run.result)")
                #expect(run.result.stdoutText.contains("PIPELINING"))
                try await expectStored(herald, run, message, rcpts: ["a@example.com", "b@example.net", "c@example.org"],
                                       user: nil)
            }
        }

        @Test("--tls --auth on the submission listener", arguments: ["PLAIN", "LOGIN"])
        func starttlsAuth(mechanism: String) async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let message = TestMessage.make(tag: "swaks-tls-\(mechanism)", withIDAndDate: false)
                let run = try await swaks(herald, port: herald.port(1), message: message, [
                    "--to", "x@example.com", "--tls", "--auth", mechanism, "--auth-user", "app",
                    "--auth-password", "secret", "--pipeline",
                ])
                #expect(run.result.exitCode == 0, "\(run.result)")
                #expect(run.result.stdoutText.contains("TLS started"), "\(run.result)")
                try await expectStored(herald, run, message, rcpts: ["x@example.com"], user: "app")
            }
        }

        @Test("--tls-on-connect on an implicit-TLS submission listener")
        func implicitTLS() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let message = TestMessage.make(tag: "swaks-tlsc")
                let run = try await swaks(herald, port: herald.port(2), message: message, [
                    "--to", "x@example.com", "--tls-on-connect", "--auth", "PLAIN", "--auth-user", "app",
                    "--auth-password", "secret",
                ])
                #expect(run.result.exitCode == 0, "\(run.result)")
                try await expectStored(herald, run, message, rcpts: ["x@example.com"], user: "app")
            }
        }

        @Test("swaks reports the refusals: wrong password (28), open relay (24), STARTTLS-less AUTH")
        func refusals() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let message = TestMessage.make(tag: "swaks-refused")
                let wrong = try await swaks(herald, port: herald.port(1), message: message, [
                    "--to", "x@example.com", "--tls", "--auth", "PLAIN", "--auth-user", "app",
                    "--auth-password", "not-the-password",
                ])
                #expect(wrong.result.exitCode == 28, "\(wrong.result)")
                #expect(wrong.result.stdoutText.contains("535 5.7.8"), "\(wrong.result)")

                let relay = try await swaks(herald, port: herald.port(3), message: message, ["--to", "victim@example.com"])
                #expect(relay.result.exitCode == 24, "\(relay.result)")
                #expect(relay.result.stdoutText.contains("554 5.7.1"), "\(relay.result)")

                // AUTH is not offered before STARTTLS: swaks gives up with its AUTH error.
                let plaintext = try await swaks(herald, port: herald.port(1), message: message, [
                    "--to", "x@example.com", "--auth", "PLAIN", "--auth-user", "app", "--auth-password", "secret",
                ])
                #expect(plaintext.result.exitCode == 28, "\(plaintext.result)")
                #expect(try await herald.queueList().isEmpty)
            }
        }
    }
}
