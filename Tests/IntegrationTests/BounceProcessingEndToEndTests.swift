import Foundation
import HeraldTestSupport
import Testing

/// Bounces and complaints that arrive after delivery, end to end through `herald serve`:
/// a campaign goes to a real Postfix as the downstream MX, which accepts every message
/// and then bounces two recipients by its transport table (`error:5.1.1 User unknown`,
/// `error:5.2.2 Mailbox full`), sending real RFC 3464 DSNs to the per-recipient return
/// path at Herald's `[bounce]` domain. An ARF complaint is then injected over SMTP.
/// The API must show the events, the stats, the suppressions and the subscribers'
/// status; a second campaign to the list must skip the suppressed addresses.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: PostgresServer.isAvailable && PostfixMX.isAvailable))
    struct BounceProcessing {
        static let bounceDomain = "bounces.campaign.test"

        /// Herald options for a bounce-processing node: `[bounce]` with the repository's
        /// classification table, and its relay listener on `smtpPort` (Postfix must know
        /// it before Herald starts, to send the DSNs back).
        static func options(database: String, httpPort: Int, smtpPort: Int, routes: [String],
                            softLimit: Int = 3) -> HeraldProcess.Options {
            var o = CampaignIT.options(database: database, httpPort: httpPort, delivery: true, toml: routes + [
                """
                [bounce]
                domains = ["\(bounceDomain)"]
                classes = "\(HeraldProcess.packageRoot)/conf/bounce-classes.toml"
                soft_bounce_limit = \(softLimit)
                """,
            ])
            o.listeners = [HeraldProcess.Listener(role: "relay", tls: "off", trustedNetworks: ["127.0.0.0/8"],
                                                  address: "127.0.0.1:\(smtpPort)")]
            return o
        }

        /// An ARF (RFC 5965) abuse report about the message sent with return path `verp`.
        static func complaint(verp: String, recipient: String) -> [UInt8] {
            let text = """
                From: Feedback Loop <fbl@isp.example>\r
                To: fbl@\(bounceDomain)\r
                Subject: FW: Hello\r
                Date: Sun, 06 Dec 2026 12:00:00 +0000\r
                Message-ID: <arf-1@isp.example>\r
                MIME-Version: 1.0\r
                Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r
                \r
                --arf\r
                Content-Type: text/plain; charset=us-ascii\r
                \r
                This is an email abuse report for an email message received from IP 127.0.0.1.\r
                \r
                --arf\r
                Content-Type: message/feedback-report\r
                \r
                Feedback-Type: abuse\r
                User-Agent: ISPFeedback/1.0\r
                Version: 1\r
                Original-Mail-From: <\(verp)>\r
                Original-Rcpt-To: <\(recipient)>\r
                Source-IP: 127.0.0.1\r
                \r
                --arf\r
                Content-Type: text/rfc822-headers\r
                \r
                Return-Path: <\(verp)>\r
                From: Herald News <news@campaign.test>\r
                To: \(recipient)\r
                Subject: Hello\r
                \r
                --arf--\r

                """
            return Array(text.utf8)
        }

        @Test("Postfix DSNs and an ARF complaint reach the events, stats, suppressions and the next campaign")
        func postfixBouncesAndComplaint() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "bounces")
            let smtpPort = try HeraldProcess.freeLoopbackPort()
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let postfix = try await PostfixMX(relayDomains: ["downstream.test"], transport: [
                "unknown@downstream.test error:5.1.1 User unknown",
                "full@downstream.test error:5.2.2 Mailbox full",
                "downstream.test discard:accepted",
                "\(Self.bounceDomain) smtp:[127.0.0.1]:\(smtpPort)",
            ])
            defer { Task { await postfix.stop() } }
            let options = Self.options(database: database, httpPort: httpPort, smtpPort: smtpPort,
                                       routes: [DeliveryIT.route("downstream.test", port: postfix.port)])
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("bounce test")
                let csv = herald.directory + "/list.csv"
                try "email,first_name\nok@downstream.test,Ok\nunknown@downstream.test,Unknown\nfull@downstream.test,Full\n"
                    .write(toFile: csv, atomically: true, encoding: .utf8)
                _ = try await api.importCSV(list: list, path: csv)
                let campaign = try await api.createCampaign(list: list, name: "first")
                try await api.send(campaign: campaign)
                let sent = try await api.waitUntilSent(campaign: campaign, timeout: 60)
                // Postfix accepted all three (the bounces may already be back and counted).
                #expect(sent["status"] as? String == "sent" && sent["failed"] as? Int == 0, "\(sent)")
                #expect((sent["sent"] as? Int ?? 0) + (sent["bounced"] as? Int ?? 0) == 3, "\(sent)")
                let postfixAccepted = DeliveryIT.logLines(herald, result: "delivered").filter {
                    ($0["recipient"] as? String)?.hasSuffix("@downstream.test") == true
                }
                #expect(postfixAccepted.count == 3, "\(postfixAccepted)")

                // Postfix bounces two of the three after accepting them; the DSNs come back.
                var events: [[String: Any]] = []
                let arrived = await DeliveryIT.waitUntil(timeout: 60) {
                    events = (try? await api.expect(200, "GET", "/v1/bounces?campaign_id=\(campaign)"))?["data"]
                        as? [[String: Any]] ?? []
                    return events.count >= 2
                }
                #expect(arrived, "bounces: \(events)\n\(herald.diagnostics())\n\(postfix.maillog().suffix(4000))")
                let byEmail = Dictionary(events.map { ($0["email"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
                let unknown = try #require(byEmail["unknown@downstream.test"], "\(events)")
                #expect(unknown["type"] as? String == "bounce")
                #expect(unknown["category"] as? String == "bad-mailbox")
                #expect(unknown["hard"] as? Bool == true)
                #expect(unknown["status"] as? String == "5.1.1")
                #expect(unknown["suppressed"] as? Bool == true)
                #expect((unknown["diagnostic"] as? String)?.contains("User unknown") == true, "\(unknown)")
                #expect((unknown["reporter"] as? String)?.contains("mx.downstream.test") == true, "\(unknown)")
                let full = try #require(byEmail["full@downstream.test"], "\(events)")
                #expect(full["category"] as? String == "mailbox-full")
                #expect(full["hard"] as? Bool == false)
                #expect(full["suppressed"] as? Bool == false, "one soft bounce is below the limit of 3")
                #expect(byEmail["ok@downstream.test"] == nil)

                var stats = try await api.stats(campaign: campaign)
                #expect(stats["sent"] as? Int == 1, "\(stats)")
                #expect(stats["bounced"] as? Int == 2, "\(stats)")
                #expect(stats["complained"] as? Int == 0, "\(stats)")
                let failures = try await api.expect(200, "GET", "/v1/campaigns/\(campaign)/failures")
                let failed = (failures["data"] as? [[String: Any]] ?? []).compactMap { $0["email"] as? String }
                #expect(Set(failed) == ["unknown@downstream.test", "full@downstream.test"], "\(failures)")

                // The hard bounce suppressed its address and marked the subscriber.
                let suppression = try await api.expect(200, "GET", "/v1/suppressions?email=unknown@downstream.test")
                #expect(suppression["reason"] as? String == "bounced")
                #expect(suppression["campaign_id"] as? Int == campaign)
                #expect(try await api.call("GET", "/v1/suppressions?email=full@downstream.test").status == 404)
                #expect(try await CampaignIT.sql(database, "SELECT status FROM subscribers WHERE email = 'unknown@downstream.test'")
                        == "bounced")

                // A complaint about ok@ through the feedback loop, to a fixed address of the
                // bounce domain: attributed by the report's Original-Mail-From.
                let ok = try await CampaignIT.sql(database, "SELECT id FROM subscribers WHERE email = 'ok@downstream.test'")
                let verp = "news+c\(campaign)-s\(ok)@\(Self.bounceDomain)"
                let envelope = try await CampaignIT.sql(database, """
                    SELECT count(*) FROM campaign_recipients WHERE campaign_id = \(campaign) AND subscriber_id = \(ok)
                    """)
                #expect(envelope == "1")
                try await DeliveryIT.submitAccepted(port: smtpPort, [DeliveryIT.Mail(
                    from: "fbl-bounces@isp.example", to: ["fbl@\(Self.bounceDomain)"],
                    message: Self.complaint(verp: verp, recipient: "ok@downstream.test"), tag: "arf")])
                var complaints: [[String: Any]] = []
                let complained = await DeliveryIT.waitUntil(timeout: 30) {
                    complaints = (try? await api.expect(200, "GET", "/v1/bounces?type=complaint"))?["data"]
                        as? [[String: Any]] ?? []
                    return !complaints.isEmpty
                }
                #expect(complained, "\(herald.diagnostics())")
                #expect(complaints.first?["email"] as? String == "ok@downstream.test")
                #expect(complaints.first?["category"] as? String == "complaint")
                #expect(complaints.first?["reporter"] as? String == "ISPFeedback/1.0")
                stats = try await api.stats(campaign: campaign)
                #expect(stats["complained"] as? Int == 1, "\(stats)")
                #expect(stats["sent"] as? Int == 1, "a complaint does not change the delivery outcome: \(stats)")
                let okSuppression = try await api.expect(200, "GET", "/v1/suppressions?email=ok@downstream.test")
                #expect(okSuppression["reason"] as? String == "complained")
                #expect(try await CampaignIT.sql(database, "SELECT status FROM subscribers WHERE email = 'ok@downstream.test'")
                        == "complained")

                // The reports were consumed by Herald, never relayed: the delivery log says
                // so, and nothing for the bounce domain is left in the queue.
                let local = DeliveryIT.deliveryLog(herald).filter {
                    ($0["recipient"] as? String)?.hasSuffix("@" + Self.bounceDomain) == true
                }
                #expect(local.count == 3, "\(local)")
                #expect(local.allSatisfy { $0["result"] as? String == "delivered" && $0["mx_host"] as? String == "local" },
                        "\(local)")

                // The next campaign to the list leaves both suppressed addresses out.
                let second = try await api.createCampaign(list: list, name: "second")
                try await api.send(campaign: second)
                let secondStats = try await api.waitUntilSent(campaign: second, timeout: 60)
                #expect(secondStats["total"] as? Int == 1, "only full@ is still mailed: \(secondStats)")
                #expect(secondStats["expanded"] as? Int == 1, "\(secondStats)")
            }
        }

        /// The intake is idempotent: Herald SIGKILLed while reports are being consumed,
        /// restarted on the same spool, records every report once (a report whose events
        /// reached the database but whose spool outcome did not is consumed again and
        /// found already recorded).
        @Test("SIGKILL while 40 DSNs are consumed: each recorded exactly once after a restart")
        func killDuringIntake() async throws {
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "bouncekill")
            let smtpPort = try HeraldProcess.freeLoopbackPort()
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = Self.options(database: database, httpPort: httpPort, smtpPort: smtpPort,
                                       routes: [DeliveryIT.route("*.example.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("kill test")
                let csv = herald.directory + "/list.csv"
                try CampaignIT.writeCSV(count: 40, domain: "example.test", to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let campaign = try await api.createCampaign(list: list, name: "kill")
                try await api.send(campaign: campaign)
                let sent = try await api.waitUntilSent(campaign: campaign, timeout: 60)
                #expect(sent["sent"] as? Int == 40, "\(sent)")
                let ids = try await CampaignIT.sql(database, "SELECT id, email FROM subscribers ORDER BY id")
                    .split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
                // One DSN per subscriber (a hard bounce), from the null sender to its return path.
                let mails = ids.enumerated().map { i, row in
                    DeliveryIT.Mail(from: "", to: ["news+c\(campaign)-s\(row[0])@\(Self.bounceDomain)"],
                                    message: Self.dsn(recipient: row[1], n: i), tag: "dsn-\(i)")
                }
                let accepted = try await DeliveryIT.submitAccepted(port: smtpPort, mails)
                #expect(accepted.count == 40)
                // Kill as soon as the first events are in the database.
                _ = await DeliveryIT.waitUntil(timeout: 20) {
                    (try? await CampaignIT.sql(database, "SELECT count(*) FROM bounce_events")).flatMap { Int($0) } ?? 0 > 0
                }
                let before = try await CampaignIT.sql(database, "SELECT count(*) FROM bounce_events")
                #expect(await herald.kill()?.signaled == true)
                try await herald.restart()
                let all = await DeliveryIT.waitUntil(timeout: 60) {
                    (try? await CampaignIT.sql(database, "SELECT count(*) FROM bounce_events")) == "40"
                }
                #expect(all, "\(herald.diagnostics())")
                // Let the restarted node finish whatever it redelivers, then count again.
                _ = await DeliveryIT.waitUntil(timeout: 30) {
                    herald.spoolFiles("queue").isEmpty
                }
                let again = DeliveryIT.deliveryLog(herald).filter {
                    ($0["reply"] as? String)?.contains("already recorded") == true
                }.count
                print("bounce intake kill: \(before) of 40 events recorded at the kill, 40 after the restart; "
                      + "\(again) report(s) consumed again and found already recorded")
                #expect(try await CampaignIT.sql(database, "SELECT count(*), count(DISTINCT source) FROM bounce_events")
                        == "40|40")
                let stats = try await api.stats(campaign: campaign)
                #expect(stats["bounced"] as? Int == 40, "\(stats)")
                #expect(stats["sent"] as? Int == 0, "\(stats)")
                #expect(try await CampaignIT.sql(database, "SELECT count(*) FROM suppressions WHERE reason = 'bounced'") == "40")
            }
        }

        /// A minimal RFC 3464 DSN for `recipient`.
        static func dsn(recipient: String, n: Int) -> [UInt8] {
            Array("""
                From: MAILER-DAEMON@mx.example.test\r
                To: news@campaign.test\r
                Subject: Undelivered Mail Returned to Sender\r
                Message-ID: <dsn-\(n)@mx.example.test>\r
                MIME-Version: 1.0\r
                Content-Type: multipart/report; report-type=delivery-status; boundary="b\(n)"\r
                \r
                --b\(n)\r
                Content-Type: text/plain\r
                \r
                Your message could not be delivered.\r
                \r
                --b\(n)\r
                Content-Type: message/delivery-status\r
                \r
                Reporting-MTA: dns; mx.example.test\r
                \r
                Final-Recipient: rfc822; \(recipient)\r
                Action: failed\r
                Status: 5.1.1\r
                Diagnostic-Code: smtp; 550 5.1.1 <\(recipient)>: Recipient address rejected: User unknown\r
                \r
                --b\(n)--\r

                """.utf8)
        }
    }
}
