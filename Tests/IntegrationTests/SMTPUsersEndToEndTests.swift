import Foundation
import HeraldTestSupport
import Testing

/// SMTP AUTH users that tenants make over the HTTP API, on a `herald serve` with its own
/// PostgreSQL database (delivery off, so accepted mail stays in the spool):
/// - tenant alpha makes a user and gets its password once; bad names are 400, names
///   taken by any tenant or by the config (ignoring case) 409; tenant beta gets 404 for
///   alpha's user on every route and sees none in its listing;
/// - the user authenticates over SMTP and its mail carries alpha's tag; a wrong password
///   and an unknown name get the same `535 5.7.8`; a config user of the same name
///   still authenticates with its own password; AUTH before STARTTLS on a listener that
///   requires TLS stays `538 5.7.11`;
/// - alpha's daily quota, set with the admin API, holds for the user's mail (`452 4.7.1`);
/// - a new password replaces the old at once, and a deleted user cannot authenticate.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(4)))
    struct SMTPUsersEndToEnd {
        static let adminKey = "hk_smtp-users-test-admin-key"
        /// `printf %s "$adminKey" | sha256sum`
        static let adminDigest = "a3ed1b8ff0bb4e70951d6ffeb6badee655aea541a324682d3dcad625b76a8d73"

        static func plain(_ user: String, _ password: String) -> String {
            Data("\0\(user)\0\(password)".utf8).base64EncodedString()
        }

        /// The reply to AUTH PLAIN on a new session of the listener `listener`.
        static func auth(_ herald: HeraldProcess, _ user: String, _ password: String, listener: Int = 0) throws
            -> (SMTPTestClient, WireReply)
        {
            let client = try SMTPTestClient(port: herald.port(listener), timeout: 30)
            try client.greetAndEhlo()
            return (client, try client.command("AUTH PLAIN " + plain(user, password)))
        }

        static func send(_ client: SMTPTestClient, _ tag: String) throws -> WireReply {
            let mail = DeliveryIT.mail(tag, from: "app@client.test", to: ["\(tag)@dest.test"])
            return try client.sendMail(from: mail.from, to: mail.to, message: mail.message)
        }

        @Test("tenants manage SMTP users over the API; their mail is the tenant's; deleted users are refused")
        func smtpUsersOverTheAPI() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "smtp_users")
            let httpPort = try HeraldProcess.freeLoopbackPort()
            var options = CampaignIT.options(database: database, httpPort: httpPort, delivery: false,
                                             toml: ["[[admin_key]]\nname = \"ops\"\nsha256 = \"\(Self.adminDigest)\""])
            // Listener 0 takes AUTH in plain text (so the test needs no TLS client);
            // listener 1 requires STARTTLS first, as by default.
            options.listeners = [.submission(tls: "off", allowPlaintextAuth: true), .submission(tls: "starttls")]
            options.users = [.init("ops-app", "pw-config")]
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let alpha = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "alpha"))
                let beta = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "beta"))
                let alphaID = try #require(try await CampaignIT.tenantIDs(herald)["alpha"])

                // Made by alpha: the password is in this answer only.
                let made = try await alpha.call("POST", "/v1/smtp-users", ["username": "Shop.App"])
                #expect(made.status == 201, "\(made.text)")
                let id = try #require(made.object["id"] as? Int, "\(made.text)")
                let password = try #require(made.object["password"] as? String, "\(made.text)")
                #expect(password.count == 32 && made.object["username"] as? String == "Shop.App")
                #expect(made.headers["location"] == "/v1/smtp-users/\(id)")
                #expect(made.object["password_hash"] == nil && made.object["last_used_at"] is NSNull)
                let read = try await alpha.expect(200, "GET", "/v1/smtp-users/\(id)")
                #expect(read["username"] as? String == "Shop.App" && read["password"] == nil, "\(read)")
                let listed = try await alpha.expect(200, "GET", "/v1/smtp-users")
                let rows = try #require(listed["data"] as? [[String: Any]])
                #expect(rows.map { $0["id"] as? Int } == [id] && rows.allSatisfy { $0["password"] == nil }, "\(listed)")

                // Bad names, taken names (any tenant's, the config's; ignoring case).
                for bad: Any in ["has space", "", ".dot", String(repeating: "x", count: 65), 42] {
                    let r = try await alpha.call("POST", "/v1/smtp-users", ["username": bad])
                    #expect(r.status == 400 && r.contentType == "application/problem+json", "\(bad): \(r.text)")
                }
                for (api, name) in [(beta, "shop.app"), (alpha, "SHOP.APP"), (beta, "OPS-APP")] {
                    let r = try await api.call("POST", "/v1/smtp-users", ["username": name])
                    #expect(r.status == 409 && r.contentType == "application/problem+json", "\(name): \(r.text)")
                }

                // Beta cannot see, re-key or delete alpha's user.
                #expect(try await beta.call("GET", "/v1/smtp-users/\(id)").status == 404)
                #expect(try await beta.call("POST", "/v1/smtp-users/\(id)/reset-password").status == 404)
                #expect(try await beta.call("DELETE", "/v1/smtp-users/\(id)").status == 404)
                #expect((try await beta.expect(200, "GET", "/v1/smtp-users")["data"] as? [Any])?.isEmpty == true)
                #expect(try await alpha.call("GET", "/v1/smtp-users/999999").status == 404)

                // AUTH and a message: tagged with alpha's id.
                let (a, ok) = try Self.auth(herald, "Shop.App", password)
                defer { a.close() }
                #expect(ok.status == "235 2.7.0", "\(ok)")
                #expect(try Self.send(a, "first").code == 250)
                let queued = try await herald.queueList()
                #expect(queued.map(\.tenant) == [alphaID], "\(queued)")
                #expect(queued.first?.recipients.map(\.address) == ["first@dest.test"])

                // Wrong password, unknown name, another case of the name: the same refusal.
                for (user, pass) in [("Shop.App", "wrong"), ("nobody", password), ("shop.app", password)] {
                    let (c, reply) = try Self.auth(herald, user, pass)
                    c.close()
                    #expect(reply.status == "535 5.7.8", "\(user): \(reply)")
                }
                // The config's user is untouched; no AUTH before STARTTLS where TLS is required.
                let (cfg, cfgReply) = try Self.auth(herald, "ops-app", "pw-config")
                cfg.close()
                #expect(cfgReply.status == "235 2.7.0", "\(cfgReply)")
                let (tls, tlsReply) = try Self.auth(herald, "Shop.App", password, listener: 1)
                tls.close()
                #expect(tlsReply.status == "538 5.7.11", "\(tlsReply)")

                // Alpha's quota holds for its user's mail: one more today, set by the
                // operator; every node reads limits every 2 s, so restart to apply it now.
                let quota = try await CampaignIT.http("PATCH", alpha.base + "/v1/admin/tenants/alpha/limits",
                                                      key: Self.adminKey, body: CampaignIT.json(["daily_quota": 1]))
                #expect(quota.status == 200, "\(quota.text)")
                a.close()
                try await herald.restart()
                _ = try await herald.httpPort()
                let (q, qReply) = try Self.auth(herald, "Shop.App", password)
                defer { q.close() }
                #expect(qReply.code == 235, "\(qReply)")
                #expect(try Self.send(q, "second").code == 250)
                let over = try Self.send(q, "third")
                #expect(over.status == "452 4.7.1", "\(over)")
                #expect(over.lines.joined().contains("quota of 1 message per day"), "\(over)")
                #expect(try await herald.queueList().count == 2)
                let used = try await alpha.expect(200, "GET", "/v1/smtp-users/\(id)")
                #expect(used["last_used_at"] is String, "\(used)")

                // A new password: the old one stops working at once.
                let reset = try await alpha.expect(200, "POST", "/v1/smtp-users/\(id)/reset-password")
                let newPassword = try #require(reset["password"] as? String)
                #expect(newPassword != password)
                let (old, oldReply) = try Self.auth(herald, "Shop.App", password)
                old.close()
                #expect(oldReply.status == "535 5.7.8", "\(oldReply)")
                let (new, newReply) = try Self.auth(herald, "Shop.App", newPassword)
                new.close()
                #expect(newReply.code == 235, "\(newReply)")

                // Deleted: refused at once; the name is free again.
                let deleted = try await alpha.call("DELETE", "/v1/smtp-users/\(id)")
                #expect(deleted.status == 204, "\(deleted.text)")
                let (gone, goneReply) = try Self.auth(herald, "Shop.App", newPassword)
                gone.close()
                #expect(goneReply.status == "535 5.7.8", "\(goneReply)")
                #expect(try await alpha.call("GET", "/v1/smtp-users/\(id)").status == 404)
                #expect(try await alpha.call("DELETE", "/v1/smtp-users/\(id)").status == 404)
                #expect(try await beta.call("POST", "/v1/smtp-users", ["username": "shop.app"]).status == 201)
            }
        }
    }
}
