import Foundation
import HeraldTestSupport
import Testing

/// A destination that drops the connection in the middle of DATA: the message may or
/// may not have been taken, so it is deferred (never failed, never lost) and counted as
/// a possible duplicate; the broken connection is not reused for the next message.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryDisconnect {
        @Test("disconnect in DATA: deferred with 4.4.2 'may be sent more than once', retried, neighbours delivered")
        func disconnectInData() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(delivery: ["initial_window = 1", "connections_per_destination = 1"],
                                             toml: [DeliveryIT.route("*.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                // One connection for the domain: the message after the broken one must not
                // be sent on the dead connection.
                let mails = [
                    DeliveryIT.mail("dd-before", to: ["a@dd.test"]),
                    DeliveryIT.mail("dd-broken", to: ["disconnect-in-data@dd.test"], bodyLines: 200),
                    DeliveryIT.mail("dd-after-1", to: ["b@dd.test"]),
                    DeliveryIT.mail("dd-after-2", to: ["c@dd.test"]),
                ]
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                #expect(ids.count == 4)
                #expect(await sink.waitForMessages(3, timeout: 15) == 3, "\(herald.diagnostics())")
                // Let it retry at least once more (minimal_backoff 1 s).
                let retried = await DeliveryIT.waitUntil(timeout: 10) {
                    DeliveryIT.logLines(herald, result: "deferred", recipient: "disconnect-in-data@dd.test").count >= 2
                }
                #expect(retried)
                let deferred = DeliveryIT.logLines(herald, result: "deferred", recipient: "disconnect-in-data@dd.test")
                let possibleDuplicates = deferred.filter {
                    ($0["enhanced"] as? String) == "4.4.2" && (($0["reply"] as? String) ?? "").contains("more than once")
                }
                print("disconnect-in-data: \(deferred.count) deferred attempt(s), \(possibleDuplicates.count) counted as possible duplicates")
                #expect(possibleDuplicates.count == deferred.count, "every one is a possible duplicate: \(deferred)")
                #expect(DeliveryIT.logLines(herald, result: "failed").isEmpty, "a broken session never fails a recipient")
                #expect(Set(sink.index().flatMap(\.rcpts)) == ["a@dd.test", "b@dd.test", "c@dd.test"])
                // Still queued, deferred, with the reason on record.
                let list = try await herald.queueList()
                let broken = list.first { $0.recipients.contains { $0.address == "disconnect-in-data@dd.test" } }
                #expect(broken?.recipients.first?.state == "deferred")
                #expect(broken?.recipients.first?.lastReply?.contains("4.4.2") == true, "\(String(describing: broken))")
            }
        }
    }
}
