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

/// `QueueManager`'s `onOutcome` hook: one event per recipient outcome, with the
/// envelope's tenant and campaign tags, against the scripted server of
/// ``ScriptedServerTests``.
@Suite(.serialized) struct DeliveryEventsTests {
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [DeliveryOutcomeEvent] = []
        func add(_ e: DeliveryOutcomeEvent) { lock.withLock { list.append(e) } }
        var events: [DeliveryOutcomeEvent] { lock.withLock { list } }
    }

    static func run(mode: String, until done: @escaping @Sendable ([DeliveryOutcomeEvent]) -> Bool) async throws
        -> [DeliveryOutcomeEvent]
    {
        try await ScriptedServerTests.withServer(mode) { port in
            let dir = try TemporaryDirectory.make(prefix: "herald-events")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let spool = try Spool(path: dir + "/spool")
            var config = DeliveryConfiguration(heloName: "herald.test")
            config.routes = [Route(pattern: DomainPattern("*")!, host: "127.0.0.1", port: port, tls: .off)]
            config.timeouts = SMTPClientTimeouts(all: .seconds(5))
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            let collected = Collected()
            let manager = QueueManager(spool: spool, config: config, resolver: try ZoneResolver(zone: ""),
                                       group: MultiThreadedEventLoopGroup.singleton, logger: logger,
                                       onOutcome: { collected.add($0) })
            let runner = Task { await manager.run() }
            let envelope = Envelope(
                id: QueueID.generate(), arrival: Date(), sender: "news+c7-s9@client.test",
                origin: EnvelopeOrigin(listener: "campaign", clientAddress: "expander", authenticatedUser: "3",
                                       helo: nil, tls: false),
                recipients: [EnvelopeRecipient(address: "b@dest.test")], body: "8BITMIME", smtputf8: false,
                tenant: "3", campaign: "7")
            let stored = try await spool.store(message: Array("Subject: x\r\n\r\nbody\r\n".utf8), envelope: envelope)
            await manager.enqueue(stored)
            let deadline = Date().addingTimeInterval(30)
            while !done(collected.events) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            await manager.requestStop()
            await manager.shutdown(grace: .seconds(5))
            runner.cancel()
            _ = await runner.value
            return collected.events
        }
    }

    @Test func deliveredRecipientIsReported() async throws {
        let events = try await Self.run(mode: "ok") { !$0.isEmpty }
        let event = try #require(events.first)
        #expect(event.result == .delivered)
        #expect(event.recipient == "b@dest.test")
        #expect(event.tenant == "3" && event.campaign == "7")
        #expect(event.code == 250)
        #expect(event.firstAttempt && !event.wasDeferred && !event.isBounceMessage)
        #expect(!event.queueID.isEmpty)
    }

    @Test func failedRecipientCarriesItsStatusAndTheDSNIsFlagged() async throws {
        // The recipient is refused with 5.1.1; the DSN to the campaign's sender goes to
        // the same server and is refused too: its event is flagged as a bounce message.
        let events = try await Self.run(mode: "rcpt") { $0.count >= 2 }
        let original = try #require(events.first { !$0.isBounceMessage })
        #expect(original.result == .failed)
        #expect(original.code == 550 && original.enhanced == "5.1.1")
        #expect(original.campaign == "7")
        let dsn = try #require(events.first { $0.isBounceMessage })
        #expect(dsn.recipient == "news+c7-s9@client.test")
    }

    @Test func deferredRecipientIsReportedOnce() async throws {
        let events = try await Self.run(mode: "dot4") { !$0.isEmpty }
        let event = try #require(events.first)
        #expect(event.result == .deferred)
        #expect(event.code == 451 && event.enhanced == "4.3.0")
        #expect(event.firstAttempt && !event.wasDeferred)
    }
}
