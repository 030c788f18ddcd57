import Foundation
import HeraldTestSupport
import Testing

/// `GET /v1/campaigns/{id}/events` (Server-Sent Events) read by a real streaming HTTP
/// client while a campaign is sent through `herald serve` to a sink: progress events
/// from `draft` to `sent` with counters that only grow, ending with the stats the API
/// answers and an `end` event; another tenant gets a 404, a bad interval a 400, and
/// `[http] max_event_streams` is a limit whose slots come back when clients leave.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct CampaignEventsEndToEnd {
        static let domain = "events.test"
        static let count = 30

        /// Reads the stream until `end` (or `seconds`): prints one JSON line per event.
        static let reader = #"""
import http.client, json, sys, time
port, path, key, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
c.connect()
c.request("GET", path, headers={"Authorization": "Bearer " + key, "Accept": "text/event-stream"})
r = c.getresponse()
print(json.dumps({"status": r.status, "ct": r.getheader("Content-Type")}), flush=True)
if r.status != 200:
    print(json.dumps({"problem": r.read().decode()}), flush=True)
    sys.exit(0)
deadline = time.time() + seconds
event = {}
while time.time() < deadline:
    try:
        line = r.fp.readline()
    except (TimeoutError, OSError):
        break   # nothing more within the time given: the reader leaves
    if not line:
        break
    line = line.decode().rstrip("\n")
    if line == "":
        if event:
            print(json.dumps(event), flush=True)
            if event.get("event") == "end":
                break
        event = {}
    elif line.startswith(":"):
        print(json.dumps({"comment": line[1:].strip()}), flush=True)
    else:
        name, _, value = line.partition(":")
        event[name] = value[1:] if value.startswith(" ") else value
"""#

        static func read(_ port: Int, _ path: String, key: String, seconds: Double) async throws -> [[String: Any]] {
            let r = try await Command.run("/usr/bin/env", ["python3", "-u", "-c", reader, String(port), path, key,
                                                            String(seconds)], timeout: seconds + 30)
            #expect(r.termination.succeeded, "\(r)")
            return r.stdoutText.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }

        @Test("progress events from draft to sent, growing counters, the final stats, then end")
        func progressToEnd() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_events_e2e", domain: Self.domain,
                                                      http: ["max_event_streams = 2"]) { h in
                let api = h.api
                let list = try await api.createList("events")
                let csv = h.herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let campaign = try await api.createCampaign(list: list, name: "live")

                // The stream opens on the draft; the campaign is sent while it is read.
                async let events = Self.read(api.port, "/v1/campaigns/\(campaign)/events?interval_ms=250",
                                             key: api.key, seconds: 60)
                try await Task.sleep(for: .milliseconds(800))
                try await api.send(campaign: campaign)
                let all = try await events

                #expect(all.first?["status"] as? Int == 200)
                #expect((all.first?["ct"] as? String)?.hasPrefix("text/event-stream") == true, "\(all.first ?? [:])")
                let progress = all.filter { $0["event"] as? String == "progress" }
                let data = progress.compactMap { ($0["data"] as? String).flatMap {
                    try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } }
                #expect(data.count == progress.count && progress.count >= 3, "\(all)")
                #expect(data.first?["status"] as? String == "draft", "\(data.first ?? [:])")
                let ids = progress.compactMap { ($0["id"] as? String).flatMap(Int.init) }
                #expect(ids == Array(1...max(1, progress.count)), "ids \(ids)")
                // Counters only grow.
                for key in ["expanded", "sent", "chunks_done"] {
                    let values = data.compactMap { $0[key] as? Int }
                    #expect(values == values.sorted(), "\(key): \(values)")
                }
                let last = try #require(data.last)
                #expect(last["status"] as? String == "sent", "\(last)")
                #expect(last["sent"] as? Int == Self.count && last["remaining"] as? Int == 0, "\(last)")
                #expect(all.last?["event"] as? String == "end", "\(all.suffix(3))")
                #expect(all.last?["data"] as? String == #"{"status":"sent"}"#)
                // The last progress event is what /stats answers (counters).
                let stats = try await api.stats(campaign: campaign)
                for key in ["status", "total", "expanded", "sent", "bounced", "failed", "remaining"] {
                    #expect("\(stats[key] ?? "nil")" == "\(last[key] ?? "nil")", "\(key): \(stats) vs \(last)")
                }
                #expect(h.sink.index().count == Self.count)

                // Another tenant's key: 404 before any stream; a bad interval: 400.
                let other = try await CampaignIT.createTenant(h.herald, "other")
                let foreign = try await Self.read(api.port, "/v1/campaigns/\(campaign)/events", key: other, seconds: 10)
                #expect(foreign.first?["status"] as? Int == 404, "\(foreign)")
                let bad = try await Self.read(api.port, "/v1/campaigns/\(campaign)/events?interval_ms=5", key: api.key,
                                              seconds: 10)
                #expect(bad.first?["status"] as? Int == 400, "\(bad)")
            }
        }

        @Test("max_event_streams: one more stream is a 503 with Retry-After; a slot comes back when a client leaves")
        func streamLimit() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_events_limit", domain: Self.domain,
                                                      http: ["max_event_streams = 2"]) { h in
                let api = h.api
                let list = try await api.createList("limit")
                let campaign = try await api.createCampaign(list: list, name: "draft")
                let path = "/v1/campaigns/\(campaign)/events"
                // Two readers hold their streams for 4 s (a draft never ends).
                async let one = Self.read(api.port, path, key: api.key, seconds: 4)
                async let two = Self.read(api.port, path, key: api.key, seconds: 4)
                try await Task.sleep(for: .milliseconds(1500))
                let third = try await CampaignIT.http("GET", api.base + path, key: api.key)
                #expect(third.status == 503, "\(third.status) \(third.text)")
                #expect(third.contentType.hasPrefix("application/problem+json"))
                #expect(third.text.contains("max_event_streams"), "\(third.text)")
                let (a, b) = try await (one, two)
                #expect(a.first?["status"] as? Int == 200 && b.first?["status"] as? Int == 200)
                #expect(a.contains { $0["event"] as? String == "progress" })
                // The readers left; the server notices at its next write (a keep-alive
                // within 15 s) and the slots are free again.
                let admitted = try await DeliveryIT.waitUntil(timeout: 45) {
                    let r = try await Self.read(api.port, path, key: api.key, seconds: 1)
                    return r.first?["status"] as? Int == 200
                }
                #expect(admitted)
            }
        }
    }
}
