import Foundation
import HeraldTestSupport
import Spool
import Testing

/// `herald queue list` says why each message waits (held, a paused campaign, a closed
/// send window, a retry time, campaign pacing, ready), filters by campaign, tenant,
/// domain, state and age, and `hold|release|delete|retry` take the same selectors (and
/// ids on standard input); `queue stats` shows what is queued per route. The spool is
/// written directly (messages in states only delivery attempts would otherwise
/// produce); `herald serve` runs with delivery off, so nothing changes behind the test.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct QueueReasons {
        /// What the test reads of `herald queue list --json`.
        struct Row: Decodable {
            var id: String
            var queue: String
            var waiting: String
            var waitingState: String
            var campaign: String?
            var tenant: String?
        }

        static let route = "[[route]]\ndomain = \"*.example.test\"\nhost = \"127.0.0.1:2600\"\ntls = \"off\""

        func list(_ herald: HeraldProcess, _ args: [String] = []) async throws -> [Row] {
            let r = try await herald.cli(["queue", "list", "--json"] + args)
            guard r.termination.succeeded else { throw SubprocessError("queue list \(args) failed: \(r)") }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode([Row].self, from: Data(r.stdout))
        }

        func ids(_ herald: HeraldProcess, _ args: [String]) async throws -> Set<String> {
            Set(try await list(herald, args).map(\.id))
        }

        /// A window that opened 3 hours from now in Paris, one hour long: closed now.
        static func closedWindow(_ now: Date) throws -> (SendWindow, String) {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "Europe/Paris")!
            func hhmm(_ d: Date) -> String {
                let c = calendar.dateComponents([.hour, .minute], from: d)
                return String(format: "%02d:%02d", c.hour!, c.minute!)
            }
            let start = hhmm(now.addingTimeInterval(3 * 3600))
            let end = hhmm(now.addingTimeInterval(4 * 3600))
            return (try SendWindow(start: start, end: end, timeZone: "Europe/Paris"), start)
        }

        @Test("reasons, filters, selectors and per-route stats on a spool with mail in every state")
        func reasonsFiltersSelectors() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.extraTOML = [Self.route]
            try await HeraldProcess.with(options) { herald in
                let spool = try Spool(path: herald.spoolPath)
                let now = Date()
                func store(_ recipients: [String], arrival: Date = now, tenant: String? = nil, campaign: String? = nil,
                           policy: SendPolicy? = nil, edit: (inout Envelope) -> Void = { _ in }) throws -> String {
                    var env = SpoolFixtures.envelope(arrival: arrival, recipients: recipients)
                    env.tenant = tenant
                    env.campaign = campaign
                    env.sendPolicy = policy
                    edit(&env)
                    return try spool.storeSynchronously(message: SpoolFixtures.message(tag: env.id.rawValue), envelope: env)
                        .id.rawValue
                }
                let retryAt = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / 60).rounded(.down) * 60 + 7200)
                let tenMinutes = Rate("10/m")!
                let (window, opens) = try Self.closedWindow(now)

                let held = try store(["h@example.net"], tenant: "acme")
                try spool.move(QueueID(held)!, from: .queue, to: .hold)
                let deferred = try store(["x@gmail.com", "y@example.org"], tenant: "acme") { env in
                    env.recipients[0].state = .deferred
                    env.recipients[0].attempts = 1
                    env.recipients[0].nextAttempt = retryAt
                    env.recipients[0].lastReply = "451 4.7.1 try again later"
                    env.recipients[1].state = .delivered
                    env.recipients[1].attempts = 1
                }
                let paused1 = try store(["a@example.com"], tenant: "news", campaign: "7",
                                        policy: SendPolicy(rate: tenMinutes, rateKey: "campaign:7"))
                let paused2 = try store(["b@gmail.com"], tenant: "news", campaign: "7",
                                        policy: SendPolicy(rate: tenMinutes, rateKey: "campaign:7"))
                try spool.setHeldCampaigns(["7"])
                let paced = try store(["c@example.com"], tenant: "news", campaign: "8",
                                      policy: SendPolicy(rate: tenMinutes, rateKey: "campaign:8"))
                let windowed = try store(["d@example.com"], tenant: "news", campaign: "9",
                                         policy: SendPolicy(window: window))
                let old = try store(["e@a.example.test"], arrival: now.addingTimeInterval(-7200), tenant: "acme")
                let ready = try store(["f@b.example.test", "g@a.example.test"], tenant: "acme")
                let all: Set = [held, deferred, paused1, paused2, paced, windowed, old, ready]

                // Why each waits, in --json and in the text listing.
                let rows = try await list(herald)
                #expect(Set(rows.map(\.id)) == all)
                let waiting = Dictionary(uniqueKeysWithValues: rows.map { ($0.id, $0.waiting) })
                #expect(waiting[held] == "held")
                #expect(waiting[deferred] == "retry at " + ISO8601DateFormatter().string(from: retryAt))
                #expect(waiting[paused1] == "campaign 7 paused" && waiting[paused2] == "campaign 7 paused")
                #expect(waiting[paced] == "paced campaign 8 (10/m)")
                #expect(waiting[windowed] == "window opens \(opens) Europe/Paris")
                #expect(waiting[old] == "ready" && waiting[ready] == "ready")
                #expect(rows.first { $0.id == deferred }?.waitingState == "retry")
                let text = try await herald.cli(["queue", "list"])
                print("queue reasons: herald queue list\n\(text.stdoutText)")
                #expect(text.stdoutText.contains("\(held)!"), "\(text.stdoutText)")
                #expect(text.stdoutText.contains("  (window opens \(opens) Europe/Paris)"), "\(text.stdoutText)")
                #expect(text.stdoutText.contains("  (campaign 7 paused)"))

                // Filters, alone and together.
                #expect(try await ids(herald, ["--campaign", "7"]) == [paused1, paused2])
                #expect(try await ids(herald, ["--tenant", "acme"]) == [held, deferred, old, ready])
                #expect(try await ids(herald, ["--domain", "gmail.com"]) == [deferred, paused2])
                #expect(try await ids(herald, ["--domain", "a.example.test"]) == [old, ready])
                #expect(try await ids(herald, ["--older", "1h"]) == [old])
                #expect(try await ids(herald, ["--older", "3h"]).isEmpty)
                #expect(try await ids(herald, ["--older", "30s", "--tenant", "news"]).isEmpty)
                #expect(try await ids(herald, ["--state", "held"]) == [held])
                #expect(try await ids(herald, ["--state", "queued"]) == all.subtracting([held]))
                #expect(try await ids(herald, ["--state", "paused"]) == [paused1, paused2])
                #expect(try await ids(herald, ["--state", "window"]) == [windowed])
                #expect(try await ids(herald, ["--state", "retry"]) == [deferred])
                #expect(try await ids(herald, ["--state", "deferred"]) == [deferred])
                #expect(try await ids(herald, ["--state", "paced"]) == [paced])
                #expect(try await ids(herald, ["--state", "ready"]) == [old, ready])
                #expect(try await ids(herald, ["--state", "held", "--state", "paced"]) == [held, paced])
                #expect(try await ids(herald, ["--tenant", "acme", "--state", "ready", "--domain", "b.example.test"]) == [ready])
                let idsOnly = try await herald.cli(["queue", "list", "--ids", "--campaign", "7"])
                #expect(idsOnly.stdoutText.split(separator: "\n").map(String.init) == [paused1, paused2].sorted())
                let bad = try await herald.cli(["queue", "list", "--state", "sleeping"])
                #expect(!bad.termination.succeeded)
                let badAge = try await herald.cli(["queue", "list", "--older", "1w"])
                #expect(!badAge.termination.succeeded)

                // stats: the route's smart host is one destination for both of its domains.
                let statsJSON = try await herald.cli(["queue", "stats", "--json"])
                let stats = try JSONSerialization.jsonObject(with: Data(statsJSON.stdout)) as? [String: Any]
                let destinations = (stats?["destinations"] as? [[String: Any]]) ?? []
                let routeRow = destinations.first { ($0["destination"] as? String) == "[127.0.0.1]:2600 (*.example.test)" }
                #expect(routeRow?["messages"] as? Int == 2, "\(statsJSON.stdoutText)")
                #expect(routeRow?["recipients"] as? Int == 3)
                #expect((routeRow?["domains"] as? [String]).map(Set.init) == ["a.example.test", "b.example.test"])
                #expect(routeRow?["route"] as? String == "*.example.test")
                let gmail = destinations.first { ($0["destination"] as? String) == "gmail.com" }
                #expect(gmail?["messages"] as? Int == 2 && gmail?["deferred"] as? Int == 1, "\(statsJSON.stdoutText)")
                #expect(!destinations.contains { ($0["destination"] as? String) == "example.net" }, "held mail waits for no destination")
                let statsText = try await herald.cli(["queue", "stats"])
                print("queue reasons: herald queue stats\n\(statsText.stdoutText)")
                #expect(statsText.stdoutText.contains("[127.0.0.1]:2600 (*.example.test)"), "\(statsText.stdoutText)")

                // Selectors: exactly the selected messages are acted on.
                let refused = try await herald.cli(["queue", "delete"])
                #expect(!refused.termination.succeeded, "no selection is refused")
                let mixed = try await herald.cli(["queue", "delete", paced, "--campaign", "7"])
                #expect(!mixed.termination.succeeded, "ids and selectors are not mixed")
                #expect(try await ids(herald, []) == all)

                let delete = try await herald.cli(["queue", "delete", "--campaign", "7"])
                #expect(delete.termination.succeeded && delete.stdoutText.contains("2 message(s) deleted"), "\(delete)")
                #expect(try await ids(herald, []) == all.subtracting([paused1, paused2]))

                let hold = try await herald.cli(["queue", "hold", "--domain", "gmail.com"])
                #expect(hold.termination.succeeded && hold.stdoutText.contains("1 message(s) held"), "\(hold)")
                #expect(try await ids(herald, ["--state", "held"]) == [held, deferred])
                let release = try await herald.cli(["queue", "release", "--tenant", "acme", "--older", "0s"])
                #expect(release.termination.succeeded && release.stdoutText.contains("2 message(s) released"), "\(release)")
                #expect(try await ids(herald, ["--state", "held"]).isEmpty)

                let retry = try await herald.cli(["queue", "retry", "--state", "retry"])
                #expect(retry.termination.succeeded && retry.stdoutText.contains("\(deferred): scheduled for retry"), "\(retry)")
                #expect(try await list(herald, ["--domain", "gmail.com"]).first?.waiting == "ready")

                // Ids on standard input, as `postsuper -d -`: piped from `queue list --ids`.
                let piped = try await herald.cli(["queue", "list", "--ids", "--state", "ready", "--tenant", "acme"])
                #expect(Set(piped.stdoutText.split(separator: "\n").map(String.init)) == [deferred, old, ready, held])
                let viaStdin = try await Command.run(HeraldProcess.binary, ["queue", "delete", "-", "--config", herald.configPath],
                                                     stdin: Array(([old, ready].joined(separator: "\n") + "\n").utf8))
                #expect(viaStdin.termination.succeeded, "\(viaStdin)")
                #expect(viaStdin.stdoutText.contains("\(old): deleted") && viaStdin.stdoutText.contains("\(ready): deleted"))
                #expect(try await ids(herald, []) == [held, deferred, paced, windowed])
                let unknown = try await Command.run(HeraldProcess.binary, ["queue", "delete", "-", "--config", herald.configPath],
                                                    stdin: Array("\(old)\nnot-an-id\n".utf8))
                #expect(!unknown.termination.succeeded && unknown.stderrText.contains("not-an-id: not a queue id"), "\(unknown)")
                #expect(try await ids(herald, []) == [held, deferred, paced, windowed])

                // --all still means every message.
                let deleteAll = try await herald.cli(["queue", "delete", "--all"])
                #expect(deleteAll.termination.succeeded && deleteAll.stdoutText.contains("4 message(s) deleted"), "\(deleteAll)")
                #expect(try await ids(herald, []).isEmpty)
            }
        }

        @Test("a live daemon's reasons: refused connection and NXDOMAIN in the log, the retry time in queue list",
              .enabled(if: Dnsmasq.isAvailable))
        func liveReasons() async throws {
            let closed = try HeraldProcess.freeLoopbackPort()
            let dns = try Dnsmasq([], localDomains: ["test", "invalid"])
            defer { dns.stop() }
            let toml = [DeliveryIT.route("*.refused.test", port: closed),
                        "[dns]\nservers = [\"\(dns.server)\"]\ntimeout = \"2s\""]
            // A long backoff: the refused recipient stays deferred while we look.
            let options = DeliveryIT.options(delivery: ["minimal_backoff = \"10m\"", "maximal_backoff = \"20m\""], toml: toml)
            try await HeraldProcess.with(options) { herald in
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), [
                    DeliveryIT.mail("refused", to: ["r@a.refused.test"]),
                    DeliveryIT.mail("nxdomain", to: ["n@example.invalid"]),
                ])
                #expect(ids.count == 2)
                let logged = await DeliveryIT.waitUntil(timeout: 20) {
                    !DeliveryIT.logLines(herald, result: "deferred", recipient: "r@a.refused.test").isEmpty
                        && !DeliveryIT.deliveryLog(herald).filter { $0["recipient"] as? String == "n@example.invalid" }.isEmpty
                }
                #expect(logged, "\(herald.diagnostics())")
                let refused = DeliveryIT.logLines(herald, result: "deferred", recipient: "r@a.refused.test").first
                #expect(refused?["reply"] as? String == "connect to 127.0.0.1:\(closed): connection refused", "\(String(describing: refused))")
                let nx = DeliveryIT.deliveryLog(herald).first { $0["recipient"] as? String == "n@example.invalid" }
                #expect(nx?["result"] as? String == "failed")
                #expect(nx?["reply"] as? String == "example.invalid: no such domain", "\(String(describing: nx))")

                // queue list: the deferred message waits for its retry, the reason under it.
                let rows = try await list(herald, ["--domain", "a.refused.test"])
                #expect(rows.map(\.id) == [ids[0]])
                let next = try #require(refused?["next_attempt"] as? String)
                let iso = ISO8601DateFormatter()
                iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                let nextDate = try #require(iso.date(from: next))
                let expected = "retry at " + ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: nextDate.timeIntervalSince1970.rounded(.down)))
                #expect(rows.first?.waiting == expected || rows.first?.waiting == "retry at " + ISO8601DateFormatter().string(from: nextDate),
                        "\(String(describing: rows.first))")
                let text = try await herald.cli(["queue", "list", "--state", "deferred"])
                #expect(text.stdoutText.contains("451 4.4.1 connect to 127.0.0.1:\(closed): connection refused"), "\(text.stdoutText)")
                #expect(!text.stdoutText.contains("NIOConnectionError"))
            }
        }

        @Test("mail for a destination in back-off says so while herald serve runs")
        func backoffReason() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            // The sink answers 421 4.7.0 for throttle@: the route's queue pauses 30 s.
            let options = DeliveryIT.options(delivery: ["throttle_backoff = \"30s\"", "minimal_backoff = \"10m\"",
                                                        "maximal_backoff = \"10m\""],
                                             toml: [DeliveryIT.route("busy.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                let throttled = try await DeliveryIT.submitAccepted(port: herald.port(),
                                                                    [DeliveryIT.mail("thr-0", to: ["throttle@busy.test"])])
                let seen = await DeliveryIT.waitUntil(timeout: 10) {
                    !DeliveryIT.logLines(herald, result: "deferred", recipient: "throttle@busy.test").isEmpty
                }
                #expect(seen, "\(herald.diagnostics())")
                let waiting = try await DeliveryIT.submitAccepted(port: herald.port(),
                                                                  [DeliveryIT.mail("thr-1", to: ["user1@busy.test"])])
                // The daemon publishes its queues every 2 s.
                var rows: [Row] = []
                let shown = try await DeliveryIT.waitUntil(timeout: 6) {
                    rows = try await list(herald)
                    return rows.first { $0.id == waiting.first }?.waitingState == "backoff"
                }
                #expect(shown, "\(rows.map { ($0.id, $0.waiting) })")
                let reason = rows.first { $0.id == waiting.first }?.waiting ?? ""
                #expect(reason.hasPrefix("busy.test backing off until "), "\(reason)")
                #expect(rows.first { $0.id == throttled.first }?.waiting.hasPrefix("retry at ") == true,
                        "the throttled message itself waits for its retry: \(rows.map(\.waiting))")
                #expect(try await ids(herald, ["--state", "backoff"]) == Set(waiting))
                #expect(sink.index().isEmpty, "nothing was delivered during the back-off")
            }
        }
    }
}
