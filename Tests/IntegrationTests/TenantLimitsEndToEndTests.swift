import Foundation
import HeraldTestSupport
import Testing

/// Per-tenant limits through every entry path of a delivering `herald serve` on its own
/// PostgreSQL database, with a test MX on loopback:
/// - SMTP AUTH users belong to tenants (`[[user]] tenant`): a database tenant's mail is
///   tagged with its id, a config-only tenant's with its name;
/// - the operator sets tenant beta's limits with `herald tenant limits` (a quota of 2
///   per hour, a delivery rate of 1 per hour); beta's third SMTP message gets `452 4.7.1`
///   at the end of DATA and its next RCPT the same; its `POST /v1/messages` gets 429 with
///   `Retry-After`, its campaign send too: one quota over every entry path;
/// - beta's rate lets one of its two accepted messages reach the MX while alpha's mail,
///   submitted after it, all arrives: the second waits for its slot (an hour);
/// - beta reads its limits over the API and cannot change them (403); alpha has none
///   and is held back by nothing of beta's.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(4)))
    struct TenantLimits {
        static let domain = "limits.test"

        static func plain(_ user: String, _ password: String) -> String {
            Data("\0\(user)\0\(password)".utf8).base64EncodedString()
        }

        /// An authenticated SMTP session on the submission listener.
        static func session(_ herald: HeraldProcess, _ user: String, _ password: String) throws -> SMTPTestClient {
            let client = try SMTPTestClient(port: herald.port(role: "submission"), timeout: 30)
            try client.greetAndEhlo()
            let auth = try client.command("AUTH PLAIN " + plain(user, password))
            #expect(auth.status == "235 2.7.0", "\(auth)")
            return client
        }

        static func send(_ client: SMTPTestClient, _ tag: String, to: String) throws -> WireReply {
            let mail = DeliveryIT.mail(tag, from: "app@client.test", to: [to])
            return try client.sendMail(from: mail.from, to: mail.to, message: mail.message)
        }

        /// Recipients the test MX received.
        static func delivered(_ sink: SinkProcess) -> Set<String> { Set(sink.index().flatMap(\.rcpts)) }

        @Test("quota over SMTP AUTH, HTTP messages and campaign send; rate at delivery; tenants apart; limits read-only over the API")
        func limitsHoldOnEveryPath() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "tenant_limits")
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let httpPort = try HeraldProcess.freeLoopbackPort()
            var options = CampaignIT.options(database: database, httpPort: httpPort, delivery: true,
                                             toml: [DeliveryIT.route("*.\(Self.domain)", port: sink.port)])
            options.listeners = [.relay(tls: "off"), .submission(tls: "off", allowPlaintextAuth: true)]
            options.users = [.init("app-a", "pw-a", tenant: "alpha"), .init("app-b", "pw-b", tenant: "Beta"),
                             .init("app-c", "pw-c", tenant: "cfgonly")]
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let alpha = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "alpha"))
                let beta = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "beta"))
                let ids = try await CampaignIT.tenantIDs(herald)
                let alphaID = try #require(ids["alpha"]), betaID = try #require(ids["beta"])

                // The operator sets beta's limits; a bad value is refused with a reason.
                let set = try await herald.cli(["tenant", "limits", "beta", "--quota", "2/h", "--rate", "1/h"])
                #expect(set.termination.succeeded, "\(set)")
                #expect(set.stdoutText.contains("quota: 2/h") && set.stdoutText.contains("rate: 1/h"), "\(set.stdoutText)")
                let bad = try await herald.cli(["tenant", "limits", "beta", "--quota", "10/m"])
                #expect(!bad.termination.succeeded && bad.stderrText.contains("per hour or per day"), "\(bad)")
                // Every node reads the limits at start-up (then every 2 s): restart, so
                // that what follows does not race the refresh.
                try await herald.restart()
                _ = try await herald.httpPort()

                // SMTP AUTH: beta's quota of 2 per hour.
                let b = try Self.session(herald, "app-b", "pw-b")
                defer { b.close() }
                #expect(try Self.send(b, "b1", to: "b1@\(Self.domain)").code == 250)
                #expect(try Self.send(b, "b2", to: "b2@\(Self.domain)").code == 250)
                let third = try Self.send(b, "b3", to: "b3@\(Self.domain)")
                #expect(third.status == "452 4.7.1", "\(third)")
                #expect(third.lines.joined().contains("2 messages per hour"), "\(third)")
                // Known on this node now: the next RCPT is refused before any DATA.
                #expect(try b.command("MAIL FROM:<app@client.test>").code == 250)
                let rcpt = try b.command("RCPT TO:<b4@\(Self.domain)>")
                #expect(rcpt.status == "452 4.7.1", "\(rcpt)")
                _ = try? b.command("RSET")

                // Alpha has no limits: not held back by beta's.
                let a = try Self.session(herald, "app-a", "pw-a")
                defer { a.close() }
                for i in 1...3 { #expect(try Self.send(a, "a\(i)", to: "a\(i)@\(Self.domain)").code == 250) }
                // A config-only tenant (no database tenant of that name): tagged by its name.
                let c = try Self.session(herald, "app-c", "pw-c")
                defer { c.close() }
                #expect(try Self.send(c, "c1", to: "c1@\(Self.domain)").code == 250)

                // HTTP: the same quota, already used up over SMTP.
                let message: [String: Any] = ["from": "app@client.test", "subject": "Hi", "text": "Hello {{email}}"]
                var overHTTP = message
                overHTTP["recipients"] = [["email": "h1@\(Self.domain)"]]
                let refused = try await beta.call("POST", "/v1/messages", overHTTP)
                #expect(refused.status == 429, "\(refused.text)")
                #expect(refused.contentType == "application/problem+json")
                let retryAfter = try #require(refused.headers["retry-after"].flatMap { Int($0) }, "\(refused.headers)")
                #expect(retryAfter > 0 && retryAfter <= 3600, "\(retryAfter)")
                #expect((refused.object["detail"] as? String)?.contains("2 messages per hour") == true, "\(refused.text)")
                var forAlpha = message
                forAlpha["recipients"] = [["email": "h2@\(Self.domain)"]]
                _ = try await alpha.expect(202, "POST", "/v1/messages", forAlpha)

                // Campaign send: 429 while beta has no room; alpha's list and campaign are not beta's.
                let betaList = try await beta.createList("news")
                let betaCampaign = try await beta.createCampaign(list: betaList, name: "launch")
                let send = try await beta.call("POST", "/v1/campaigns/\(betaCampaign)/send")
                #expect(send.status == 429 && send.headers["retry-after"] != nil, "\(send.text)")
                #expect(try await alpha.call("POST", "/v1/campaigns/\(betaCampaign)/send").status == 404)
                let test = try await beta.call("POST", "/v1/campaigns/\(betaCampaign)/test", ["emails": ["t@\(Self.domain)"]])
                #expect(test.status == 429 && test.headers["retry-after"] != nil, "\(test.text)")

                // Limits: readable, not writable, by the tenant.
                let limits = try await beta.expect(200, "GET", "/v1/tenant/limits")
                #expect(limits["quota"] as? String == "2/h" && limits["rate"] as? String == "1/h", "\(limits)")
                let usage = try #require((limits["usage"] as? [[String: Any]])?.first, "\(limits)")
                #expect(usage["used"] as? Int == 2 && usage["remaining"] as? Int == 0, "\(usage)")
                let raise = try await beta.call("PUT", "/v1/tenant/limits", ["quota": "1000000/h", "rate": NSNull()])
                #expect(raise.status == 403, "\(raise.text)")
                #expect(try await beta.call("PATCH", "/v1/tenant/limits", ["quota": "1000000/h"]).status == 403)
                #expect(try await beta.expect(200, "GET", "/v1/tenant/limits")["quota"] as? String == "2/h")
                #expect(try await alpha.expect(200, "GET", "/v1/tenant/limits")["quota"] is NSNull)

                // Delivery: alpha's four, the config tenant's one and beta's first arrive;
                // beta's second waits for its rate's next slot, an hour away.
                let expected: Set = ["a1@\(Self.domain)", "a2@\(Self.domain)", "a3@\(Self.domain)", "h2@\(Self.domain)",
                                     "c1@\(Self.domain)", "b1@\(Self.domain)"]
                let arrived = await DeliveryIT.waitUntil(timeout: 30) { Self.delivered(sink).isSuperset(of: expected) }
                #expect(arrived, "delivered: \(Self.delivered(sink).sorted())")
                try await Task.sleep(for: .milliseconds(500))
                #expect(!Self.delivered(sink).contains("b2@\(Self.domain)"), "beta's second message waits for its rate")
                let waiting = try await herald.queueList()
                #expect(waiting.map { $0.recipients.map(\.address) } == [["b2@\(Self.domain)"]], "\(waiting)")
                #expect(waiting.first?.tenant == betaID)
                // `herald queue list` says why, from what the daemon publishes every 2 s.
                let why = "paced tenant \(betaID) (1/h)"
                let said = try await DeliveryIT.waitUntil(timeout: 6) {
                    try await herald.cli(["queue", "list"]).stdoutText.contains(why)
                }
                let listing = try await herald.cli(["queue", "list"]).stdoutText
                #expect(said, "\(listing)")

                // The envelopes' tags: a database tenant's id, a config-only tenant's name.
                let tags = Dictionary(DeliveryIT.logLines(herald, result: "delivered").map {
                    ($0["recipient"] as? String ?? "", $0["tenant"] as? String ?? "-")
                }, uniquingKeysWith: { a, _ in a })
                #expect(tags["b1@\(Self.domain)"] == betaID && tags["a1@\(Self.domain)"] == alphaID, "\(tags)")
                #expect(tags["h2@\(Self.domain)"] == alphaID && tags["c1@\(Self.domain)"] == "cfgonly", "\(tags)")

                // SIGKILL while beta's second message waits for its rate: acknowledged, it
                // survives, with its tag, and is delivered once after the restart (rate
                // buckets live in memory and start afresh with the process).
                _ = await herald.kill()
                try await herald.restart()
                let back = await DeliveryIT.waitUntil(timeout: 20) { Self.delivered(sink).contains("b2@\(Self.domain)") }
                #expect(back, "\(Self.delivered(sink).sorted())")
                let rcpts = sink.index().flatMap(\.rcpts)
                #expect(rcpts.filter { $0 == "b1@\(Self.domain)" }.count == 1 && rcpts.filter { $0 == "b2@\(Self.domain)" }.count == 1)
                // The sink has it once Herald's 250 came back; the log line follows it.
                _ = await DeliveryIT.waitUntil(timeout: 10) {
                    !DeliveryIT.logLines(herald, result: "delivered", recipient: "b2@\(Self.domain)").isEmpty
                }
                #expect(DeliveryIT.logLines(herald, result: "delivered", recipient: "b2@\(Self.domain)").first?["tenant"]
                    as? String == betaID)
                // The quota is in PostgreSQL: a restart does not reset it.
                let b2 = try Self.session(herald, "app-b", "pw-b")
                defer { b2.close() }
                #expect(try Self.send(b2, "b5", to: "b5@\(Self.domain)").status == "452 4.7.1")
            }
        }

        @Test("herald passwd --user --tenant prints a [[user]] table that check-config accepts")
        func passwdWithTenant() async throws {
            let r = try await Command.run(HeraldProcess.binary, ["passwd", "--iterations", "1000", "--user", "shop",
                                                                 "--tenant", "acme"],
                                          stdin: Array("s3cret\n".utf8), timeout: 30)
            #expect(r.termination.succeeded, "\(r)")
            let lines = r.stdoutText.split(separator: "\n").map(String.init)
            #expect(lines.count == 4 && lines[0] == "[[user]]" && lines[1] == "name = \"shop\""
                    && lines[2].hasPrefix("password_hash = \"$pbkdf2-sha256$1000$") && lines[3] == "tenant = \"acme\"",
                    "\(lines)")
            let directory = NSTemporaryDirectory() + "herald-passwd-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let config = directory + "/herald.toml"
            try ("[spool]\npath = \"\(directory)/spool\"\n[http]\naddress = \"\"\n\n" + r.stdoutText)
                .write(toFile: config, atomically: true, encoding: .utf8)
            let check = try await Command.run(HeraldProcess.binary, ["check-config", "--config", config], timeout: 30)
            #expect(check.termination.succeeded && check.stdoutText.contains("users: shop (tenant acme)"), "\(check)")
            // --tenant needs --user, and a name.
            let alone = try await Command.run(HeraldProcess.binary, ["passwd", "--tenant", "acme"],
                                              stdin: Array("x\n".utf8), timeout: 30)
            #expect(!alone.termination.succeeded && alone.stderrText.contains("--tenant goes with --user"), "\(alone)")
        }
    }
}
