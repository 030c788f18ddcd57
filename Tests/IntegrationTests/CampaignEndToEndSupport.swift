import Foundation
import HeraldTestSupport
import Spool
import Testing

/// Shared helpers of the `Campaign*EndToEnd` scenarios: a Herald on a private
/// PostgreSQL database with the HTTP API on a port known up front (so that
/// `[http] public_url`, the base of the unsubscribe links, names it), a tenant and its
/// API key, HTTP calls through Python's urllib, SQL through psql, and a census of the
/// spool's envelopes by recipient.
enum CampaignIT {
    /// A fixed unsubscribe key: several nodes on one database must share it.
    static let secret = "campaign-end-to-end-unsubscribe-secret-0123456789"

    /// Herald options: the HTTP API on `httpPort`, `[database] url`, `public_url` on the
    /// same port, delivery as `DeliveryIT.options` makes it (with `routes`).
    static func options(database: String, httpPort: Int, delivery: Bool, toml: [String] = []) -> HeraldProcess.Options {
        var o = DeliveryIT.options(toml: ["[database]\nurl = \"\(database)\""] + toml, enabled: delivery)
        o.http = true
        o.httpAddress = "127.0.0.1:\(httpPort)"
        o.extraHTTP = ["public_url = \"http://127.0.0.1:\(httpPort)\"", "unsubscribe_secret = \"\(secret)\""]
        return o
    }

    /// What ``withDeliveringHerald(database:domain:_:)`` hands its body.
    struct Delivering {
        var herald: HeraldProcess
        var api: API
        var sink: SinkProcess
        var database: String
    }

    /// A delivering Herald on a fresh database named after `prefix`, with every
    /// subdomain of `domain` and the campaigns' sender domain `campaign.test` (where
    /// DSNs to the per-recipient senders go) routed to a new sink, and tenant "acme"'s API;
    /// `toml` adds top-level tables to the config.
    static func withDeliveringHerald(database prefix: String, domain: String, http: [String] = [], toml: [String] = [],
                                     _ body: (Delivering) async throws -> Void) async throws {
        let pg = try await PostgresServer.shared()
        let database = try await pg.createDatabase(prefix: prefix)
        let sink = try await SinkProcess()
        defer { Task { await sink.stop() } }
        let httpPort = try HeraldProcess.freeLoopbackPort()
        var options = options(database: database, httpPort: httpPort, delivery: true, toml: [
            DeliveryIT.route("*.\(domain)", port: sink.port), DeliveryIT.route("campaign.test", port: sink.port),
        ] + toml)
        options.extraHTTP += http
        try await HeraldProcess.with(options) { herald in
            _ = try await herald.httpPort()
            let api = API(port: httpPort, key: try await createTenant(herald, "acme"))
            try await body(Delivering(herald: herald, api: api, sink: sink, database: database))
        }
    }

    /// `herald tenant create NAME`; returns the API key it prints.
    static func createTenant(_ herald: HeraldProcess, _ name: String) async throws -> String {
        let r = try await herald.cli(["tenant", "create", name])
        guard r.termination.succeeded,
              let line = r.stdoutText.split(separator: "\n").first(where: { $0.hasPrefix("api_key:") })
        else { throw SubprocessError("herald tenant create failed: \(r)") }
        return line.dropFirst("api_key:".count).trimmingCharacters(in: .whitespaces)
    }

    /// Every tenant's id (as an envelope's tag spells it), by name, from `herald tenant list --json`.
    static func tenantIDs(_ herald: HeraldProcess) async throws -> [String: String] {
        let list = try await herald.cli(["tenant", "list", "--json"])
        guard let tenants = try JSONSerialization.jsonObject(with: Data(list.stdoutText.utf8)) as? [[String: Any]]
        else { throw SubprocessError("herald tenant list --json: \(list)") }
        return Dictionary(uniqueKeysWithValues: tenants.compactMap { tenant in
            (tenant["name"] as? String).flatMap { name in (tenant["id"] as? Int).map { (name, String($0)) } }
        })
    }

