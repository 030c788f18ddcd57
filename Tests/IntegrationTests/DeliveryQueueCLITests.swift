import Foundation
import HeraldTestSupport
import Testing

/// The postmaster's view of deferred mail: after temporary failures, `herald queue list`
/// and `herald queue stats` (text and JSON) show the deferred recipients with their
/// attempts and last reply, and the destination domains with their deferred counts;
/// `herald queue retry` makes a deferred message due at once and the running daemon
/// picks it up.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryQueueCLI {
        struct Stats: Decodable {
            struct Domain: Decodable {
                var domain: String
                var recipients: Int
                var pending: Int
                var deferred: Int
            }
            var messages: [String: Int]
            var recipients: [String: Int]
            var domains: [Domain]
        }

        @Test("queue list / stats after deferrals; queue retry reaches the daemon")
        func deferredMailInTheCLI() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(delivery: ["minimal_backoff = \"60s\"", "maximal_backoff = \"60s\"",
                                                        "rescan_interval = \"1s\""],
                                             toml: [DeliveryIT.route("*.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                let mails = [
                    DeliveryIT.mail("cli-1", to: ["tempfail@slow1.test", "ok@fast.test"]),
                    DeliveryIT.mail("cli-2", to: ["tempfail@slow2.test"]),
                    DeliveryIT.mail("cli-3", to: ["tempfail@slow1.test"]),
                ]
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                #expect(ids.count == 3)
                #expect(await DeliveryIT.waitUntil(timeout: 15) {
                    DeliveryIT.logLines(herald, result: "deferred").count == 3
                        && DeliveryIT.logLines(herald, result: "delivered").count == 1
                }, "\(DeliveryIT.deliveryLog(herald))")
                // The envelopes are written before (or right after) the log line.
                #expect(await DeliveryIT.waitUntil(timeout: 5) {
                    ((try? await herald.queueList()) ?? []).flatMap(\.recipients).filter { $0.state == "deferred" }.count == 3
                })

                let list = try await herald.queueList()
                #expect(Set(list.map(\.id)) == Set(ids))
                for entry in list {
                    for r in entry.recipients {
                        if r.address == "ok@fast.test" {
                            #expect(r.state == "delivered")
                            continue
                        }
                        #expect(r.state == "deferred", "\(entry.id) \(r.address)")
                        #expect(r.attempts == 1)
                        #expect(r.lastReply?.contains("450") == true && r.lastReply?.contains("4.2.1") == true,
                                "\(String(describing: r.lastReply))")
                        #expect(r.nextAttempt != nil)
                    }
                }
                let text = try await herald.cli(["queue", "list"])
                #expect(text.termination.succeeded)
                #expect(text.stdoutText.contains("tempfail@slow1.test (deferred, 1 attempt(s))"), "\(text.stdoutText)")
                #expect(text.stdoutText.contains("450"))

                let statsJSON = try await herald.cli(["queue", "stats", "--json"])
                #expect(statsJSON.termination.succeeded, "\(statsJSON)")
                let decoder = JSONDecoder()
                let stats = try decoder.decode(Stats.self, from: Data(statsJSON.stdout))
                #expect(stats.messages["queue"] == 3)
                #expect(stats.recipients["deferred"] == 3)
                #expect(stats.recipients["delivered"] == 1)
                #expect(stats.recipients["pending"] == 0)
                let byDomain = Dictionary(uniqueKeysWithValues: stats.domains.map { ($0.domain, $0) })
                #expect(byDomain["slow1.test"]?.deferred == 2)
                #expect(byDomain["slow2.test"]?.deferred == 1)
                #expect((byDomain["fast.test"]?.recipients ?? 0) == 0, "nothing waits for fast.test")
                let statsText = try await herald.cli(["queue", "stats"])
                #expect(statsText.stdoutText.contains("3 deferred"), "\(statsText.stdoutText)")
                #expect(statsText.stdoutText.contains("slow1.test") && statsText.stdoutText.contains("slow2.test"))

                // Retry one message now: the daemon notices (rescan 1 s) and tries again.
                let cli2 = ids[1]
                let retry = try await herald.cli(["queue", "retry", cli2])
                #expect(retry.termination.succeeded, "\(retry)")
                let retried = await DeliveryIT.waitUntil(timeout: 10) {
                    DeliveryIT.logLines(herald, result: "deferred", recipient: "tempfail@slow2.test").count == 2
                }
                #expect(retried, "queue retry was not picked up\n\(herald.diagnostics())")
                #expect(DeliveryIT.logLines(herald, result: "deferred", recipient: "tempfail@slow1.test").count == 2,
                        "the other messages keep their schedule")
            }
        }
    }
}
