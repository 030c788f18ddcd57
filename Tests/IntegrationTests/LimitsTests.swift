import Foundation
import HeraldTestSupport
import Testing

/// Protocol limits over the wire: command line 512 and text line 1000 octets
/// (`500 5.5.2`), message size (`552 5.3.4`), recipients (`452 4.5.3`), NUL bytes, and
/// errors per session (`421 4.7.0`). After each one the server keeps serving.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct Limits {
        static let options: HeraldProcess.Options = {
            var o = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            o.maxMessageSize = 100_000
            o.maxRecipients = 5
            return o
        }()

        @Test("a command line over 512 octets gets 500 5.5.2 and the session goes on")
        func longCommandLine() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                let long = try c.command("NOOP " + String(repeating: "x", count: 600))
                #expect(long.status == "500 5.5.2", "\(long)")
                // Exactly 512 octets with the CRLF is fine; 513 is not.
                #expect(try c.command("NOOP " + String(repeating: "y", count: 505)).code == 250)
                #expect(try c.command("NOOP " + String(repeating: "y", count: 506)).status == "500 5.5.2")
                // A huge line arriving in pieces is one error, not one per piece, and is never executed.
                try c.send("MAIL FROM:<" + String(repeating: "z", count: 20_000))
                try c.send(String(repeating: "z", count: 20_000) + "@client.test>\r\n")
                #expect(try c.readReply().status == "500 5.5.2")
                #expect(try c.command("RCPT TO:<rcpt@example.com>").status == "503 5.5.1", "the long MAIL did not run")
                let ok = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: TestMessage.make(tag: "long-cmd"))
                #expect(ok.code == 250, "\(ok)")
                c.close()
                await IT.expectServesNormally(herald)
            }
        }

        @Test("a text line over 1000 octets gets 500 5.5.2 after the data, nothing is queued")
        func longTextLine() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                var message = TestMessage.make(tag: "long-line")
                message += Array((String(repeating: "a", count: 1200) + "\r\n").utf8)
                let reply = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: message)
                #expect(reply.status == "500 5.5.2", "\(reply)")
                // 999 octets + CRLF is one too many.
                var tooLong = TestMessage.make(tag: "999")
                tooLong += Array((String(repeating: "c", count: 999) + "\r\n").utf8)
                let r999 = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: tooLong)
                #expect(r999.status == "500 5.5.2", "\(r999)")
                // 998 octets + CRLF is the longest legal line.
                var legal = TestMessage.make(tag: "max-line")
                legal += Array((String(repeating: "b", count: 998) + "\r\n").utf8)
                let ok = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: legal)
                #expect(ok.code == 250, "\(ok)")
                if let id = ok.queueID {
                    #expect(herald.storedMessage(id).map { Array($0.suffix(legal.count)) == legal } == true)
                }
                #expect(try await herald.queueList().count == 1)
                c.close()
                await IT.expectServesNormally(herald)
            }
        }

        @Test("a message over max_message_size gets 552 5.3.4 (SIZE= at MAIL, or after the data)")
        func oversizeMessage() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                let ehlo = try c.greetAndEhlo()
                #expect(ehlo.lines.contains("SIZE 100000"), "\(ehlo)")
                #expect(try c.command("MAIL FROM:<s@client.test> SIZE=100001").status == "552 5.3.4")
                var big = TestMessage.make(tag: "too-big")
                let line = Array((String(repeating: "0123456789", count: 9) + "\r\n").utf8)
                while big.count < 150_000 { big += line }
                let reply = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: big)
                #expect(reply.status == "552 5.3.4", "\(reply)")
                #expect(try await herald.queueList().isEmpty)
                // Just under the limit (Herald's own header lines do not count against it).
                var fits = TestMessage.make(tag: "fits")
                while fits.count + line.count <= 99_000 { fits += line }
                let ok = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: fits)
                #expect(ok.code == 250, "\(ok)")
                c.close()
                await IT.expectServesNormally(herald)
            }
        }

        @Test("the recipient after max_recipients gets 452 4.5.3; the first ones are delivered")
        func tooManyRecipients() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                #expect(try c.command("MAIL FROM:<s@client.test>").code == 250)
                for i in 1...5 {
                    #expect(try c.command("RCPT TO:<r\(i)@example.com>").code == 250)
                }
                #expect(try c.command("RCPT TO:<r6@example.com>").status == "452 4.5.3")
                #expect(try c.command("RCPT TO:<r7@example.com>").status == "452 4.5.3")
                #expect(try c.command("DATA").code == 354)
                try c.send(TestMessage.wire(TestMessage.make(tag: "five-rcpts")))
                let reply = try c.readReply()
                #expect(reply.code == 250, "\(reply)")
                let list = try await herald.queueList()
                #expect(list.first?.recipients.map(\.address) == (1...5).map { "r\($0)@example.com" }, "\(list)")
                c.close()
                await IT.expectServesNormally(herald)
            }
        }

        /// RFC 5321 §4.5.3.1.8 with PIPELINING: a client that writes 1,500 RCPTs and DATA
        /// at once (max_recipients 1,000, max_errors 20) gets 1,000 × 250 and 500 × 452
        /// 4.5.3, which stay within the overshoot allowance, so its DATA goes through and
        /// the 1,000 accepted recipients are queued.
        @Test("1,500 pipelined RCPTs: 1,000 accepted, 500 × 452 4.5.3 without a disconnect, the message queued")
        func pipelinedOvershoot() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.maxRecipients = 1000
            options.maxErrors = 20
            try await HeraldProcess.with(options) { herald in
                let c = try SMTPTestClient(port: herald.port(), timeout: 30)
                try c.greetAndEhlo()
                var batch = "MAIL FROM:<s@client.test>\r\n"
                for i in 0..<1500 { batch += "RCPT TO:<r\(i)@example.com>\r\n" }
                batch += "DATA\r\n"
                try c.send(batch)
                var statuses: [String: Int] = [:]
                for _ in 0..<1502 { statuses[try c.readReply().status, default: 0] += 1 }
                #expect(statuses == ["250 2.1.0": 1, "250 2.1.5": 1000, "452 4.5.3": 500, "354": 1], "\(statuses)")
                try c.send(TestMessage.wire(TestMessage.make(tag: "overshoot")))
                let reply = try c.readReply()
                #expect(reply.code == 250, "\(reply)")
                let list = try await herald.queueList()
                #expect(list.first?.recipients.count == 1000, "\(list.first?.recipients.count ?? 0)")
                c.close()
            }
        }

        @Test("NUL bytes: 500 5.5.2 in a command, 550 5.6.0 in the data")
        func nulBytes() async throws {
            try await HeraldProcess.with(Self.options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                try c.send(Array("NOOP".utf8) + [0] + Array("\r\n".utf8))
                #expect(try c.readReply().status == "500 5.5.2")
                try c.send(Array("MAIL FROM:<s@client".utf8) + [0] + Array(".test>\r\n".utf8))
                #expect(try c.readReply().code / 100 == 5)
                var message = TestMessage.make(tag: "nul")
                message += Array("before".utf8) + [0] + Array("after\r\n".utf8)
                let reply = try c.sendMail(from: "s@client.test", to: ["r@example.com"], message: message)
                #expect(reply.status == "550 5.6.0", "\(reply)")
                #expect(try await herald.queueList().isEmpty)
                c.close()
                await IT.expectServesNormally(herald)
            }
        }

        @Test("more than max_errors errors: 421 4.7.0 and the connection is closed")
        func tooManyErrors() async throws {
            var options = Self.options
            options.maxErrors = 5
            try await HeraldProcess.with(options) { herald in
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                // Pipelined junk: five error replies, then 421, then nothing (the rest is not read).
                try c.send(String(repeating: "XYZZY\r\n", count: 10) + "NOOP\r\n")
                for _ in 1...5 {
                    let r = try c.readReply()
                    #expect(r.code / 100 == 5, "\(r)")
                }
                let last = try c.readReply()
                #expect(last.status == "421 4.7.0", "\(last)")
                let rest = try c.waitForClose(timeout: 5)
                #expect(rest.closed && rest.received.isEmpty, "\(rest)")
                await IT.expectServesNormally(herald)
            }
        }
    }
}
