@testable import Delivery
import DNS
import Foundation
import HeraldTestSupport
import Logging
import NIOPosix
import Spool
import Testing

/// What `/metrics` reads from the queue manager: each message in one state (held, else
/// deferred, else queued) with its octets, and the destinations with the most messages
/// waiting, cut at the top N. The index is loaded from a prepared spool; nothing is
/// dispatched.
@Suite struct QueueMetricsSnapshotTests {
    static func store(_ spool: Spool, _ recipients: [String], deferred: Bool = false, campaign: String? = nil,
                      body: Int = 10) async throws -> Envelope {
        let envelope = Envelope(
            id: QueueID.generate(), arrival: Date(), sender: "app@client.test",
            origin: EnvelopeOrigin(listener: "127.0.0.1:2525", clientAddress: "127.0.0.1:5000", authenticatedUser: nil,
                                   helo: nil, tls: false),
            recipients: recipients.map { address in
                var r = EnvelopeRecipient(address: address)
                if deferred {
                    r.state = .deferred
                    r.attempts = 1
                    r.nextAttempt = Date().addingTimeInterval(3600)
                }
                return r
            },
            body: "8BITMIME", smtputf8: false, campaign: campaign)
        let message = Array("Subject: x\r\n\r\n\(String(repeating: "y", count: body))\r\n".utf8)
        return try await spool.store(message: message, envelope: envelope)
    }

    @Test("states, octets and the top destinations")
    func snapshot() async throws {
        let dir = try TemporaryDirectory.make(prefix: "herald-metrics-snapshot")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(path: dir + "/spool")
        var queued: [Envelope] = []
        for i in 0..<3 { queued.append(try await Self.store(spool, ["a\(i)@big.test"], body: 10 + i)) }
        for i in 0..<2 { queued.append(try await Self.store(spool, ["m\(i)@mid.test"], body: 100)) }
        // One message waits for two destinations: counted once in the spool, once for each.
        queued.append(try await Self.store(spool, ["both@big.test", "both@mid.test"], body: 7))
        let deferred = try await Self.store(spool, ["d@small.test"], deferred: true, body: 50)
        let paused = try await Self.store(spool, ["c@camp.test"], campaign: "7", body: 70)
        let onHold = try await Self.store(spool, ["h@big.test"], body: 30)
        try spool.move(onHold.id, from: .queue, to: .hold)
        try spool.setHeldCampaigns(["7"])

        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let manager = QueueManager(spool: spool, config: DeliveryConfiguration(heloName: "herald.test"),
                                   resolver: try ZoneResolver(zone: ""), group: MultiThreadedEventLoopGroup.singleton,
                                   logger: logger)
        await manager.loadIndex()
        let s = await manager.metricsSnapshot(topDestinations: 2)

        #expect(s.queued == .init(messages: 6, bytes: queued.map(\.size).reduce(0, +)))
        #expect(s.deferred == .init(messages: 1, bytes: deferred.size))
        #expect(s.held == .init(messages: 2, bytes: paused.size + onHold.size))
        #expect(s.destinations.map(\.name) == ["big.test", "mid.test"], "the top two, most first")
        #expect(s.destinations.map(\.messages) == [4, 3])
        #expect(s.destinationCount == 3, "big, mid and small; the paused campaign's and the held mail wait for no one")
        #expect(s.inFlight == 0)
        #expect(s.pool == .init(idle: 0, opened: 0, reused: 0))

        let all = await manager.metricsSnapshot(topDestinations: 10)
        #expect(all.destinations.map(\.name) == ["big.test", "mid.test", "small.test"])
        #expect(await manager.metricsSnapshot(topDestinations: 0).destinations.isEmpty)
    }
}
