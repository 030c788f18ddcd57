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
        /// When the manager was started, in seconds since 1970 (the sink's clock).
        let started: Double
    }

    /// `preload`: messages committed to the spool before the manager starts (its start-up
    /// scan finds them all at once, however slow the commits are).
    static func withManager(preload: [(String, String, SendPolicy?)] = [],
                            _ body: (Harness) async throws -> Void) async throws {
        let dir = try TemporaryDirectory.make(prefix: "herald-policy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = try await SinkProcess()
        let spool = try Spool(path: dir + "/spool")
        for (rcpt, tag, policy) in preload {
            _ = try await spool.store(message: message(tag), envelope: envelope(rcpt, policy))
        }
        var config = DeliveryConfiguration(heloName: "herald.test")
        config.routes = [Route(pattern: DomainPattern("*")!, host: "127.0.0.1", port: sink.port, tls: .off)]
        config.timeouts = SMTPClientTimeouts(all: .seconds(10))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let manager = QueueManager(spool: spool, config: config, resolver: try ZoneResolver(zone: ""),
                                   group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let started = Date().timeIntervalSince1970
        let runner = Task { await manager.run() }
        do {
            try await body(Harness(spool: spool, manager: manager, sink: sink, started: started))
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

    static func envelope(_ rcpt: String, _ policy: SendPolicy?) -> Envelope {
        Envelope(
            id: QueueID.generate(), arrival: Date(), sender: "news@client.test",
            origin: EnvelopeOrigin(listener: "campaign", clientAddress: "expander", authenticatedUser: "1",
                                   helo: nil, tls: false),
            recipients: [EnvelopeRecipient(address: rcpt)], tenant: "1", campaign: policy == nil ? nil : "1",
            sendPolicy: policy)
    }

    /// A message whose Message-ID is `<tag@client.test>`.
    static func message(_ tag: String) -> [UInt8] {
        Array("Message-ID: <\(tag)@client.test>\r\nSubject: \(tag)\r\n\r\nbody\r\n".utf8)
    }

    /// Commits a one-recipient message and hands it to the running manager.
    static func submit(_ h: Harness, to rcpt: String, tag: String, policy: SendPolicy?) async throws -> QueueID {
        let stored = try await h.spool.store(message: message(tag), envelope: envelope(rcpt, policy))
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
        // Ten campaign messages over two domains wait in the spool when the manager starts;
        // three other messages to one of those domains arrive right after.
        let policy = SendPolicy(rate: Rate("4/s"), rateKey: "campaign:1")
        let campaign = (0..<10).map { i in ("r\(i)@\(i % 2 == 0 ? "a" : "b").test", "paced\(i)", Optional(policy)) }
        try await Self.withManager(preload: campaign) { h in
            for i in 0..<3 {
                _ = try await Self.submit(h, to: "t\(i)@a.test", tag: "plain\(i)", policy: nil)
            }
            #expect(await h.sink.waitForMessages(13, timeout: 60) == 13)
            let index = h.sink.index()
            let paced = index.filter { $0.message_id.hasPrefix("<paced") }.map(\.time).sorted()
            let plain = index.filter { $0.message_id.hasPrefix("<plain") }.map(\.time)
            #expect(paced.count == 10 && plain.count == 3)
            // 10 messages at 4/s with no burst: the last leaves nine intervals of 0.25 s
            // after the first could, so it cannot reach the sink sooner than 2.25 s after
            // the manager started. (Measured from the start, not from the first arrival:
            // a first delivery slowed by a loaded machine narrows the span between
            // arrivals without any pacing being wrong.)
            let last = paced.last! - h.started
            #expect(last >= 2.0, "the last paced message arrived \(last) s after the start")
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
