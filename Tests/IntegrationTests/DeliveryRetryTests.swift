import Foundation
import HeraldTestSupport
import Testing

/// Temporary failures are retried: `failonce-…@` recipients get a 450 on their first
/// attempt and are accepted on the next, which comes after `minimal_backoff` (1 s here,
/// with ±10 % jitter), not before and not much later.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryRetry {
        @Test("450 then delivered after the backoff; the other recipients are not held back")
        func tempfailThenDelivered() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let toml = [DeliveryIT.route("*.retry.test", port: sink.port)]
            try await HeraldProcess.with(DeliveryIT.options(toml: toml)) { herald in
                var mails = (0..<5).map { DeliveryIT.mail("retry-\($0)", to: ["failonce-\($0)@a.retry.test"]) }
                // One message with a failonce recipient and an ordinary one in the same domain.
                mails.append(DeliveryIT.mail("retry-mixed", to: ["failonce-m@b.retry.test", "plain@b.retry.test"]))
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                #expect(ids.count == mails.count)
                let arrivedAll = await sink.waitForMessages(7, timeout: 20)
                #expect(arrivedAll == 7, "\(arrivedAll) arrivals\n\(herald.diagnostics())")
                #expect(await DeliveryIT.waitForEmptySpool(herald, timeout: 10), "left: \(herald.spoolIDs())")

                let log = DeliveryIT.deliveryLog(herald)
                let iso = ISO8601DateFormatter()
                iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let index = sink.index()
                for r in (0..<5).map({ "failonce-\($0)@a.retry.test" }) + ["failonce-m@b.retry.test"] {
                    let lines = log.filter { $0["recipient"] as? String == r }
                    #expect(lines.map { $0["result"] as? String ?? "" } == ["deferred", "delivered"], "\(r): \(lines)")
                    guard lines.count == 2 else { continue }
                    #expect(lines[0]["code"] as? Int == 450)
                    #expect(lines[0]["attempt"] as? Int == 1)
                    #expect(lines[1]["attempt"] as? Int == 2)
                    let deferredAt = iso.date(from: lines[0]["time"] as? String ?? "")
                    let next = iso.date(from: lines[0]["next_attempt"] as? String ?? "")
                    if let deferredAt, let next {
                        let wait = next.timeIntervalSince(deferredAt)
                        #expect(wait >= 0.89 && wait <= 1.11, "next attempt \(wait) s later (1 s ± 10 %)")
                    } else {
                        Issue.record("no time/next_attempt in \(lines[0])")
                    }
                    // The sink saw the retry no earlier than the scheduled time.
                    if let arrival = index.first(where: { $0.rcpts.contains(r) }), let next {
                        #expect(arrival.time >= next.timeIntervalSince1970 - 0.05,
                                "\(r) arrived \(next.timeIntervalSince1970 - arrival.time) s before its retry time")
                        #expect(arrival.time <= next.timeIntervalSince1970 + 3, "the retry came late")
                    }
                }
                // plain@b.retry.test was accepted in the first transaction, and is not sent again.
                let plain = index.filter { $0.rcpts.contains("plain@b.retry.test") }
                #expect(plain.count == 1)
                #expect(index.filter { $0.message_id == "<retry-mixed@client.test>" }.map(\.rcpts)
                        == [["plain@b.retry.test"], ["failonce-m@b.retry.test"]])
            }
        }
    }
}
