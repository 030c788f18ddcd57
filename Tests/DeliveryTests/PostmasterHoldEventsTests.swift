@testable import Delivery
import DNS
import Foundation
import HeraldTestSupport
import Logging
import NIOPosix
import Spool
import Testing

/// What the queue manager reports when the postmaster moves a message with
/// `herald queue hold|release|delete` (the spool's own moves, as the CLI makes them):
/// `held`, then `released` or `deleted`, for the recipients still waiting; a cancelled
/// campaign's held mail is removed from `hold/` like its queued mail. No delivery runs
/// (the index is loaded and rescanned; nothing is dispatched).
@Suite struct PostmasterHoldEventsTests {
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [DeliveryOutcomeEvent] = []
        func add(_ e: DeliveryOutcomeEvent) { lock.withLock { list.append(e) } }
        /// The events since the last call.
        func take() -> [DeliveryOutcomeEvent] { lock.withLock { defer { list = [] }; return list } }
    }

    struct Fixture {
        let dir: String
        let spool: Spool
        let manager: QueueManager
        let collected: Collected
    }

    static func withManager(prepare: (Spool) async throws -> Void = { _ in },
                            _ body: (Fixture) async throws -> Void) async throws {
        let dir = try TemporaryDirectory.make(prefix: "herald-hold-events")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try Spool(path: dir + "/spool")
        try await prepare(spool)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let collected = Collected()
        var config = DeliveryConfiguration(heloName: "herald.test")
        config.logPath = dir + "/delivery.jsonl"
        let manager = QueueManager(spool: spool, config: config, resolver: try ZoneResolver(zone: ""),
                                   group: MultiThreadedEventLoopGroup.singleton, logger: logger,
                                   onOutcome: { collected.add($0) })
        try await body(Fixture(dir: dir, spool: spool, manager: manager, collected: collected))
    }

    /// A campaign message to two recipients, the second already deferred once.
    static func store(_ spool: Spool, campaign: String = "7") async throws -> QueueID {
        var deferred = EnvelopeRecipient(address: "b@dest.test")
        deferred.state = .deferred
        deferred.attempts = 1
        let envelope = Envelope(
            id: QueueID.generate(), arrival: Date(), sender: "news+c\(campaign)-s9@client.test",
            origin: EnvelopeOrigin(listener: "campaign", clientAddress: "expander", authenticatedUser: "3",
                                   helo: nil, tls: false),
            recipients: [EnvelopeRecipient(address: "a@dest.test"), deferred], body: "8BITMIME", smtputf8: false,
            tenant: "3", campaign: campaign)
        return try await spool.store(message: Array("Subject: x\r\n\r\nbody\r\n".utf8), envelope: envelope).id
    }

    @Test("hold, release, hold again and delete from hold: held, released, held, deleted")
    func holdReleaseDelete() async throws {
        try await Self.withManager { f in
            let id = try await Self.store(f.spool)
            await f.manager.loadIndex()
            #expect(f.collected.take().isEmpty, "a queued message reports nothing")

            try f.spool.move(id, from: .queue, to: .hold)
            await f.manager.scan()
            let held = f.collected.take()
            #expect(held.map(\.result) == [.held, .held])
            #expect(held.map(\.recipient) == ["a@dest.test", "b@dest.test"])
            #expect(held.map(\.wasDeferred) == [false, true], "a deferred recipient stays known as deferred")
            #expect(held.allSatisfy { $0.campaign == "7" && $0.queueID == id.rawValue && $0.reply == "held by the postmaster" })
            await f.manager.scan()
            #expect(f.collected.take().isEmpty, "a message still in hold/ is reported once")

            try f.spool.move(id, from: .hold, to: .queue)
            await f.manager.scan()
            let released = f.collected.take()
            #expect(released.map(\.result) == [.released, .released])
            #expect(await f.manager.campaignTags() == ["7"], "a released message is indexed again")

            try f.spool.move(id, from: .queue, to: .hold)
            await f.manager.scan()
            #expect(f.collected.take().map(\.result) == [.held, .held])
            try f.spool.remove(id, from: .hold)
            await f.manager.scan()
            let deleted = f.collected.take()
            #expect(deleted.map(\.result) == [.deleted, .deleted])
            #expect(deleted.allSatisfy { $0.reply == "deleted from hold by the postmaster" })
            #expect(await f.manager.campaignTags().isEmpty)

            // The delivery log has every line, so a restart can replay them.
            let lines = try String(contentsOfFile: f.dir + "/delivery.jsonl", encoding: .utf8)
                .split(separator: "\n").compactMap { line -> String? in
                    let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    return object?["result"] as? String
                }
            #expect(lines == ["held", "held", "released", "released", "held", "held", "deleted", "deleted"])
        }
    }

    @Test("mail held while Herald was stopped is reported held at start, and a cancel removes it from hold/")
    func heldAtStartAndCancelled() async throws {
        var ids: [QueueID] = []
        try await Self.withManager(prepare: { spool in
            let held = try await Self.store(spool, campaign: "7")
            try spool.move(held, from: .queue, to: .hold)
            let other = try await Self.store(spool, campaign: "8")
            try spool.move(other, from: .queue, to: .hold)
            ids = [held, other]
        }) { f in
            await f.manager.loadIndex()
            let atStart = f.collected.take()
            #expect(atStart.count == 4 && atStart.allSatisfy { $0.result == .held })
            #expect(await f.manager.campaignTags() == ["7", "8"], "the control loop looks up held mail's campaigns too")

            let report: QueueManager.CampaignControlReport = try await f.manager.controlCampaigns(held: [], cancelled: ["7"])
            #expect(report.removed == 1)
            let cancelled = f.collected.take()
            #expect(cancelled.map(\.result) == [.cancelled, .cancelled])
            #expect(cancelled.allSatisfy { $0.queueID == ids[0].rawValue && $0.reply == "campaign 7 cancelled" })
            #expect(f.spool.locate(ids[0]) == nil, "the cancelled campaign's held message is gone")
            #expect(f.spool.locate(ids[1]) == .hold, "another campaign's held message stays")
            await f.manager.scan()
            #expect(f.collected.take().isEmpty, "the removal is not reported a second time as a deletion")
        }
    }
}
