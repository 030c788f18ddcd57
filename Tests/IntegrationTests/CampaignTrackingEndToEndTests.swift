import Foundation
import HeraldTestSupport
import Testing

/// Open and click tracking through `herald serve`: a campaign with `track_opens` and
/// `track_clicks` is delivered to a sink; a real HTTP client (Python's urllib, redirects
/// not followed) loads each message's open image and follows its rewritten links; the
/// stats and the per-link counts add up; `mailto:`, `#anchors` and the unsubscribe link
/// are left as written; altered, foreign-kind and made-up tokens are 404s; a campaign
/// without tracking carries no tracking link.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct CampaignTrackingEndToEnd {
        static let domain = "track.test"

        /// Reads the messages (.eml files), and for each: the HTML part's hrefs and image
        /// sources; then GETs each tracking URL (`/t/…`) once without following redirects.
        static let client = #"""
import email, json, re, sys, urllib.request, urllib.error
from email import policy
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
opener = urllib.request.build_opener(NoRedirect)
def get(url):
    try:
        with opener.open(url, timeout=20) as r:
            return {"status": r.status, "location": r.headers.get("Location"), "type": r.headers.get("Content-Type"), "size": len(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "location": e.headers.get("Location"), "type": e.headers.get("Content-Type"), "size": len(e.read())}
out = []
mode = sys.argv[1]
if mode == "get":
    print(json.dumps([{"url": u, **get(u)} for u in sys.argv[2:]]))
    sys.exit(0)
follow = mode == "follow"
for path in sys.argv[2:]:
    m = email.message_from_binary_file(open(path, "rb"), policy=policy.default)
    html = m.get_body(("html",)).get_content()
    text = m.get_body(("plain",)).get_content()
    hrefs = [a or b for a, b in re.findall(r'(?i)href=(?:"([^"]*)"|'"'"'([^'"'"']*)'"'"')', html)]
    imgs = re.findall(r'<img src="([^"]*)"', html)
    item = {"to": str(m["To"]), "hrefs": hrefs, "imgs": imgs, "text": text, "visits": []}
    if follow:
        for u in imgs + hrefs:
            if "/t/" in u:
                item["visits"].append({"url": u, **get(u)})
    out.append(item)
print(json.dumps(out))
"""#

        /// GETs each URL once, redirects not followed (nothing leaves loopback).
        static func get(_ urls: [String]) async throws -> [[String: Any]] {
            let r = try await Command.run("/usr/bin/env", ["python3", "-c", client, "get"] + urls, timeout: 120)
            guard r.termination.succeeded,
                  let items = try JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [[String: Any]]
            else { throw SubprocessError("client: \(r)") }
            return items
        }

        static func inspect(_ sink: SinkProcess, follow: Bool) async throws -> [[String: Any]] {
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: sink.outDirectory)) ?? [])
                .filter { $0.hasSuffix(".eml") }.sorted().map { sink.outDirectory + "/" + $0 }
            let r = try await Command.run("/usr/bin/env", ["python3", "-c", client, follow ? "follow" : "look"] + files,
                                          timeout: 120)
            guard r.termination.succeeded,
                  let items = try JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [[String: Any]]
            else { throw SubprocessError("client: \(r)") }
            return items
        }

        @Test("opens and clicks are counted; links redirect to their targets; forgeries are 404s")
        func tracking() async throws {
            try await CampaignIT.withDeliveringHerald(database: "campaign_tracking_e2e", domain: Self.domain) { h in
                let api = h.api
                let list = try await api.createList("tracked")
                let csv = h.herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: 3, domain: Self.domain, to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let html = """
                    <html><body><p>Hi {{first_name}}</p>
                    <p><a href="https://shop.example/sale?a=1&amp;b=2">Sale</a>
                    <A class="x" HREF='http://news.example/read'>Read</A>
                    <a href="mailto:help@campaign.test">Mail us</a> <a href="#top">Top</a>
                    <a href="{{unsubscribe_url}}">Unsubscribe</a></p></body></html>
                    """
                let created = try await api.expect(201, "POST", "/v1/campaigns", [
                    "name": "tracked", "from": "News <news@campaign.test>", "subject": "Sale {{first_name}}",
                    "html": html, "list_ids": [list], "track_opens": true, "track_clicks": true,
                ])
                #expect(created["track_opens"] as? Bool == true && created["track_clicks"] as? Bool == true)
                let campaign = try #require(created["id"] as? Int)
                try await api.send(campaign: campaign)
                let sent = try await api.waitUntilSent(campaign: campaign, timeout: 40)
                #expect(sent["sent"] as? Int == 3, "\(sent)")

                let base = api.base
                let items = try await Self.inspect(h.sink, follow: true)
                #expect(items.count == 3)
                var tokens: [String] = []
                for item in items {
                    let hrefs = item["hrefs"] as? [String] ?? []
                    let imgs = item["imgs"] as? [String] ?? []
                    #expect(imgs.count == 1 && imgs[0].hasPrefix(base + "/t/o/"), "\(imgs)")
                    let tracked = hrefs.filter { $0.hasPrefix(base + "/t/c/") }
                    #expect(tracked.count == 2, "\(hrefs)")
                    #expect(hrefs.contains("mailto:help@campaign.test") && hrefs.contains("#top"), "\(hrefs)")
                    #expect(hrefs.contains { $0.hasPrefix(base + "/u/") }, "the unsubscribe link stays: \(hrefs)")
                    // The text part is not rewritten.
                    #expect(!(item["text"] as? String ?? "").contains("/t/c/"))
                    let visits = item["visits"] as? [[String: Any]] ?? []
                    #expect(visits.count == 3)
                    for v in visits {
                        let url = v["url"] as? String ?? ""
                        tokens.append(url)
                        if url.contains("/t/o/") {
                            #expect(v["status"] as? Int == 200 && v["type"] as? String == "image/gif", "\(v)")
                            #expect(v["size"] as? Int == 43)
                        } else {
                            #expect(v["status"] as? Int == 302, "\(v)")
                            let location = v["location"] as? String
                            #expect(location == "https://shop.example/sale?a=1&b=2" || location == "http://news.example/read",
                                    "\(v)")
                        }
                    }
                }
                // One subscriber opens again and clicks the sale once more.
                let again = try #require(items.first?["visits"] as? [[String: Any]])
                let repeats = again.filter { $0["location"] as? String != "http://news.example/read" }
                    .compactMap { $0["url"] as? String }
                #expect(repeats.count == 2)
                _ = try await Self.get(repeats)
                let stats = try await api.stats(campaign: campaign)
                #expect(stats["opens"] as? Int == 4 && stats["unique_opens"] as? Int == 3, "\(stats)")
                #expect(stats["clicks"] as? Int == 7 && stats["unique_clicks"] as? Int == 3, "\(stats)")
                let links = try await api.expect(200, "GET", "/v1/campaigns/\(campaign)/links")
                let rows = links["data"] as? [[String: Any]] ?? []
                #expect(rows.count == 2, "\(links)")
                #expect(rows.first?["url"] as? String == "https://shop.example/sale?a=1&b=2")
                #expect(rows.first?["clicks"] as? Int == 4 && rows.first?["unique_clicks"] as? Int == 3, "\(rows)")

                // Forgeries: one character changed, an open token used as a click, made up.
                let click = try #require(tokens.first { $0.contains("/t/c/") })
                var altered = Array(click)
                let i = altered.count - 5
                altered[i] = altered[i] == "A" ? "B" : "A"
                let openToken = try #require(tokens.first { $0.contains("/t/o/") })
                let bad = [String(altered), openToken.replacingOccurrences(of: "/t/o/", with: "/t/c/"),
                           base + "/t/c/aGVsbG8.d29ybGQ", base + "/t/c/https%3A%2F%2Fevil.example"]
                for r in try await Self.get(bad) {
                    #expect(r["status"] as? Int == 404 && (r["location"] as? String) == nil, "\(r)")
                }
                let after = try await api.stats(campaign: campaign)
                #expect(after["clicks"] as? Int == 7, "forgeries counted nothing: \(after)")

                // Another tenant cannot read the links.
                let other = try await CampaignIT.createTenant(h.herald, "other")
                let foreign = try await CampaignIT.http("GET", base + "/v1/campaigns/\(campaign)/links", key: other)
                #expect(foreign.status == 404)

                // A campaign without tracking: links and images as written.
                let plain = try await api.createCampaign(list: list, name: "plain")
                try await api.send(campaign: plain)
                _ = try await api.waitUntilSent(campaign: plain, timeout: 40)
                let all = try await Self.inspect(h.sink, follow: false)
                #expect(all.count == 6)
                for item in all.suffix(3) {
                    #expect((item["imgs"] as? [String] ?? []).isEmpty)
                    #expect(!(item["hrefs"] as? [String] ?? []).contains { $0.contains("/t/") }, "\(item["hrefs"] ?? "")")
                }
            }
        }
    }
}
