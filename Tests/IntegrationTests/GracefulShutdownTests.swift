import Foundation
import HeraldTestSupport
import Testing

/// SIGTERM: Herald stops accepting, lets the transaction in DATA finish (its `250` is
/// sent and the message is in the spool), answers idle sessions `421`, then exits 0.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct GracefulShutdown {
        @Test("SIGTERM: the client in DATA still gets 250, idle clients get 421, Herald exits 0")
        func sigterm() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.shutdownGrace = "15s"
            try await HeraldProcess.with(options) { herald in
                let port = herald.port()
                let inData = try SMTPTestClient(port: port)
                try inData.greetAndEhlo()
                #expect(try inData.command("MAIL FROM:<busy@client.test>").code == 250)
                #expect(try inData.command("RCPT TO:<r@example.com>").code == 250)
                #expect(try inData.command("DATA").code == 354)
                let message = TestMessage.make(tag: "in-flight-at-sigterm", bodyLines: 20)
                let wire = TestMessage.wire(message)
                let half = wire.count / 2
                try inData.send(Array(wire[..<half]))

                let idle = try SMTPTestClient(port: port)
                try idle.greetAndEhlo()
                let inTransaction = try SMTPTestClient(port: port)
                try inTransaction.greetAndEhlo()
                #expect(try inTransaction.command("MAIL FROM:<early@client.test>").code == 250)

                // Let Herald read the first half before the signal.
                try await Task.sleep(for: .milliseconds(200))
                herald.terminate()

                let idleReply = try idle.readReply(timeout: 5)
                #expect(idleReply.status == "421 4.3.2", "idle session: \(idleReply)")
                #expect(try idle.waitForClose(timeout: 5).closed)
                let txReply = try inTransaction.readReply(timeout: 5)
                #expect(txReply.status == "421 4.3.2", "session between MAIL and DATA: \(txReply)")

                // No new sessions once shutting down.
                var refused = false
                for _ in 0..<50 where !refused {
                    do {
                        let late = try SMTPTestClient(port: port, timeout: 2)
                        let r = try? late.readReply()
                        late.close()
                        if r == nil || r?.code == 421 { refused = true }
                    } catch {
                        refused = true
                    }
                    if !refused { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(refused, "new connections are not served after SIGTERM")
                #expect(herald.isRunning, "still running: a transaction is in DATA")

                // The rest of the message, a second later: still accepted.
                try await Task.sleep(for: .milliseconds(500))
                try inData.send(Array(wire[half...]))
                let reply = try inData.readReply(timeout: 10)
                #expect(reply.code == 250, "the transaction in DATA finishes: \(reply)\n\(herald.diagnostics())")
                let after = try inData.waitForClose(timeout: 5)
                #expect(after.closed, "then the session is closed: \(after.received)")
                #expect(after.received.isEmpty || after.received.hasPrefix("421"), "\(after.received)")

                let end = await herald.waitForExit(timeout: 10)
                #expect(end == Termination(status: 0, signaled: false), "exit: \(String(describing: end))\n\(herald.diagnostics())")

                let id = try #require(reply.queueID)
                let stored = try #require(herald.storedMessage(id), "the message is in the spool")
                #expect(TestMessage.problems(stored: stored, original: message, queueID: id) == [])
                #expect(herald.spoolIDs("queue") == [id])
                #expect(herald.spoolFiles("tmp").isEmpty)
            }
        }

        @Test("SIGTERM with no sessions: a prompt, clean exit; the restarted server finds the spool intact")
        func sigtermIdleServer() async throws {
            try await HeraldProcess.with(HeraldProcess.Options(listeners: [.relay(tls: "off")])) { herald in
                let ok = try SMTPTestClient.submit(port: herald.port(), message: TestMessage.make(tag: "before-stop"))
                #expect(ok.code == 250)
                let start = Date()
                let end = await herald.stop(timeout: 10)
                #expect(end == Termination(status: 0, signaled: false), "\(String(describing: end))")
                #expect(Date().timeIntervalSince(start) < 5)
                try await herald.restart()
                #expect(try await herald.queueList().map(\.id) == [ok.queueID].compactMap { $0 })
                await IT.expectServesNormally(herald)
            }
        }
    }
}
