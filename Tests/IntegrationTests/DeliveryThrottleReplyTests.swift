import Foundation
import HeraldTestSupport
import Testing

/// A destination that answers `421 4.7.0 rate limit exceeded` goes into backoff: the
/// domain pauses for `throttle_backoff` (visible in Herald's log and in the delivery
/// log), other domains keep flowing, and delivery to the domain resumes afterwards.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryThrottleReply {
        /// The backoff reason `queue stats --json` shows for the destination naming `domain`.
        static func backoff(in json: [UInt8], for domain: String) -> String? {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any],
                  let domains = obj["domains"] as? [[String: Any]] else { return nil }
            for d in domains where (d["domain"] as? String ?? "").contains(domain) && d["backoff_until"] != nil {
                return d["backoff_reason"] as? String ?? ""
            }
            return nil
        }

        @Test("421 puts the domain in backoff; other domains are not held back; delivery resumes")
        func throttleReplyBacksOff() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            // The throttled recipient itself is retried only after a minute: what resumes
            // within the test is the rest of the domain's mail.
            let options = DeliveryIT.options(delivery: ["throttle_backoff = \"4s\"", "minimal_backoff = \"60s\"",
                                                        "maximal_backoff = \"60s\""],
                                             // Two routes to the same sink: two destinations.
                                             toml: [DeliveryIT.route("busy.test", port: sink.port),
                                                    DeliveryIT.route("free.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                try await DeliveryIT.submitAccepted(port: herald.port(), [DeliveryIT.mail("thr-0", to: ["throttle@busy.test"])])
                let throttledSeen = await DeliveryIT.waitUntil(timeout: 10) {
                    !DeliveryIT.logLines(herald, result: "deferred", recipient: "throttle@busy.test").isEmpty
                }
                #expect(throttledSeen, "\(herald.diagnostics())")
                let line = DeliveryIT.logLines(herald, result: "deferred", recipient: "throttle@busy.test").first ?? [:]
                #expect(line["code"] as? Int == 421, "the 421 is logged as such: \(line)")
                #expect(line["enhanced"] as? String == "4.7.0")
                let iso = ISO8601DateFormatter()
                iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let t421 = try #require(iso.date(from: line["time"] as? String ?? "")).timeIntervalSince1970

                // Herald's own log says the destination is in backoff.
                #expect(await DeliveryIT.waitUntil(timeout: 2) { herald.log.contains("destination throttled") },
                        "\(herald.diagnostics())")
                // queue stats shows the backoff while it lasts (the daemon publishes its
                // destinations' state every 2 s).
                var stats = try await herald.cli(["queue", "stats", "--json"])
                let backoffShown = await DeliveryIT.waitUntil(timeout: 2.5) {
                    stats = (try? await herald.cli(["queue", "stats", "--json"])) ?? stats
                    return Self.backoff(in: stats.stdout, for: "busy.test") != nil
                }
                #expect(backoffShown, "no backoff for busy.test in queue stats: \(stats.stdoutText)")
                #expect(Self.backoff(in: stats.stdout, for: "busy.test")?.contains("421") == true)

                let more = (1...3).map { DeliveryIT.mail("thr-\($0)", to: ["user\($0)@busy.test"]) }
                    + [DeliveryIT.mail("free-1", to: ["user@free.test"])]
                let submittedMore = Date().timeIntervalSince1970
                try await DeliveryIT.submitAccepted(port: herald.port(), more)
                #expect(await sink.waitForMessages(4, timeout: 15) == 4, "\(herald.diagnostics())")
                let index = sink.index()
                let free = index.first { $0.rcpts == ["user@free.test"] }
                let busy = index.filter { $0.rcpts.first?.hasSuffix("@busy.test") == true }
                #expect(free.map { $0.time - submittedMore < 1.5 } == true,
                        "free.test is not held back by busy.test's backoff")
                #expect(busy.count == 3)
                // The new mail for busy.test came in during the pause (4 s from the 421) and
                // waited for its end; then the domain resumed.
                #expect(submittedMore < t421 + 3.5, "submitted \(submittedMore - t421) s after the 421")
                for b in busy {
                    #expect(b.time >= t421 + 3.9,
                            "\(b.rcpts) delivered \(b.time - t421) s after the 421: during the backoff")
                    #expect(b.time <= t421 + 4 + 3, "\(b.rcpts) delivered \(b.time - t421) s after the 421: late")
                }
                #expect(DeliveryIT.logLines(herald, result: "deferred").count == 1, "nothing else was deferred")
            }
        }
    }
}