    struct Reply: @unchecked Sendable {
        var status: Int
        var contentType: String
        /// Response headers, names lower-cased.
        var headers: [String: String] = [:]
        var json: Any?
        var text: String
        var object: [String: Any] { json as? [String: Any] ?? [:] }
    }

    private static let httpScript = #"""
import json, sys, urllib.request, urllib.error
method, url, key, ctype, body = sys.argv[1:6]
data = None
if body.startswith("@"):
    data = open(body[1:], "rb").read()
elif body:
    data = body.encode()
headers = {}
if key: headers["Authorization"] = "Bearer " + key
if ctype: headers["Content-Type"] = ctype
req = urllib.request.Request(url, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        status, ct, raw, hs = r.status, r.headers.get("Content-Type") or "", r.read(), r.headers
except urllib.error.HTTPError as e:
    status, ct, raw, hs = e.code, e.headers.get("Content-Type") or "", e.read(), e.headers
print(json.dumps({"status": status, "ct": ct, "body": raw.decode("utf-8", "replace"),
                  "headers": {k.lower(): v for k, v in hs.items()}}))
"""#

    /// One HTTP request: `body` is JSON text, `@path` (a file's bytes), or empty.
    static func http(_ method: String, _ url: String, key: String = "", contentType: String = "application/json",
                     body: String = "") async throws -> Reply {
        let r = try await Command.run("/usr/bin/env", ["python3", "-c", httpScript, method, url, key,
                                                        body.isEmpty ? "" : contentType, body], timeout: 150)
        guard r.termination.succeeded,
              let o = try? JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [String: Any]
        else { throw SubprocessError("HTTP \(method) \(url) failed: \(r)") }
        let text = o["body"] as? String ?? ""
        return Reply(status: o["status"] as? Int ?? 0, contentType: o["ct"] as? String ?? "",
                     headers: o["headers"] as? [String: String] ?? [:],
                     json: try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]),
                     text: text)
    }

    static func json(_ value: Any) -> String {
        String(decoding: try! JSONSerialization.data(withJSONObject: value), as: UTF8.self)
    }

    /// A client of one Herald's `/v1` API with one tenant's key.
    struct API {
        var port: Int
        var key: String
        var base: String { "http://127.0.0.1:\(port)" }

        func call(_ method: String, _ path: String, _ body: Any? = nil) async throws -> Reply {
            try await CampaignIT.http(method, base + path, key: key, body: body.map(CampaignIT.json) ?? "")
        }

        /// Requires the status; returns the JSON object.
        func expect(_ status: Int, _ method: String, _ path: String, _ body: Any? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String: Any] {
            let r = try await call(method, path, body)
            guard r.status == status else {
                throw SubprocessError("\(method) \(path): expected \(status), got \(r.status): \(r.text.prefix(2000))")
            }
            return r.object
        }

        func createList(_ name: String) async throws -> Int {
            let o = try await expect(201, "POST", "/v1/lists", ["name": name])
            return try #require(o["id"] as? Int, "list id in \(o)")
        }

        /// `POST /v1/lists/{id}/import` with the CSV file at `path`.
        func importCSV(list: Int, path: String) async throws -> [String: Any] {
            let r = try await CampaignIT.http("POST", base + "/v1/lists/\(list)/import", key: key,
                                              contentType: "text/csv", body: "@" + path)
            guard r.status == 200 else { throw SubprocessError("import: \(r.status) \(r.text.prefix(2000))") }
            return r.object
        }

        func createCampaign(list: Int, name: String) async throws -> Int {
            let o = try await expect(201, "POST", "/v1/campaigns", [
                "name": name, "from": "Herald News <news@campaign.test>",
                "subject": "Hello {{first_name}}, issue \(name)",
                "html": "<p>Dear <b>{{first_name}}</b>,</p><p>news for {{email}}.</p>"
                    + "<p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>",
                "list_ids": [list],
            ])
            return try #require(o["id"] as? Int, "campaign id in \(o)")
        }

        func send(campaign: Int) async throws {
            _ = try await expect(202, "POST", "/v1/campaigns/\(campaign)/send")
        }

        func stats(campaign: Int) async throws -> [String: Any] {
            try await expect(200, "GET", "/v1/campaigns/\(campaign)/stats")
        }

        /// Polls the stats until every recipient is expanded into a spool (every chunk
        /// done), or `timeout` passes; returns the last stats. Without delivery a campaign
        /// stays `sending` from then on: its mail waits.
        func waitUntilExpanded(campaign: Int, timeout: Double) async throws -> [String: Any] {
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let s = try await stats(campaign: campaign)
                let done = (s["chunks"] as? Int).map { $0 > 0 && s["chunks_done"] as? Int == $0 } ?? false
                if done || Date() >= deadline { return s }
                try await Task.sleep(for: .milliseconds(200))
            }
        }

        /// Polls the stats until the campaign is `sent` (or `timeout` passes); returns the last stats.
        func waitUntilSent(campaign: Int, timeout: Double) async throws -> [String: Any] {
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let s = try await stats(campaign: campaign)
                if s["status"] as? String == "sent" || Date() >= deadline { return s }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Writes a CSV of `count` subscribers `u<i>@s<i % 10>.<domain>` with first names `First<i>`.
    static func writeCSV(count: Int, domain: String, to path: String) throws {
        var text = "email,first_name,last_name,plan\n"
        text.reserveCapacity(count * 50)
        for i in 0..<count { text += "u\(i)@s\(i % 10).\(domain),First\(i),Last\(i),p\(i % 3)\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func address(_ i: Int, domain: String) -> String { "u\(i)@s\(i % 10).\(domain)" }

    /// Runs SQL with psql against `database` (a URL); returns the unaligned, tuples-only output.
    @discardableResult
    static func sql(_ database: String, _ query: String) async throws -> String {
        let r = try await Command.run("psql", [database, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", query], timeout: 60)
        guard r.termination.succeeded else { throw SubprocessError("psql failed: \(r)") }
        return r.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Every envelope in the spool's `queue/` (those still only in the journal included):
    /// recipient address → count.
    static func spoolCensus(_ herald: HeraldProcess) -> (byRecipient: [String: Int], envelopes: Int, unreadable: Int) {
        var counts: [String: Int] = [:]
        var unreadable = 0
        let root = herald.spoolPath + "/queue/"
        var envelopes = herald.queuedEnvelopes()
        let read = Set(envelopes.map(\.id.rawValue))
        // Files the spool could not decode are counted as unreadable.
        for path in herald.spoolFiles("queue") where path.hasSuffix(".env") {
            let id = String((path as NSString).lastPathComponent.dropLast(4))
            if read.contains(id) { continue }
            if let data = FileManager.default.contents(atPath: root + path), let envelope = try? EnvelopeCoding.decode(Array(data)) {
                envelopes.append(envelope)
            } else {
                unreadable += 1
            }
        }
        for envelope in envelopes {
            for r in envelope.recipients { counts[r.address.lowercased(), default: 0] += 1 }
        }
        return (counts, envelopes.count, unreadable)
    }

    /// Compares a census with the expected addresses: missing ones and duplicated ones.
    static func check(_ counts: [String: Int], expected: Set<String>) -> (missing: [String], duplicated: [String],
                                                                          unexpected: [String]) {
        let missing = expected.filter { counts[$0] == nil }.sorted()
        let duplicated = counts.filter { $0.value > 1 }.map(\.key).sorted()
        let unexpected = counts.keys.filter { !expected.contains($0) }.sorted()
        return (missing, duplicated, unexpected)
    }
}
