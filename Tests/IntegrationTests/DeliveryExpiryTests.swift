import Foundation
import HeraldTestSupport
import Testing

/// Queue lifetime: a recipient still deferred when `max_lifetime` runs out fails with
/// Status 4.4.7 and the sender gets a DSN quoting the last reply.
extension Integration {
    /// A message still deferred when `max_lifetime` runs out fails with 4.4.7 and bounces.
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryExpiry {
        @Test("max_lifetime = 3s with a tempfail recipient: expires, DSN with Status 4.4.7")
        func expiresAndBounces() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(delivery: ["max_lifetime = \"3s\"", "maximal_backoff = \"1s\""],
                                             toml: [DeliveryIT.route("*.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                let m = DeliveryIT.mail("expiring", from: "alice@sender.test", to: ["tempfail@slowpoke.test"])
                let submitted = Date()
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), [m])
                #expect(ids.count == 1)
                let got = await sink.waitForMessages(1, timeout: 15)
                #expect(got == 1, "\(herald.diagnostics())")
                #expect(await DeliveryIT.waitForEmptySpool(herald, timeout: 5), "left: \(herald.spoolIDs())")
                guard let (info, bytes) = DeliveryIT.arrivals(sink).first else { return }
                #expect(Date().timeIntervalSince(submitted) >= 3, "not before the lifetime ran out")
                #expect(DeliveryIT.isNullSender(info.mail_from))
                #expect(info.rcpts == ["alice@sender.test"])
                let dsn = try await DeliveryIT.parseDSN(bytes)
                let r = dsn.recipients.first ?? [:]
                #expect(r["Final-Recipient"] == "rfc822; tempfail@slowpoke.test")
                #expect(r["Action"] == "failed")
                #expect(r["Status"] == "4.4.7")
                #expect(r["Diagnostic-Code"]?.contains("450") == true, "the last reply is quoted: \(r)")
                let log = DeliveryIT.deliveryLog(herald).filter {
                    $0["recipient"] as? String == "tempfail@slowpoke.test" && $0["result"] as? String != "bounced"
                }
                let results = log.map { $0["result"] as? String ?? "" }
                #expect(results.last == "expired", "\(results)")
                #expect(results.dropLast().allSatisfy { $0 == "deferred" } && results.count >= 3,
                        "retried (1 s apart) until it expired: \(results)")
            }
        }
    }
}
