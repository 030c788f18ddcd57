import Foundation
import HeraldTestSupport
import Testing

/// Time: talking before the greeting (`554`), drip-feeding clients (served: each byte
/// resets the time-out), idle clients (`421 4.4.2` after `command_timeout` /
/// `data_timeout`).
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct Timing {
        @Test("commands sent before the greeting get 554 and the connection is closed")
        func talkingBeforeGreeting() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.greetingDelay = "1s"
            try await HeraldProcess.with(options) { herald in
                let eager = try SMTPTestClient(port: herald.port())
                try eager.send("EHLO eager.test\r\nMAIL FROM:<spam@spam.test>\r\n")
                let reply = try eager.readReply(timeout: 5)
                #expect(reply.code == 554, "\(reply)")
                let rest = try eager.waitForClose(timeout: 3)
                #expect(rest.closed && rest.received.isEmpty, "closed, nothing else: \(rest)")

                // A patient client waits for the 220 (about a second) and is served.
                let start = Date()
                let patient = try SMTPTestClient(port: herald.port())
                let greeting = try patient.readReply(timeout: 5)
                let waited = Date().timeIntervalSince(start)
                #expect(greeting.code == 220)
                #expect(waited >= 0.8, "the greeting waited for greeting_delay: \(waited) s")
                #expect(try patient.command("EHLO patient.test").code == 250)
                let ok = try patient.sendMail(from: "p@client.test", to: ["r@example.com"],
                                              message: TestMessage.make(tag: "patient"))
                #expect(ok.code == 250, "\(ok)")
                #expect(try await herald.queueList().count == 1)
            }
        }

        static let timeouts: HeraldProcess.Options = {
            var o = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            o.commandTimeout = "2s"
            o.dataTimeout = "2s"
            return o
        }()

        @Test("a client dripping one byte every few ms is served, though the session outlasts the time-outs")
        func slowClient() async throws {
            try await HeraldProcess.with(Self.timeouts) { herald in
                let start = Date()
                let c = try SMTPTestClient(port: herald.port())
                #expect(try c.readReply().code == 220)
                let interval = 0.004
                func slowCommand(_ line: String) throws -> WireReply {
                    try c.drip(Array((line + "\r\n").utf8), interval: interval)
                    return try c.readReply()
                }
                #expect(try slowCommand("EHLO slow.test").code == 250)
                #expect(try slowCommand("MAIL FROM:<slow@client.test>").code == 250)
                #expect(try slowCommand("RCPT TO:<r@example.com>").code == 250)
                #expect(try slowCommand("DATA").code == 354)
                let message = TestMessage.make(tag: "slow", bodyLines: 10)
                try c.drip(TestMessage.wire(message), interval: interval)
                let reply = try c.readReply()
                let elapsed = Date().timeIntervalSince(start)
                #expect(reply.code == 250, "\(reply)")
                #expect(elapsed > 2.0, "the session (\(elapsed) s) outlasted the 2 s time-outs")
                if let id = reply.queueID {
                    #expect(herald.storedMessage(id).map { TestMessage.problems(stored: $0, original: message) } == [])
                }
                _ = try? c.command("QUIT")
            }
        }

        @Test("idle clients get 421 4.4.2 after command_timeout / data_timeout")
        func idleClients() async throws {
            try await HeraldProcess.with(Self.timeouts) { herald in
                let start = Date()
                let idle = try SMTPTestClient(port: herald.port())
                try idle.greetAndEhlo()
                let inData = try SMTPTestClient(port: herald.port())
                try inData.greetAndEhlo()
                #expect(try inData.command("MAIL FROM:<s@client.test>").code == 250)
                #expect(try inData.command("RCPT TO:<r@example.com>").code == 250)
                #expect(try inData.command("DATA").code == 354)
                try inData.send("Subject: half a message\r\n\r\nand then silence")

                let r1 = try idle.readReply(timeout: 8)
                let t1 = Date().timeIntervalSince(start)
                #expect(r1.status == "421 4.4.2", "\(r1)")
                #expect(t1 >= 1.5 && t1 < 6, "after about 2 s: \(t1)")
                #expect(try idle.waitForClose(timeout: 3).closed)

                let r2 = try inData.readReply(timeout: 8)
                #expect(r2.status == "421 4.4.2", "\(r2)")
                #expect(try inData.waitForClose(timeout: 3).closed)
                #expect(try await herald.queueList().isEmpty, "the half message is not queued")
                await IT.expectServesNormally(herald)
            }
        }
    }
}
