import Foundation
import HeraldTestSupport
import Testing

@testable import HTTPAPI

/// Segment, send rate and send window through the campaign routes (moved here from the
/// campaign segment tests, as it drives the HTTP API).
@Suite("Campaign segments over HTTP", .serialized)
struct CampaignSegmentHTTPTests {
    @Test(.enabled(if: PostgresServer.isAvailable))
    func httpTakesAndShowsSegmentRateAndWindow() async throws {
        try await CampaignHTTPTests.with { f, _, api, a, _ in
            var body = CampaignHTTPTests.campaignBody(f)
            body["segment"] = ["all": [["attribute": "plan", "op": "eq", "value": "plan3"]]]
            body["send_rate"] = "50/m"
            body["send_window"] = ["start": "08:00", "end": "20:00", "days": ["sat", "sun"]]
            body["max_attempts"] = 4
            let created = try await api.call(.post, "/v1/campaigns", key: a, json: body)
            #expect(created.status == .created, "\(created.json)")
            #expect(created.json["send_rate"] as? String == "50/m")
            #expect(created.json["max_attempts"] as? Int == 4)
            let copy = try await api.call(.post, "/v1/campaigns/\(created.id)/duplicate", key: a)
            #expect(copy.json["max_attempts"] as? Int == 4, "\(copy.json)")
            let window = created.json["send_window"] as? [String: Any]
            #expect(window?["start"] as? String == "08:00" && window?["days"] as? [String] == ["sat", "sun"])
            #expect(window?["recipient_time_zone"] as? Bool == false)
            let segment = created.json["segment"] as? [String: Any]
            #expect((segment?["all"] as? [[String: Any]])?.first?["value"] as? String == "plan3")

            // PATCH: null clears, left out keeps.
            let patched = try await api.call(.patch, "/v1/campaigns/\(created.id)", key: a,
                                             json: ["send_rate": NSNull(), "name": "Renamed"])
            #expect(patched.status == .ok)
            #expect(patched.json["send_rate"] is NSNull && patched.json["segment"] is [String: Any])
            #expect(patched.json["max_attempts"] as? Int == 4)
            let cleared = try await api.call(.patch, "/v1/campaigns/\(created.id)", key: a, json: ["max_attempts": NSNull()])
            #expect(cleared.json["max_attempts"] is NSNull, "\(cleared.json)")

            // Each bad field is a 422 naming it; nothing stored.
            let cases: [(String, Any, String)] = [
                ("segment", ["all": [["attribute": "plan", "op": "like", "value": "x"]]], "segment.all[0].op"),
                ("segment", "plan = gold", "segment: expected an object"),
                ("send_rate", "fast", "send_rate"),
                ("max_attempts", 0, "max_attempts"),
                ("max_attempts", 101, "max_attempts"),
                ("send_window", ["start": "9am", "end": "18:00"], "send_window.start"),
                ("send_window", ["start": "09:00", "end": "18:00", "time_zone": "Moon/Base"], "send_window.time_zone"),
            ]
            for (field, value, message) in cases {
                var bad = CampaignHTTPTests.campaignBody(f)
                bad[field] = value
                let reply = try await api.call(.post, "/v1/campaigns", key: a, json: bad)
                #expect(reply.status == .unprocessableContent && reply.isProblem, "\(field): \(reply.json)")
                #expect(reply.detail.contains(message), "\(field): \(reply.detail)")
            }
            #expect(try await f.int("SELECT count(*) FROM campaigns") == 2, "the campaign and its copy only")
        }
    }
}
