import Foundation
import HeraldTestSupport
import Testing

/// The admin API and the console's postmaster view against the real `herald serve`:
/// mail to a destination that refuses connections waits in the queue (deferred, the
/// destination backing off with its reason), two messages are put on hold through the
/// API, and in headless Chromium (Clients/console_postmaster.py) the admin key signs in,
/// sees the destinations, the held messages and the delivery log, releases one message
/// and deletes the other; a tenant's key gets 403 from the admin API and the console
/// keeps it signed in. A second test holds, releases and deletes around SIGKILLs.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(5)))
    struct ConsolePostmasterEndToEnd {
        static let adminKey = "hk_postmaster-console-test-admin-key"
        /// `printf %s "$adminKey" | sha256sum`
        static let adminDigest = "cd71ea4a4af3a95dfcd53799892030f534a94ff315b96e38a2a5861f5444f31b"
        static let adminTOML = "[[admin_key]]\nname = \"postmaster\"\nsha256 = \"\(adminDigest)\""

        /// An admin API client.
        struct Admin {
            var base: String
            var key = ConsolePostmasterEndToEnd.adminKey

            func call(_ method: String, _ path: String) async throws -> CampaignIT.Reply {
                try await CampaignIT.http(method, base + path, key: key)
            }

            /// Holds `id`, trying again while an attempt is in flight (409).
            func hold(_ id: String) async throws -> Int {
                var status = 0
                _ = try await DeliveryIT.waitUntil(timeout: 20) {
                    status = try await call("POST", "/v1/admin/messages/\(id)/hold").status
                    return status != 409
                }
                return status
            }

            func held() async throws -> [String] {
                let r = try await call("GET", "/v1/admin/held")
                return (r.object["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            }
        }

        /// A `[[route]]` for `*.stuck.test` to a loopback port where nothing listens.
        static func stuckRoute() throws -> String {
            DeliveryIT.route("*.stuck.test", port: try HeraldProcess.freeLoopbackPort())
        }

        /// Where the message's envelope is: "queue", "hold", or nil (gone).
        static func place(_ herald: HeraldProcess, _ id: String) -> String? {
            for q in ["queue", "hold"] {
                let dir = herald.spoolPath + "/" + q
                for shard in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                where FileManager.default.fileExists(atPath: "\(dir)/\(shard)/\(id).env") {
                    return q
                }
            }
            return nil
        }

        @Test("admin view in Chromium: destinations with back-off, held messages released and deleted, the log; tenant key 403")
        func walkThrough() async throws {
            try await CampaignIT.withDeliveringHerald(database: "postmaster", domain: "pm.test", toml: [
                Self.adminTOML, try Self.stuckRoute(),
            ]) { h in
                let admin = Admin(base: h.api.base)
                let ids = try await DeliveryIT.submitAccepted(port: h.herald.port(), [
                    DeliveryIT.mail("keep", to: ["keep@a.stuck.test"]),
                    DeliveryIT.mail("drop", to: ["drop@b.stuck.test"]),
                    DeliveryIT.mail("wait", to: ["wait@c.stuck.test"]),
                    DeliveryIT.mail("fine", to: ["fine@s.pm.test"]),
                ])
                try #require(ids.count == 4)
                let (keep, drop) = (ids[0], ids[1])
                // The stuck ones deferred with the connection refused (one destination: the
                // route's smart host, backing off), the last one delivered.
                let deferred = await DeliveryIT.waitUntil(timeout: 30) {
                    let q = try? await admin.call("GET", "/v1/admin/queue")
                    let d = q?.object["destinations"] as? [[String: Any]] ?? []
                    return d.contains {
                        ($0["name"] as? String)?.hasSuffix("(*.stuck.test)") == true && $0["deferred"] as? Int == 3
                            && ($0["last_reply"] as? String)?.contains("connection refused") == true
                            && $0["messages"] as? Int == 3
                    }
                }
                let shape = try await admin.call("GET", "/v1/admin/queue").text
                #expect(deferred, "\(shape)")
                #expect(await h.sink.waitForMessages(1, timeout: 30) >= 1)

                // The tenant's key is refused (403), no key and a wrong key are 401.
                for (method, path) in [("GET", "/v1/admin/queue"), ("GET", "/v1/admin/held"), ("GET", "/v1/admin/log"),
                                       ("POST", "/v1/admin/messages/\(keep)/hold"), ("DELETE", "/v1/admin/messages/\(keep)")] {
                    let tenant = try await CampaignIT.http(method, h.api.base + path, key: h.api.key)
                    #expect(tenant.status == 403, "\(method) \(path) with the tenant key: \(tenant.status) \(tenant.text)")
                    let none = try await CampaignIT.http(method, h.api.base + path)
                    #expect(none.status == 401, "\(method) \(path) without a key: \(none.status)")
                    let wrong = try await CampaignIT.http(method, h.api.base + path, key: "hk_wrong")
                    #expect(wrong.status == 401, "\(method) \(path) with a wrong key: \(wrong.status)")
                }
                #expect(Self.place(h.herald, keep) == "queue", "the tenant's requests changed nothing")
                // The admin key is no tenant's key.
                #expect(try await CampaignIT.http("GET", h.api.base + "/v1/campaigns", key: Self.adminKey).status == 401)

                // Both stuck messages on hold through the API: at once in hold/, listed, logged as held.
                #expect(try await admin.hold(keep) == 200)
                #expect(try await admin.hold(drop) == 200)
                #expect(Self.place(h.herald, keep) == "hold")
                #expect(Set(try await admin.held()) == [keep, drop])
                #expect(try await admin.call("POST", "/v1/admin/messages/\(keep)/hold").status == 404, "held twice")
                #expect(try await admin.call("POST", "/v1/admin/messages/\(ids[2])/release").status == 404, "not held")
                #expect(try await admin.call("DELETE", "/v1/admin/messages/\(ids[3])").status == 404, "delivered")
                #expect(!DeliveryIT.logLines(h.herald, result: "held", recipient: "keep@a.stuck.test").isEmpty)

                let shots = ProcessInfo.processInfo.environment["HERALD_CONSOLE_SCREENSHOTS"]
                    ?? (NSTemporaryDirectory() + "herald-postmaster-screenshots-" + UUID().uuidString)
                let config = CampaignIT.json([
                    "base": h.api.base, "admin_key": Self.adminKey, "tenant_key": h.api.key, "screenshots": shots,
                    "keep": keep, "drop": drop,
                ])
                let r = try await Python.run(IT.script("console_postmaster.py"), [config], timeout: 180)
                print("console postmaster: screenshots in \(shots)\n\(r.stderrText.suffix(3000))")
                guard r.termination.succeeded, let line = r.stdoutText.split(separator: "\n").last,
                      let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else {
                    Issue.record("console_postmaster.py failed: \(r)\n\(h.herald.diagnostics())")
                    return
                }

                // Sign-in with the admin key: the postmaster view, and no tenant page in the menu.
                #expect(o["landing_hash"] as? String == "#/postmaster")
                #expect(o["nav_links"] as? [String] == ["Postmaster"], "\(o["nav_links"] ?? "")")
                #expect(o["role"] as? String == "admin")
                // The route's queue: one message waiting (the other two on hold), deferred,
                // its back-off or last reply naming the refused connection.
                let destinations = o["destinations"] as? [[String]] ?? []
                let stuck = destinations.first { $0.first?.hasSuffix("(*.stuck.test)") == true } ?? []
                #expect(stuck.count == 8 && stuck[1] == "1" && stuck[3] == "1", "\(destinations)")
                #expect(stuck.last?.contains("connection refused") == true, "\(stuck)")
                let held = o["held_ids"] as? [String] ?? []
                #expect(Set(held) == [keep, drop], "\(held)")
                #expect((o["held_total"] as? String) == "2")
                #expect((o["log_results"] as? [String])?.contains("held") == true, "\(o["log_results"] ?? "")")
                #expect((o["log_results"] as? [String])?.contains("delivered") == true, "\(o["log_results"] ?? "")")

                // Release and delete, each confirmed; the page shows what happened.
                #expect(o["release_notice"] as? String == "Message \(keep) was released.")
                #expect(o["delete_notice"] as? String == "Message \(drop) was deleted.")
                #expect(o["held_after"] as? [String] == [], "\(o["held_after"] ?? "")")
                #expect((o["dialogs"] as? [String])?.count == 2, "\(o["dialogs"] ?? "")")
                #expect(Self.place(h.herald, keep) == "queue")
                #expect(Self.place(h.herald, drop) == nil)
                #expect(try await admin.held().isEmpty)
                #expect(!DeliveryIT.logLines(h.herald, result: "released", recipient: "keep@a.stuck.test").isEmpty)
                #expect(!DeliveryIT.logLines(h.herald, result: "deleted", recipient: "drop@b.stuck.test").isEmpty)
                // The released message is scheduled again: a new attempt is logged.
                let attempts = DeliveryIT.logLines(h.herald, result: "deferred", recipient: "keep@a.stuck.test").count
                #expect(await DeliveryIT.waitUntil(timeout: 20) {
                    DeliveryIT.logLines(h.herald, result: "deferred", recipient: "keep@a.stuck.test").count > attempts
                })

                // Phone width.
                #expect((o["phone_overflow"] as? Int).map { $0 <= 0 } == true, "\(o["phone_overflow"] ?? "")")

                // The tenant's key in the console: no postmaster link; the page says why and keeps it signed in.
                #expect(o["tenant_nav_links"] as? [String] == ["Campaigns", "Lists", "SMTP users"], "\(o["tenant_nav_links"] ?? "")")
                #expect((o["tenant_postmaster_error"] as? String)?.contains("admin key") == true,
                        "\(o["tenant_postmaster_error"] ?? "")")
                #expect(o["tenant_still_signed_in"] as? Bool == true)
                #expect(o["tenant_destination_rows"] as? Int == 0)
                // The admin key on the tenant pages: told, not signed out.
                #expect(o["admin_on_campaigns"] as? String == "Not for an admin key")

                #expect((o["csp_violations"] as? [Any])?.isEmpty == true, "\(o["csp_violations"] ?? "")")
                #expect((o["page_errors"] as? [Any])?.isEmpty == true, "\(o["page_errors"] ?? "")")
                let screenshots = o["screenshots"] as? [String] ?? []
                #expect(screenshots.count == 3, "\(screenshots)")
            }
        }

        @Test("hold, release and delete through the admin API survive SIGKILL right after the answer")
        func killAfterSteering() async throws {
            let port = try HeraldProcess.freeLoopbackPort()
            var options = DeliveryIT.options(toml: [Self.adminTOML, try Self.stuckRoute()])
            options.http = true
            options.httpAddress = "127.0.0.1:\(port)"
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let admin = Admin(base: "http://127.0.0.1:\(port)")
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), [
                    DeliveryIT.mail("one", to: ["one@a.stuck.test"]), DeliveryIT.mail("two", to: ["two@a.stuck.test"]),
                ])
                try #require(ids.count == 2)
                for id in ids { #expect(try await admin.hold(id) == 200) }
                _ = await herald.kill()
                try await herald.restart()
                _ = try await herald.httpPort()
                #expect(ids.allSatisfy { Self.place(herald, $0) == "hold" })
                #expect(Set(try await admin.held()) == Set(ids), "held after the kill")

                #expect(try await admin.call("POST", "/v1/admin/messages/\(ids[0])/release").status == 200)
                #expect(try await admin.call("DELETE", "/v1/admin/messages/\(ids[1])").status == 204)
                _ = await herald.kill()
                #expect(Self.place(herald, ids[0]) == "queue")
                #expect(Self.place(herald, ids[1]) == nil)
                try await herald.restart()
                _ = try await herald.httpPort()
                #expect(try await admin.held().isEmpty)
                let q = try await admin.call("GET", "/v1/admin/queue")
                #expect(q.object["messages"] as? Int == 1, "\(q.text)")
                // The released message's envelope is intact: it is attempted again.
                #expect(await DeliveryIT.waitUntil(timeout: 20) {
                    DeliveryIT.logLines(herald, result: "deferred", recipient: "one@a.stuck.test").count >= 2
                })
            }
        }
    }
}
