@testable import Delivery
import DNS
import Foundation
import HeraldTestSupport
import Logging
import NIOCore
import NIOPosix
import SMTPClient
import Spool
import Testing

/// The queue manager honours an envelope's send policy against a live sink: a policy
/// rate is one bucket over all domains of the campaign, paced messages do not hold up
/// other mail to the same destination, and a closed send window keeps a message waiting
/// (no attempt) until the window's next opening.
@Suite(.serialized) struct SendPolicyDeliveryTests {
    struct Harness {
        let spool: Spool
        let manager: QueueManager
        let sink: SinkProcess
    }

    static func withManager(_ body: (Harness) async throws -> Void) async throws {
        let dir = try TemporaryDirectory.make(prefix: "herald-policy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = try await SinkProcess()
        let spool = try Spool(path: dir + "/spool")
        var config = DeliveryConfiguration(heloName: "herald.test")
        config.routes = [Route(pattern: DomainPattern("*")!, host: "127.0.0.1", port: sink.port, tls: .off)]
        config.timeouts = SMTPClientTimeouts(all: .seconds(10))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let manager = QueueManager(spool: spool, config: config, resolver: try ZoneResolver(zone: ""),
                                   group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let runner = Task { await manager.run() }
        do {
            try await body(Harness(spool: spool, manager: manager, sink: sink))
        } catch {
            await manager.requestStop()
            await manager.shutdown(grace: .seconds(5))
            runner.cancel()
            await sink.stop()
            throw error
        }
        await manager.requestStop()
        await manager.shutdown(grace: .seconds(5))
        runner.cancel()
        _ = await runner.value
        await sink.stop()
    }

    /// Commits a one-recipient message whose Message-ID is `<tag@client.test>`.
    static func submit(_ h: Harness, to rcpt: String, tag: String, policy: SendPolicy?) async throws -> QueueID {
        let envelope = Envelope(
            id: QueueID.generate(), arrival: Date(), sender: "news@client.test",
            origin: EnvelopeOrigin(listener: "campaign", clientAddress: "expander", authenticatedUser: "1",
                                   helo: nil, tls: false),
            recipients: [EnvelopeRecipient(address: rcpt)], tenant: "1", campaign: policy == nil ? nil : "1",
            sendPolicy: policy)
        let message = "Message-ID: <\(tag)@client.test>\r\nSubject: \(tag)\r\n\r\nbody\r\n"
        let stored = try await h.spool.store(message: Array(message.utf8), envelope: envelope)
        await h.manager.enqueue(stored)
        return stored.id
    }

    /// `HH:MM` in UTC of `date`.
    static func clock(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.hour, .minute], from: date)
        return String(format: "%02d:%02d", c.hour!, c.minute!)
    }

    @Test func policyRateIsOneBucketOverAllDomainsAndDoesNotHoldUpOtherMail() async throws {
        try await Self.withManager { h in
            let policy = SendPolicy(rate: "5/s", rateKey: "campaign:1")
            for i in 0..<10 {
                _ = try await Self.submit(h, to: "r\(i)@\(i % 2 == 0 ? "a" : "b").test", tag: "paced\(i)", policy: policy)
            }
            let waiting = await h.manager.snapshot().paced["policy:campaign:1"] ?? 0
            #expect(waiting >= 5, "most paced messages wait for their slot at first")
            for i in 0..<3 {
                _ = try await Self.submit(h, to: "t\(i)@a.test", tag: "plain\(i)", policy: nil)
            }
            #expect(await h.sink.waitForMessages(13, timeout: 60) == 13)
            let index = h.sink.index()
            let paced = index.filter { $0.message_id.hasPrefix("<paced") }.map(\.time).sorted()
            let plain = index.filter { $0.message_id.hasPrefix("<plain") }.map(\.time)
            #expect(paced.count == 10 && plain.count == 3)
            // 10 messages at 5/s with no burst: nine intervals of 0.2 s at least.
            let span = paced.last! - paced.first!
            #expect(span >= 1.6, "paced messages arrived over \(span) s")
            // Mail without the policy, submitted after, does not queue behind the campaign.
            #expect(plain.max()! < paced.last!)
            #expect(await h.manager.snapshot().paced.isEmpty)
        }
    }

    @Test func closedWindowWaitsForItsOpeningWhileOtherMailGoes() async throws {
        try await Self.withManager { h in
            let now = Date()
            let closed = try SendWindow(start: Self.clock(now.addingTimeInterval(7200)),
                                        end: Self.clock(now.addingTimeInterval(10800)), timeZone: "UTC")
            let open = try SendWindow(start: Self.clock(now.addingTimeInterval(-3600)),
                                      end: Self.clock(now.addingTimeInterval(3600)), timeZone: "UTC")
            let held = try await Self.submit(h, to: "w@a.test", tag: "closed",
                                             policy: SendPolicy(rateKey: "campaign:1", window: closed))
            _ = try await Self.submit(h, to: "x@a.test", tag: "open", policy: SendPolicy(window: open))
            _ = try await Self.submit(h, to: "y@a.test", tag: "plain", policy: nil)
            #expect(await h.sink.waitForMessages(2, timeout: 30) == 2)
            try await Task.sleep(for: .milliseconds(500))
            let ids = Set(h.sink.index().map(\.message_id))
            #expect(ids == ["<open@client.test>", "<plain@client.test>"])
            // It waits for the window's next opening, with no attempt made or counted.
            let due = try #require(await h.manager.waitingUntil(held))
            #expect(due == closed.nextOpening(atOrAfter: now) || due == closed.nextOpening(atOrAfter: Date()))
            #expect(due > Date().addingTimeInterval(7000))
            let envelope = try h.spool.loadEnvelope(held, in: .queue)
            #expect(envelope.recipients[0].state == .pending && envelope.recipients[0].attempts == 0)
        }
    }
}
