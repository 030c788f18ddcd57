import Foundation
import Synchronization
import HeraldTestSupport
import Spool
import Testing

@testable import Campaigns
@testable import CampaignStore
@testable import Postgres
@testable import Rendering

@Suite("Campaign expansion", .serialized, .enabled(if: PostgresServer.isAvailable))
struct CampaignExpansionTests {
    @Test func expandsActiveUnsuppressedOncePersonalized() async throws {
        try await CampaignFixture.with { f in
            let campaign = try await f.createCampaign()
            let store = CampaignStore(f.db, chunkSize: 100)
            let sending = try #require(try await store.send(tenant: f.tenant, id: campaign.id))
            #expect(sending.status == .sending)
            let expected = f.expected
            let planned = try #require(try await store.stats(tenant: f.tenant, id: campaign.id))
            #expect(planned.total == Int64(expected.count))
            #expect(planned.chunks == Int64((expected.count + 99) / 100))

            let started = Date()
            let report = try await f.expander().run(campaign: campaign.id)
            let seconds = Date().timeIntervalSince(started)
            print("campaign expansion: \(report.committed) messages in \(String(format: "%.2f", seconds)) s = "
                + "\(Int(Double(report.committed) / seconds)) messages/s (debug build, rendered and committed)")
            #expect(report.committed == expected.count)
            #expect(report.status == .sending, "expanded, but no recipient has an outcome yet")

            let envelopes = try f.spooled(campaign: campaign.id)
            let addresses = envelopes.map { $0.recipients[0].address }
            #expect(addresses.count == expected.count)
            #expect(Set(addresses) == expected)
            #expect(envelopes.allSatisfy { $0.tenant == f.tenant.description && $0.campaign == String(campaign.id) })
            // Queue ids are the deterministic ones and recorded per recipient.
            #expect(try await f.int("SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1 AND state = 'queued'",
                                    [String(campaign.id)]) == expected.count)
            #expect(try await f.int("""
                SELECT count(*) FROM campaign_recipients r JOIN subscribers s ON s.id = r.subscriber_id
                WHERE r.campaign_id = $1 AND r.queue_id IS NOT NULL
                """, [String(campaign.id)]) == expected.count)

            for n in [1, 7, 199, 201, 999] {
                let email = "user\(n)@example.com"
                let envelope = try #require(envelopes.first { $0.recipients[0].address == email })
                let text = String(decoding: try f.spool.loadMessage(envelope.id, in: .queue), as: UTF8.self)
                #expect(text.contains("Hello First\(n) Last\(n)!"), "message to \(email)")
                #expect(text.contains("Plan: plan\(n)"))
                #expect(text.contains("Subject: Hi First\(n)"))
                #expect(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"))
                // The link is signed for this subscriber, list and campaign.
                let token = try #require(text.range(of: "https://mail.example.test/u/").map { range in
                    String(text[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
                })
                let verified = try #require(UnsubscribeToken.verify(token, key: CampaignFixture.secret))
                #expect(verified.campaign == String(campaign.id) && verified.tenant == f.tenant.description)
            }

            let stats = try #require(try await store.stats(tenant: f.tenant, id: campaign.id))
            #expect(stats.status == .sending && stats.total == Int64(expected.count)
                    && stats.expanded == Int64(expected.count) && stats.chunksDone == stats.chunks)
            #expect(stats.sent == 0 && stats.bounced == 0)
        }
    }

    @Test func replayAfterCrashMakesNoDuplicate() async throws {
        try await CampaignFixture.with { f in
            let campaign = try await f.createCampaign()
            let store = CampaignStore(f.db, chunkSize: 100)
            _ = try await store.send(tenant: f.tenant, id: campaign.id)
            let expected = f.expected
            #expect(try await f.expander().run(campaign: campaign.id).committed == expected.count)
            let id = String(campaign.id)

            // Run again: nothing to do.
            let again = try await f.expander(node: "other").run(campaign: campaign.id)
            #expect(again.committed == 0 && again.chunks == 0)

            // A crash after the spool commit of chunk 0, before its checkpoint: its
            // recipients rows and counter bump never happened, the chunk is not done.
            try await f.db.execute("UPDATE campaigns SET status = 'sending', finished_at = NULL WHERE id = $1", [id])
            let lost = try await f.db.execute("""
                DELETE FROM campaign_recipients r USING campaign_chunks k
                WHERE k.campaign_id = $1 AND k.chunk_no = 0 AND r.campaign_id = k.campaign_id
                  AND r.subscriber_id BETWEEN k.first_subscriber_id AND k.last_subscriber_id
                """, [id])
            #expect(lost > 0)
            try await f.db.execute("UPDATE campaign_counters SET expanded = expanded - $2 WHERE campaign_id = $1",
                                   [id, String(lost)])
            // Chunk 1: done flag lost, its rows were written.
            try await f.db.execute("""
                UPDATE campaign_chunks SET done = false, claimed_by = NULL WHERE campaign_id = $1 AND chunk_no IN (0, 1)
                """, [id])
            let replay = try await f.expander(node: "restarted").run(campaign: campaign.id)
            #expect(replay.chunks == 2)
            #expect(replay.committed == 0)
            #expect(replay.alreadySpooled == lost)
            #expect(replay.status == .sending)

            let addresses = try f.spooled(campaign: campaign.id).map { $0.recipients[0].address }
            #expect(addresses.count == expected.count && Set(addresses) == expected)
            let stats = try #require(try await store.stats(tenant: f.tenant, id: campaign.id))
            #expect(stats.expanded == Int64(expected.count) && stats.status == .sending)

            // A claim that a dead node held is taken over once it expires.
            try await f.db.execute("UPDATE campaigns SET status = 'sending' WHERE id = $1", [id])
            try await f.db.execute("""
                UPDATE campaign_chunks SET done = false, claimed_by = 'dead', claimed_at = now() WHERE campaign_id = $1 AND chunk_no = 2
                """, [id])
            #expect(try await f.expander(node: "patient").run(campaign: campaign.id).chunks == 0)
            #expect(try await f.expander(node: "late", claimTimeout: 0).run(campaign: campaign.id).chunks == 1)
            #expect(try f.spooled(campaign: campaign.id).count == expected.count)
        }
    }

    /// The crash came after the chunk's commit and before its checkpoint, and some of its
    /// messages were delivered (and removed from the spool) before the chunk is expanded
    /// again: they are marked finished, so the replay does not send them a second time
    /// (found by scripts/crash-loop).
    @Test func replayAfterCrashSkipsMessagesAlreadyDelivered() async throws {
        try await CampaignFixture.with(count: 300) { f in
            let campaign = try await f.createCampaign()
            let store = CampaignStore(f.db, chunkSize: 100)
            _ = try await store.send(tenant: f.tenant, id: campaign.id)
            let expected = f.expected
            #expect(try await f.expander().run(campaign: campaign.id).committed == expected.count)
            let id = String(campaign.id)
            try await f.db.execute("UPDATE campaigns SET status = 'sending', finished_at = NULL WHERE id = $1", [id])
            let lost = try await f.db.execute("""
                DELETE FROM campaign_recipients r USING campaign_chunks k
                WHERE k.campaign_id = $1 AND k.chunk_no = 0 AND r.campaign_id = k.campaign_id
                  AND r.subscriber_id BETWEEN k.first_subscriber_id AND k.last_subscriber_id
                """, [id])
            try await f.db.execute("UPDATE campaign_counters SET expanded = expanded - $2 WHERE campaign_id = $1",
                                   [id, String(lost)])
            try await f.db.execute("UPDATE campaign_chunks SET done = false, claimed_by = NULL WHERE campaign_id = $1 AND chunk_no = 0",
                                   [id])
            // Ten of the chunk's messages were delivered meanwhile, as the queue manager
            // finishes them: marked, then removed.
            let chunkIDs = try await f.db.query("""
                SELECT queue_id FROM campaign_recipients WHERE campaign_id = $1
                """, [id]).compactMap { $0[0] }
            let all = Set(try f.spool.enumerate(.queue).map(\.rawValue))
            let chunkZero = all.subtracting(chunkIDs).sorted()
            #expect(chunkZero.count == lost)
            for raw in chunkZero.prefix(10) {
                let qid = try #require(QueueID(raw))
                try f.spool.markFinished(qid)
                try f.spool.remove(qid, from: .queue)
            }
            let replay = try await f.expander(node: "restarted").run(campaign: campaign.id)
            #expect(replay.chunks == 1)
            #expect(replay.committed == 0, "the delivered ten are not sent again")
            #expect(replay.alreadySpooled == lost)
            #expect(try f.spooled(campaign: campaign.id).count == expected.count - 10)
            let stats = try #require(try await store.stats(tenant: f.tenant, id: campaign.id))
            #expect(stats.expanded == Int64(expected.count))
        }
    }

    @Test func twoExpandersShareACampaignExactlyOnce() async throws {
        try await CampaignFixture.with(count: 2000) { f in
            let campaign = try await f.createCampaign()
            _ = try await CampaignStore(f.db, chunkSize: 50).send(tenant: f.tenant, id: campaign.id)
            let db1 = PostgresClient(url: f.url, size: 2)
            let db2 = PostgresClient(url: f.url, size: 2)
            let e1 = f.expander(db1, node: "node-1")
            let e2 = f.expander(db2, node: "node-2")
            async let r1 = e1.run(campaign: campaign.id)
            async let r2 = e2.run(campaign: campaign.id)
            let (a, b) = try await (r1, r2)
            await db1.close()
            await db2.close()
            print("two expanders: node-1 \(a.chunks) chunks / \(a.committed) messages, "
                + "node-2 \(b.chunks) chunks / \(b.committed) messages")
            let expected = f.expected
            #expect(a.committed + b.committed == expected.count)
            #expect(a.alreadySpooled == 0 && b.alreadySpooled == 0)
            let addresses = try f.spooled(campaign: campaign.id).map { $0.recipients[0].address }
            #expect(addresses.count == expected.count && Set(addresses) == expected)
            #expect(try await f.int("SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1",
                                    [String(campaign.id)]) == expected.count)
            let stats = try #require(try await CampaignStore(f.db).stats(tenant: f.tenant, id: campaign.id))
            #expect(stats.status == .sending && stats.expanded == Int64(expected.count))
        }
    }

    @Test func pauseStopsBetweenChunksAndResumeFinishes() async throws {
        try await CampaignFixture.with(count: 300) { f in
            let campaign = try await f.createCampaign()
            let store = CampaignStore(f.db, chunkSize: 10)
            _ = try await store.send(tenant: f.tenant, id: campaign.id)
            _ = try await store.pause(tenant: f.tenant, id: campaign.id)
            let paused = try await f.expander().run(campaign: campaign.id)
            #expect(paused.chunks == 0 && paused.status == .paused)
            #expect(try f.spooled(campaign: campaign.id).isEmpty)
            _ = try await store.resume(tenant: f.tenant, id: campaign.id)
            let resumed = try await f.expander().run(campaign: campaign.id)
            #expect(resumed.status == .sending && resumed.committed == f.expected.count)
            // Expanded, but the mail still waits for delivery: it can be paused again.
            #expect(try await store.pause(tenant: f.tenant, id: campaign.id)?.status == .paused)
        }
    }

    /// A pause made while a chunk is being expanded stops it at once: the messages in
    /// flight finish and are recorded, the chunk is given back unfinished, and a resume
    /// expands the rest, each subscriber exactly once.
    @Test func pauseWithinAChunkStopsItAndResumeExpandsTheRest() async throws {
        try await CampaignFixture.with(count: 2000) { f in
            let campaign = try await f.createCampaign()
            let store = CampaignStore(f.db, chunkSize: 5000)
            _ = try await store.send(tenant: f.tenant, id: campaign.id)
            let commits = Mutex(0)
            let writer = SpoolWriter(spool: f.spool, onCommit: { _ in
                let n = commits.withLock { n in n += 1; return n }
                if n == 100 { _ = try? await store.pause(tenant: f.tenant, id: campaign.id) }
            })
            let concurrency = 16
            let expander = CampaignExpander(db: f.db, writer: writer, publicURL: CampaignFixture.publicURL,
                                            secret: CampaignFixture.secret, hostname: "herald.test",
                                            node: "test-node", concurrency: concurrency, statusInterval: .zero)
            let paused = try await expander.run(campaign: campaign.id)
            #expect(paused.status == .paused && paused.chunks == 0)
            let atPause = try f.spooled(campaign: campaign.id).count
            #expect(atPause >= 100 && atPause <= 100 + concurrency, "\(atPause) spooled after the pause at 100")
            let id = String(campaign.id)
            #expect(try await f.int("SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1", [id]) == atPause)
            #expect(try await f.int("SELECT expanded FROM campaign_counters WHERE campaign_id = $1", [id]) == atPause)
            #expect(try await f.int("""
                SELECT count(*) FROM campaign_chunks WHERE campaign_id = $1 AND NOT done AND claimed_by IS NULL
                """, [id]) == 1, "the chunk is given back unfinished")

            _ = try await store.resume(tenant: f.tenant, id: campaign.id)
            let resumed = try await f.expander(node: "other-node").run(campaign: campaign.id)
            #expect(resumed.status == .sending && resumed.chunks == 1 && resumed.alreadySpooled == 0)
            #expect(resumed.committed + atPause == f.expected.count)
            let addresses = try f.spooled(campaign: campaign.id).map { $0.recipients[0].address }
            #expect(addresses.count == f.expected.count && Set(addresses) == f.expected)
            #expect(try await f.int("SELECT expanded FROM campaign_counters WHERE campaign_id = $1", [id])
                    == f.expected.count)
        }
    }

    @Test func queueIDsAreDeterministicAndDistinct() {
        let started: UInt64 = 1_790_000_000_000_000
        var seen = Set<String>()
        for s in Int64(1)...100_000 {
            let id = CampaignExpander.deterministicQueueID(campaign: 42, subscriber: s, startedMicros: started)
            seen.insert(id.rawValue)
        }
        #expect(seen.count == 100_000)
        let a = CampaignExpander.deterministicQueueID(campaign: 42, subscriber: 7, startedMicros: started)
        #expect(a == CampaignExpander.deterministicQueueID(campaign: 42, subscriber: 7, startedMicros: started))
        #expect(a != CampaignExpander.deterministicQueueID(campaign: 43, subscriber: 7, startedMicros: started))
        #expect(QueueID(a.rawValue) == a)
        #expect(abs(a.timestamp.timeIntervalSince1970 - 1_790_000_000) < 0.001)
    }
}
