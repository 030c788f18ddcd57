import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

@Suite("Spool concurrency")
struct ConcurrencyTests {
    @Test("500 concurrent stores are all committed, intact and listed")
    func concurrentStores() async throws {
        try await SpoolFixtures.withTemporarySpool(committerThreads: 32) { spool, directory in
            let results = try await withThrowingTaskGroup(of: (Envelope, [UInt8]).self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let message = SpoolFixtures.message(tag: "concurrent \(index)", size: 300 + index * 13)
                        let stored = try await spool.store(message: message, envelope: SpoolFixtures.envelope())
                        return (stored, message)
                    }
                }
                var results: [(Envelope, [UInt8])] = []
                for try await result in group { results.append(result) }
                return results
            }
            let ids = results.map { $0.0.id }
            #expect(Set(ids).count == 500)
            #expect(try spool.enumerate(.queue) == ids.sorted())
            for (envelope, message) in results {
                #expect(try spool.loadMessage(envelope.id, in: .queue) == message)
                #expect(try spool.loadEnvelope(envelope.id, in: .queue) == envelope)
            }
            #expect(filesUnder(directory + "/tmp").isEmpty)
            #expect(spool.committer.threadCount <= 32)
            #expect(try spool.recover() == RecoveryReport(queued: 500))
        }
    }

    @Test("stores complete with a single committer thread and many waiting callers")
    func singleCommitter() async throws {
        try await SpoolFixtures.withTemporarySpool(committerThreads: 1) { spool, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        _ = try await spool.store(
                            message: SpoolFixtures.message(tag: "\(index)", size: 100),
                            envelope: SpoolFixtures.envelope())
                    }
                }
                try await group.waitForAll()
            }
            #expect(try spool.enumerate(.queue).count == 50)
            #expect(spool.committer.threadCount == 1)
        }
    }

    @Test("offload runs blocking operations on committer threads and returns their results")
    func offload() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            let (id, stored, message) = try await storeSample(spool)
            let loaded = try await spool.offload { try $0.loadMessage(id, in: .queue) }
            #expect(loaded == message)
            var changed = stored
            changed.recipients[0].state = .failed
            try await spool.offload { [changed] in try $0.update(changed, in: .queue) }
            #expect(try spool.loadEnvelope(id, in: .queue) == changed)
            await #expect {
                try await spool.offload { try $0.remove(QueueID.generate(), from: .queue) }
            } throws: { error in
                (error as? SpoolError)?.isNotFound == true
            }
        }
    }

    @Test("hold/release racing with envelope updates never leaves a message in two queues")
    func moveUpdateRace() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, stored, message) = try await storeSample(spool)
            let mover = Task.detached {
                for round in 0..<200 {
                    let (from, to): (SpoolQueue, SpoolQueue) = round % 2 == 0 ? (.queue, .hold) : (.hold, .queue)
                    try spool.move(id, from: from, to: to)
                }
            }
            let updater = Task.detached {
                var updates = 0
                for round in 0..<300 {
                    for queue in [SpoolQueue.queue, .hold] {
                        var envelope = stored
                        envelope.recipients[0].attempts = round
                        do {
                            try spool.update(envelope, in: queue)
                            updates += 1
                        } catch let error as SpoolError where error.isNotFound {
                            // Moved away meanwhile: exactly what the lock is for.
                        }
                    }
                }
                return updates
            }
            try await mover.value
            let updates = try await updater.value
            // A move can land between a round's two attempts (queue, then hold), so a round
            // may miss both; what matters is below: never in two queues, nothing lost.
            #expect(updates > 0)
            #expect(fileExists(spool.envelopePath(id, in: .queue)))
            #expect(!fileExists(spool.envelopePath(id, in: .hold)))
            #expect(!fileExists(spool.messagePath(id, in: .hold)))
            #expect(try spool.loadMessage(id, in: .queue) == message)
            #expect(filesUnder(directory + "/tmp").isEmpty)
        }
    }
}
