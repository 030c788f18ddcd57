import Foundation
import HeraldTestSupport
import Testing

/// `GET /metrics` after real traffic, read with the Python `prometheus_client` parser.
///
/// One delivering Herald (PostgreSQL, MX records from a private dnsmasq, every mail
/// exchanger and smart host a sink) takes six SMTP messages (four delivered, one 550
/// 5.1.1, one 450 4.2.1 then held by the postmaster), a ten-recipient campaign (eight
/// delivered, one bounced, one deferred) and one `POST /v1/messages` with two
/// recipients. Then the figures must match what happened: accepted messages per
/// listener, delivery outcomes per result and class equal to the delivery log's lines,
/// latency counts, spool depth and octets equal to the files in `queue/` and `hold/`,
/// the one destination with mail waiting, DNS cache and connection reuse counters that
/// moved, and the running campaign's counters equal to its stats; once the campaign is
/// cancelled its series are gone.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: Dnsmasq.isAvailable, "dnsmasq is not installed"))
    struct MetricsEndToEnd {
        static let campaignDomain = "camp.test"

        @Test("after SMTP, campaign and HTTP traffic the scraped figures equal what happened")
        func figuresFollowTraffic() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "metrics_e2e")
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let dns = try Dnsmasq([
                .address("mx.sink.test", "127.0.0.1"),
                .mx("dns.metrics.test", host: "mx.sink.test", preference: 10),
                .mx("sender.metrics.test", host: "mx.sink.test", preference: 10),
            ])
            defer { dns.stop() }
            let httpPort = try HeraldProcess.freeLoopbackPort()
            // Retries a minute away: the deferred recipients are tried once during the test,
            // so the delivery log stands still while it is compared with the figures.
            var options = DeliveryIT.options(
                delivery: ["mx_port = \(sink.port)", "minimal_backoff = \"60s\"", "maximal_backoff = \"120s\""],
                toml: ["[database]\nurl = \"\(database)\"",
                       "[dns]\nservers = [\"\(dns.server)\"]\ntimeout = \"2s\"",
                       DeliveryIT.route("*.\(Self.campaignDomain)", port: sink.port),
                       DeliveryIT.route("campaign.test", port: sink.port)])
            options.http = true
            options.httpAddress = "127.0.0.1:\(httpPort)"
            options.extraHTTP = ["public_url = \"http://127.0.0.1:\(httpPort)\"",
                                 "unsubscribe_secret = \"\(CampaignIT.secret)\""]
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let url = "http://127.0.0.1:\(httpPort)/metrics"
                let before = try await Scrape.fetch(url)
                #expect(before.status == 200)
                #expect(before.contentType.hasPrefix("text/plain; version=0.0.4"), "\(before.contentType)")
                #expect(before.series("herald_messages_accepted_total").isEmpty, "nothing accepted yet")
                #expect(before.value("herald_spool_messages", ["state": "queued"]) == 0)
                #expect((before.value("herald_dns_cache_hits_total") ?? 0) == 0)
                #expect(before.types["herald_spool_messages"] == "gauge")
                #expect(before.types["herald_dns_cache_hits"] == "counter", "\(before.types)")

                // SMTP: one message first (its MX and address answers are then cached),
                // then five more in one session.
                let smtpPort = herald.port()
                let from = "alice@sender.metrics.test"
                try await DeliveryIT.submitAccepted(port: smtpPort, [DeliveryIT.mail("m0", from: from, to: ["u0@dns.metrics.test"])])
                #expect(await sink.waitForMessages(1, timeout: 20) == 1, "\(herald.diagnostics())")
                let more = (1...3).map { DeliveryIT.mail("m\($0)", from: from, to: ["u\($0)@dns.metrics.test"]) }
                    + [DeliveryIT.mail("perm", from: from, to: ["permfail@dns.metrics.test"]),
                       DeliveryIT.mail("temp", from: from, to: ["tempfail@dns.metrics.test"])]
                let ids = try await DeliveryIT.submitAccepted(port: smtpPort, more)
                #expect(ids.count == 5)

                // A campaign: eight deliverable recipients, one refused (5.1.1), one deferred (4.2.1).
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("metrics")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: 8, domain: Self.campaignDomain, to: csv)
                let handle = try #require(FileHandle(forWritingAtPath: csv))
                handle.seekToEndOfFile()
                handle.write(Data("permfail@s1.\(Self.campaignDomain),P,F,p0\ntempfail@s2.\(Self.campaignDomain),T,F,p0\n".utf8))
                try handle.close()
                _ = try await api.importCSV(list: list, path: csv)
                let campaign = try await api.createCampaign(list: list, name: "metrics")
                try await api.send(campaign: campaign)

                // POST /v1/messages: two recipients, two messages.
                let posted = try await api.expect(202, "POST", "/v1/messages", [
                    "from": "App <app@campaign.test>", "subject": "Hello {{first_name}}", "text": "Hello.",
                    "recipients": [["email": "h0@s3.\(Self.campaignDomain)", "first_name": "H0"],
                                   ["email": "h1@s4.\(Self.campaignDomain)", "first_name": "H1"]],
                ])
                #expect(posted["accepted"] as? Int == 2, "\(posted)")

                // Delivered: 4 + the DSN of the SMTP 5.1.1, 8 + the campaign's DSN, 2.
                #expect(await sink.waitForMessages(16, timeout: 40) == 16, "\(herald.diagnostics())")
                var stats: [String: Any] = [:]
                let settled = try await DeliveryIT.waitUntil(timeout: 30) {
                    stats = try await api.stats(campaign: campaign)
                    return stats["sent"] as? Int == 8 && stats["bounced"] as? Int == 1 && stats["deferred"] as? Int == 1
                }
                #expect(settled, "\(stats)")

                // The postmaster holds the SMTP message whose recipient was deferred.
                let held = try #require(ids.last)
                let hold = try await herald.cli(["queue", "hold", held])
                #expect(hold.termination.succeeded, "\(hold)")
                // Seen by the queue manager at its next rescan (2 s): a `held` outcome.
                let holdSeen = await DeliveryIT.waitUntil(timeout: 15) {
                    !DeliveryIT.logLines(herald, result: "held").isEmpty
                }
                #expect(holdSeen, "\(herald.diagnostics())")
                // Nothing moves any more: one message deferred in queue/, one in hold/.
                let quiet = try await Self.waitForQuietLog(herald, timeout: 15)
                #expect(quiet)
                #expect(herald.spoolIDs("queue").count == 1 && herald.spoolIDs("hold") == [held],
                        "queue \(herald.spoolIDs("queue")), hold \(herald.spoolIDs("hold"))")

                let log = DeliveryIT.deliveryLog(herald)
                let after = try await Scrape.fetch(url)
                #expect(after.status == 200)

                // Accepted, per listener.
                #expect(after.series("herald_messages_accepted_total") == [
                    ["listener": "127.0.0.1:\(smtpPort)"]: 6, ["listener": "campaign"]: 10, ["listener": "http"]: 2,
                ])

                // Outcomes: each (result, class) counts the delivery log's lines.
                var expected: [[String: String]: Double] = [:]
                for line in log {
                    let result = line["result"] as? String ?? "?"
                    expected[["result": result, "class": Self.codeClass(line)], default: 0] += 1
                }
                #expect(after.series("herald_delivery_attempts_total") == expected, "log: \(log)")
                #expect(expected[["result": "delivered", "class": "2.0"]] == 16)
                #expect(expected[["result": "failed", "class": "5.1"]] == 2)
                #expect(expected[["result": "deferred", "class": "4.2"]] == 2)
                #expect(expected[["result": "bounced", "class": "none"]] == 2)
                #expect(expected[["result": "held", "class": "none"]] == 1)

                // Latency, arrival to final outcome: one observation per final outcome.
                let latency = "herald_delivery_latency_seconds"
                #expect(after.value(latency + "_count", ["result": "delivered"]) == 16)
                #expect(after.value(latency + "_count", ["result": "failed"]) == 2)
                #expect(after.value(latency + "_bucket", ["result": "delivered", "le": "+Inf"]) == 16)
                #expect(after.value(latency + "_bucket", ["result": "delivered", "le": "60.0"]) == 16, "all within a minute")
                #expect((after.value(latency + "_sum", ["result": "delivered"]) ?? 0) > 0)
                #expect(after.series(latency + "_count")[["result": "deferred"]] == nil, "a deferral is no outcome")

                // Spool depth and octets: what the files say.
                #expect(after.value("herald_spool_messages", ["state": "queued"]) == 0)
                #expect(after.value("herald_spool_messages", ["state": "deferred"]) == 1)
                #expect(after.value("herald_spool_messages", ["state": "held"]) == 1)
                #expect(after.value("herald_spool_bytes", ["state": "deferred"]) == Double(Self.messageBytes(herald, "queue")))
                #expect(after.value("herald_spool_bytes", ["state": "held"]) == Double(Self.messageBytes(herald, "hold")))
                #expect(after.value("herald_spool_bytes", ["state": "queued"]) == 0)

                // Destinations: only the campaign's deferred recipient waits (its route).
                let waiting = after.series("herald_destination_messages")
                #expect(waiting.count == 1 && waiting.values.first == 1, "\(waiting)")
                #expect(waiting.keys.first?["destination"]?.contains("*.\(Self.campaignDomain)") == true, "\(waiting)")
                // A window exists while the destination has a queue (one with only deferred
                // mail may have none until its retry is due).
                #expect(Set(after.series("herald_destination_window").keys).isSubset(of: Set(waiting.keys)))
                #expect(after.value("herald_destinations") == 1)

                // DNS: the first message missed the cache, the next ones hit it.
                #expect((after.value("herald_dns_cache_misses_total") ?? 0) >= 2, "\(after.series("herald_dns_cache_misses_total"))")
                #expect((after.value("herald_dns_cache_hits_total") ?? 0) >= 3, "\(after.series("herald_dns_cache_hits_total"))")
                // Connections: opened, and reused for later transactions to the same sink.
                #expect((after.value("herald_smtp_connections_opened_total") ?? 0) >= 1)
                #expect((after.value("herald_smtp_connections_reused_total") ?? 0) >= 1)
                #expect(after.value("herald_smtp_pool_idle_connections") != nil)

                // The running campaign's counters are its stats.
                let c = ["campaign": String(campaign)]
                #expect(after.value("herald_campaign_recipients", c) == 10)
                #expect(after.value("herald_campaign_expanded", c) == 10)
                #expect(after.value("herald_campaign_sent", c) == 8)
                #expect(after.value("herald_campaign_bounced", c) == 1)
                #expect(after.value("herald_campaign_failed", c) == 0)

                // Cancelled: no longer running, its series end; its deferred message leaves.
                _ = try await api.expect(202, "POST", "/v1/campaigns/\(campaign)/cancel")
                var last = after
                let gone = try await DeliveryIT.waitUntil(timeout: 15) {
                    last = try await Scrape.fetch(url)
                    return last.value("herald_spool_messages", ["state": "deferred"]) == 0
                }
                #expect(gone, "\(last.series("herald_spool_messages"))")
                #expect(last.series("herald_campaign_sent").isEmpty, "\(last.series("herald_campaign_sent"))")
                #expect(last.series("herald_destination_messages").isEmpty)
                #expect(last.value("herald_delivery_attempts_total", ["result": "cancelled", "class": "none"]) == 1)
                #expect(last.series("herald_messages_accepted_total") == after.series("herald_messages_accepted_total"))
            }
        }

        @Test("[http] metrics_token guards /metrics; metrics = false removes it")
        func access() async throws {
            var options = HeraldProcess.Options()
            options.http = true
            // A port known up front: the restart below binds it again.
            let port = try HeraldProcess.freeLoopbackPort()
            options.httpAddress = "127.0.0.1:\(port)"
            options.extraHTTP = ["metrics_token = \"scrape-token-0123\""]
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let url = "http://127.0.0.1:\(port)/metrics"
                #expect(try await Scrape.fetch(url).status == 401)
                #expect(try await Scrape.fetch(url, token: "scrape-token-0124").status == 401)
                let ok = try await Scrape.fetch(url, token: "scrape-token-0123")
                #expect(ok.status == 200)
                #expect(ok.types["herald_spool_messages"] == nil, "no queue manager without delivery")

                var off = herald.options
                off.extraHTTP = ["metrics = false"]
                try await herald.restart(with: off)
                // Up when /healthz answers (the log still holds the first run's listening line).
                let up = await DeliveryIT.waitUntil(timeout: 10) {
                    (try? await Scrape.fetch("http://127.0.0.1:\(port)/healthz"))?.status == 200
                }
                #expect(up, "\(herald.diagnostics())")
                #expect(try await Scrape.fetch(url).status == 404)
                #expect(try await Scrape.fetch("http://127.0.0.1:\(port)/healthz").status == 200)
            }
        }

        /// The `class` label of a delivery-log line: the enhanced code's class and
        /// subject, else the reply code's class with `.0`, else `none`.
        static func codeClass(_ line: [String: Any]) -> String {
            if let enhanced = line["enhanced"] as? String {
                let parts = enhanced.split(separator: ".")
                if parts.count == 3 { return "\(parts[0]).\(parts[1])" }
            }
            if let code = line["code"] as? Int { return "\(code / 100).0" }
            return "none"
        }

        /// The octets of the `.msg` files in one of the spool's queues.
        static func messageBytes(_ herald: HeraldProcess, _ queue: String) -> Int {
            herald.spoolFiles(queue).filter { $0.hasSuffix(".msg") }.reduce(0) { sum, path in
                let attributes = try? FileManager.default.attributesOfItem(atPath: herald.spoolPath + "/\(queue)/" + path)
                return sum + ((attributes?[.size] as? NSNumber)?.intValue ?? 0)
            }
        }

        /// Waits until the delivery log has not changed for two seconds.
        static func waitForQuietLog(_ herald: HeraldProcess, timeout: Double) async throws -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            var last = DeliveryIT.deliveryLog(herald).count
            var since = Date()
            while Date() < deadline {
                try await Task.sleep(for: .milliseconds(250))
                let now = DeliveryIT.deliveryLog(herald).count
                if now != last {
                    last = now
                    since = Date()
                } else if Date().timeIntervalSince(since) >= 2 {
                    return true
                }
            }
            return false
        }
    }
}

