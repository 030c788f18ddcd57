import Foundation
import HeraldTestSupport
import Testing

/// A campaign to 10,000 subscribers, end to end: CSV import over HTTP, send, delivery to
/// a local sink; every address gets exactly one personalized, valid MIME message; the
/// one-click unsubscribe of `List-Unsubscribe` works over HTTP and keeps the address out
/// of the next campaign.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct CampaignDeliveryEndToEnd {
        static let domain = "camp.test"
        static let count = 10_000

        @Test("10,000 subscribers: one personalized MIME message each at the sink; one-click unsubscribe excludes")
        func tenThousand() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "campaign_e2e")
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: true,
                                             toml: [DeliveryIT.route("*.\(Self.domain)", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("newsletter")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: Self.count, domain: Self.domain, to: csv)
                var t0 = Date()
                let imported = try await api.importCSV(list: list, path: csv)
                print("campaign e2e: imported \(imported["imported"] ?? "?") rows in \(String(format: "%.2f", -t0.timeIntervalSinceNow)) s")
                #expect(imported["imported"] as? Int == Self.count)
                #expect(imported["rejected_count"] as? Int == 0)

                // First campaign: everyone.
                let first = try await api.createCampaign(list: list, name: "one")
                t0 = Date()
                try await api.send(campaign: first)
                let stats = try await api.waitUntilSent(campaign: first, timeout: 60)
                let expansion = -t0.timeIntervalSinceNow
                print("campaign e2e: expansion of \(Self.count) took \(String(format: "%.2f", expansion)) s; stats \(stats)")
                #expect(stats["status"] as? String == "sent")
                #expect(stats["expanded"] as? Int == Self.count)
                let arrived = await sink.waitForMessages(Self.count, timeout: 100)
                print("campaign e2e: \(arrived) messages at the sink \(String(format: "%.2f", -t0.timeIntervalSinceNow)) s after send")
                try #require(arrived == Self.count, "only \(arrived) of \(Self.count) arrived\n\(herald.diagnostics())")

                // Once each, by envelope recipient.
                var byRecipient: [String: Int] = [:]
                for info in sink.index() { for r in info.rcpts { byRecipient[r.lowercased(), default: 0] += 1 } }
                let expected = Set((0..<Self.count).map { CampaignIT.address($0, domain: Self.domain) })
                let check = CampaignIT.check(byRecipient, expected: expected)
                print("campaign e2e: sink missing \(check.missing.count), duplicated \(check.duplicated.count), unexpected \(check.unexpected.count)")
                #expect(check.missing.isEmpty, "missing: \(check.missing.prefix(10))")
                #expect(check.duplicated.isEmpty, "duplicated: \(check.duplicated.prefix(10))")
                #expect(check.unexpected.isEmpty, "unexpected: \(check.unexpected.prefix(10))")

                // A sample of 200 parsed back with Python's email package.
                let parsed = try await Self.parseSample(sink.outDirectory, every: Self.count / 200)
                #expect(parsed.count == 200)
                var unsubscribeURLs: [String: String] = [:]
                for m in parsed {
                    let to = m["to"] as? String ?? ""
                    let i = Int(to.dropFirst().prefix { $0.isNumber }) ?? -1
                    #expect(m["defects"] as? [String] == [], "\(to): \(m["defects"] ?? "")")
                    #expect(m["type"] as? String == "multipart/alternative", "\(to)")
                    #expect(m["subject"] as? String == "Hello First\(i), issue one", "\(to)")
                    #expect((m["html"] as? String)?.contains("<b>First\(i)</b>") == true, "\(to)")
                    #expect((m["text"] as? String)?.contains("First\(i)") == true, "\(to)")
                    #expect((m["html"] as? String)?.contains(to) == true, "\(to)")
                    #expect(m["lu_post"] as? String == "List-Unsubscribe=One-Click", "\(to)")
                    let lu = m["lu"] as? String ?? ""
                    #expect(lu.hasPrefix("<http://127.0.0.1:\(httpPort)/u/"), "\(to): List-Unsubscribe \(lu)")
                    if lu.hasPrefix("<"), lu.hasSuffix(">") { unsubscribeURLs[to] = String(lu.dropFirst().dropLast()) }
                }

                // One-click unsubscribe for three of them, over HTTP.
                let leaving = Array(unsubscribeURLs.keys.sorted().prefix(3))
                try #require(leaving.count == 3)
                for address in leaving {
                    let r = try await CampaignIT.http("POST", unsubscribeURLs[address]!,
                                                      contentType: "application/x-www-form-urlencoded",
                                                      body: "List-Unsubscribe=One-Click")
                    #expect((200..<300).contains(r.status), "one-click for \(address): \(r.status) \(r.text.prefix(300))")
                    let s = try await api.expect(200, "GET", "/v1/lists/\(list)/subscribers?email=\(address)")
                    #expect(s["status"] as? String == "unsubscribed", "\(address): \(s)")
                }

                let afterUnsubscribe = try await api.stats(campaign: first)
                print("campaign e2e: first campaign after 3 one-click unsubscribes: \(afterUnsubscribe)")
                #expect(afterUnsubscribe["unsubscribed"] as? Int == 3)

                // The second campaign reaches everyone else, not them.
                let second = try await api.createCampaign(list: list, name: "two")
                t0 = Date()
                try await api.send(campaign: second)
                let stats2 = try await api.waitUntilSent(campaign: second, timeout: 60)
                print("campaign e2e: second expansion took \(String(format: "%.2f", -t0.timeIntervalSinceNow)) s; stats \(stats2)")
                #expect(stats2["status"] as? String == "sent")
                #expect(stats2["expanded"] as? Int == Self.count - 3)
                let arrived2 = await sink.waitForMessages(2 * Self.count - 3, timeout: 100)
                #expect(arrived2 == 2 * Self.count - 3)
                // Give stragglers a moment, then look at who got the second issue.
                try await Task.sleep(for: .milliseconds(500))
                let secondMessageIDs = Set(try await Self.subjects(sink.outDirectory, from: Self.count - 10)
                    .filter { $0.value.hasSuffix("issue two") }.map(\.key))
                for address in leaving {
                    #expect(!secondMessageIDs.contains(address), "\(address) unsubscribed but got the second campaign")
                }
                #expect(secondMessageIDs.count == Self.count - 3)
            }
        }

        /// Parses every `every`-th .eml with Python's email package (policy.default, with
        /// a strict check of CRLF line ends); returns one object per message.
        static func parseSample(_ directory: String, every: Int) async throws -> [[String: Any]] {
            let script = """
            import email, email.policy, glob, json, sys
            paths = sorted(glob.glob(sys.argv[1] + "/*.eml"))[::int(sys.argv[2])]
            out = []
            for path in paths:
                raw = open(path, "rb").read()
                defects = []
                if b"\\n" in raw.replace(b"\\r\\n", b""): defects.append("bare LF")
                m = email.message_from_bytes(raw, policy=email.policy.default)
                defects += [str(d) for d in m.defects]
                for part in m.walk(): defects += [str(d) for d in part.defects]
                html = m.get_body(("html",))
                text = m.get_body(("plain",))
                out.append({"to": str(m["To"].addresses[0].addr_spec), "subject": str(m["Subject"]),
                            "type": m.get_content_type(), "defects": defects,
                            "html": html.get_content() if html else None, "text": text.get_content() if text else None,
                            "lu": str(m["List-Unsubscribe"]), "lu_post": str(m["List-Unsubscribe-Post"])})
            print(json.dumps(out))
            """
            let r = try await Command.run("/usr/bin/env", ["python3", "-c", script, directory, String(every)], timeout: 60)
            return try #require(JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [[String: Any]], "\(r)")
        }

        /// Recipient (To) → Subject of the .eml files numbered `from` and up.
        static func subjects(_ directory: String, from: Int) async throws -> [String: String] {
            let script = """
            import email, email.policy, glob, json, os, sys
            out = {}
            for path in sorted(glob.glob(sys.argv[1] + "/*.eml")):
                if int(os.path.basename(path)[:-4]) < int(sys.argv[2]): continue
                m = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
                out[m["To"].addresses[0].addr_spec] = str(m["Subject"])
            print(json.dumps(out))
            """
            let r = try await Command.run("/usr/bin/env", ["python3", "-c", script, directory, String(from)], timeout: 90)
            return try #require(JSONSerialization.jsonObject(with: Data(r.stdoutText.utf8)) as? [String: String], "\(r)")
        }
    }
}
