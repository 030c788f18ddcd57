import Foundation
import HeraldTestSupport
import Testing

/// Crash during heavy delivery: 500 messages wait in the spool, delivery starts, Herald
/// is SIGKILLed mid-stream and restarted. Afterwards every message has arrived (by
/// Message-ID) or bounced, none is lost, and the duplicates — transactions in flight at
/// the kill, whose outcome had not reached the envelope — are counted, printed and bounded
/// by `max_concurrent`. It runs twice: with the default active limit, and with
/// `active_limit = 40`, where most of the queue is parked on disk and read in as
/// deliveries finish (before and after the restart).
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct DeliveryCrash {
        static let total = 500
        static let maxConcurrent = 20

        @Test("SIGKILL during delivery of 500 messages, restart: none lost, duplicates only from in-flight transactions",
              arguments: zip([nil, 40], [false, true]))
        func killDuringDelivery(activeLimit: Int?, spoolJournal: Bool) async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let toml = [DeliveryIT.route("*.test", port: sink.port)]
            let delivery = ["max_concurrent = \(Self.maxConcurrent)", "connections_per_destination = 10",
                            "initial_window = 10"] + (activeLimit.map { ["active_limit = \($0)"] } ?? [])
            // Fill the spool with delivery off, so that the kill lands in the middle of
            // delivery, not of submission.
            var options = DeliveryIT.options(delivery: delivery, toml: toml, enabled: false)
            options.spoolJournal = spoolJournal
            let herald = try await HeraldProcess.start(options)
            defer { herald.cleanup() }
            let domains = (0..<5).map { "c\($0).crash.test" }
            let batches = (0..<4).map { b in
                (0..<(Self.total / 4)).map { i -> DeliveryIT.Mail in
                    let n = b * (Self.total / 4) + i
                    return DeliveryIT.mail("crash-\(n)", to: ["user\(n)@\(domains[n % domains.count])"], bodyLines: 20)
                }
            }
            let port = herald.port()
            var accepted = 0
            try await withThrowingTaskGroup(of: Int.self) { group in
                for batch in batches { group.addTask { try await DeliveryIT.submitAccepted(port: port, batch).count } }
                for try await n in group { accepted += n }
            }
            #expect(accepted == Self.total)
            // With the journal, acknowledged messages have no files until written out (at
            // the latest by the graceful stop of the restart below).
            if !spoolJournal { #expect(herald.spoolIDs().count == Self.total) }

            // Delivery on; kill once a good part has arrived.
            try await herald.restart(with: DeliveryIT.options(delivery: delivery, toml: toml, enabled: true))
            let started = Date()
            let reached = await DeliveryIT.waitUntil(timeout: 30) { sink.index().count >= 150 }
            #expect(reached, "delivery did not get going\n\(herald.diagnostics())")
            let killedAfter = Date().timeIntervalSince(started)
            let killed = await herald.kill()
            #expect(killed?.signaled == true)
            let atKill = sink.index().count
            try await Task.sleep(for: .milliseconds(300))
            let settled = sink.index().count
            let leftInSpool = herald.spoolIDs().count
            #expect(leftInSpool > 0 && settled < Self.total, "the kill came after delivery had finished")

            try await herald.restart()
            if let activeLimit {
                // The restart found more than the limit: the rest waited parked. Its line
                // is the second "queue indexed" of the log (the first is the delivering
                // start's), written once its first scan is done, which may follow listening.
                var indexed: [Substring] = []
                _ = await DeliveryIT.waitUntil(timeout: 30) {
                    let log = (try? String(contentsOfFile: herald.logPath, encoding: .utf8)) ?? ""
                    indexed = log.split(separator: "\n").filter { $0.contains("queue indexed") }
                    return indexed.count >= 2
                }
                #expect(indexed.count == 2 && indexed[1].contains("parked=\(leftInSpool - activeLimit)"), "\(indexed)")
            }
            let done = await DeliveryIT.waitForEmptySpool(herald, timeout: 60)
            #expect(done, "spool not empty: \(herald.spoolIDs().count) left\n\(herald.diagnostics())")
            await DeliveryIT.waitUntil(timeout: 5) { Set(sink.index().map(\.message_id)).count >= Self.total }
            try await Task.sleep(for: .milliseconds(300))

            let index = sink.index()
            var byID: [String: Int] = [:]
            for r in index { byID[r.message_id, default: 0] += 1 }
            let expectedIDs = Set((0..<Self.total).map { "<crash-\($0)@client.test>" })
            let lost = expectedIDs.subtracting(byID.keys)
            let bounced = DeliveryIT.logLines(herald, result: "bounced").count
            let duplicates = byID.filter { $0.value > 1 }
            let extra = duplicates.values.reduce(0) { $0 + $1 - 1 }
            print("crash test (active_limit \(activeLimit.map(String.init) ?? "default")): \(Self.total) messages; killed \(String(format: "%.2f", killedAfter)) s into delivery "
                  + "with \(atKill) arrived (\(settled) after 300 ms), \(leftInSpool) left in the spool; "
                  + "after restart \(index.count) arrivals, \(byID.count) distinct, lost \(lost.count), bounced \(bounced), "
                  + "duplicates \(extra) (max_concurrent \(Self.maxConcurrent)): \(duplicates.keys.sorted().prefix(20))")
            #expect(lost.isEmpty, "lost: \(lost.sorted().prefix(20))")
            #expect(Set(byID.keys).subtracting(expectedIDs).isEmpty, "unexpected arrivals")
            #expect(bounced == 0)
            #expect(extra <= Self.maxConcurrent, "\(extra) duplicates > \(Self.maxConcurrent) transactions in flight")
            #expect(duplicates.values.allSatisfy { $0 == 2 }, "a message delivered three times: \(duplicates)")
            #expect(herald.spoolFiles("corrupt").isEmpty)
            await herald.shutdown()
        }
    }
}
