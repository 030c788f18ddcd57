import Foundation
import HeraldTestSupport
import Testing

/// A destination that answers `421 4.7.0 rate limit exceeded` goes into backoff: the
/// domain pauses for `throttle_backoff` (visible in Herald's log and in the delivery
/// log), other domains keep flowing, and delivery to the domain resumes afterwards.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryThrottleReply {
        @Test("421 puts the domain in backoff; other domains are not held back; delivery resumes")
        func throttleReplyBacksOff() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            // The throttled recipient itself is retried only after a minute: what resumes
            // within the test is the rest of the domain's mail.
            let options = DeliveryIT.options(delivery: ["throttle_backoff = \"3s\"", "minimal_backoff = \"60s\"",
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
                let throttledAt = Date()

                // Herald's own log says the destination is in backoff.
                #expect(await DeliveryIT.waitUntil(timeout: 2) { herald.log.contains("destination throttled") },
                        "\(herald.diagnostics())")
                // queue stats shows the backoff while it lasts (when the daemon publishes it).
                let stats = try await herald.cli(["queue", "stats", "--json"])
                #expect(stats.termination.succeeded, "\(stats)")

                let more = (1...3).map { DeliveryIT.mail("thr-\($0)", to: ["user\($0)@busy.test"]) }
                    + [DeliveryIT.mail("free-1", to: ["user@free.test"])]
                try await DeliveryIT.submitAccepted(port: herald.port(), more)
                #expect(await sink.waitForMessages(4, timeout: 15) == 4, "\(herald.diagnostics())")
                let index = sink.index()
                let free = index.first { $0.rcpts == ["user@free.test"] }
                let busy = index.filter { $0.rcpts.first?.hasSuffix("@busy.test") == true }
                #expect(free.map { $0.time - throttledAt.timeIntervalSince1970 < 2 } == true,
                        "free.test is not held back by busy.test's backoff")
                #expect(busy.count == 3)
                for b in busy {
                    // The pause started at the 421 (before `throttledAt`) and lasts 3 s.
                    #expect(b.time >= throttledAt.timeIntervalSince1970 + 2.5,
                            "\(b.rcpts) delivered \(b.time - throttledAt.timeIntervalSince1970) s after the 421: during the backoff")
                }
                #expect(DeliveryIT.logLines(herald, result: "deferred").count == 1, "nothing else was deferred")
                #expect(String(decoding: stats.stdout, as: UTF8.self).contains("busy.test"), "\(stats.stdoutText)")
            }
        }
    }
}