/// One scrape of `/metrics`, parsed by `prometheus_client.parser` in a Python process.
struct Scrape: @unchecked Sendable {
    var status: Int
    var contentType: String
    var body: String
    /// Samples: name, labels, value.
    var samples: [(name: String, labels: [String: String], value: Double)]
    /// Family name (as the parser names it: counters without `_total`) → type.
    var types: [String: String]

    /// Every sample of `name`: labels → value.
    func series(_ name: String) -> [[String: String]: Double] {
        var out: [[String: String]: Double] = [:]
        for s in samples where s.name == name { out[s.labels] = s.value }
        return out
    }

    /// The sample of `name` with exactly these labels.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    private static let script = #"""
import json, sys, urllib.request, urllib.error
from prometheus_client.parser import text_string_to_metric_families
url, token = sys.argv[1:3]
headers = {"Authorization": "Bearer " + token} if token else {}
try:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        status, ct, body = r.status, r.headers.get("Content-Type") or "", r.read().decode()
except urllib.error.HTTPError as e:
    status, ct, body = e.code, e.headers.get("Content-Type") or "", e.read().decode("utf-8", "replace")
samples, types = [], {}
if status == 200 and ct.startswith("text/plain"):
    for family in text_string_to_metric_families(body):
        types[family.name] = family.type
        for s in family.samples:
            samples.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps({"status": status, "ct": ct, "body": body, "samples": samples, "types": types}))
"""#

    static func fetch(_ url: String, token: String = "") async throws -> Scrape {
        let r = try await Command.run("/usr/bin/env", ["python3", "-c", script, url, token], timeout: 60)
        guard r.termination.succeeded,
              let o = try? JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [String: Any]
        else { throw SubprocessError("scrape of \(url) failed: \(r)") }
        let samples = (o["samples"] as? [[String: Any]] ?? []).map { s in
            (name: s["name"] as? String ?? "", labels: s["labels"] as? [String: String] ?? [:],
             value: (s["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
        return Scrape(status: o["status"] as? Int ?? 0, contentType: o["ct"] as? String ?? "",
                      body: o["body"] as? String ?? "", samples: samples, types: o["types"] as? [String: String] ?? [:])
    }
}
