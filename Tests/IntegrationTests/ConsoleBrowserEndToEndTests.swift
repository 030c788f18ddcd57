import Foundation
import HeraldTestSupport
import Testing

/// The web console in a real browser: headless Chromium (Debian's `chromium`, driven by
/// Python Playwright, Clients/console_browser.py) against the real `herald serve` with a
/// private PostgreSQL and a sink. Tenant A signs in, imports a CSV (its rejected lines
/// shown), creates a campaign, sends, pauses and resumes it and watches the progress reach
/// 100 % with counters that match the sink; an open and a click fetched from a delivered
/// message show in the live view as in the API; the schedule's deadline and the delivery
/// attempts go through the forms and are shown; SMTP users are made (the password shown
/// once), given a new password and deleted; tenant B cannot see A's pages; XSS payloads
/// in a list name, a subscriber name and the subject are shown as text and never run.
/// Screenshots of the main views are kept in the test's temporary directory (printed;
/// `HERALD_CONSOLE_SCREENSHOTS=DIR` puts them in DIR instead).
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(5)))
    struct ConsoleBrowserEndToEnd {
        static let domain = "console.test"
        static let xssName = #"<img src=x onerror="window.__xss='name'">Mallory"#
        static let xssSubject = #"<script>window.__xss='subject'</script>Hello {{first_name}}"#
        static let xssList = #"News <svg onload="window.__xss='list'">"#
        static let editedSubject = "Edited for {{first_name}}"
        /// The campaign's one tracked link: on loopback, and never fetched (its redirect is not followed).
        static let landing = "http://127.0.0.1:9/welcome?from=console"
        static let xssSMTPUser = #"<img src=x onerror="window.__xss='smtp'">"#
        /// Made on the SMTP users page: the first is given a new password, the second deleted.
        static let smtpUsers = ["shop@console.test", "old-app@console.test"]

        @Test("sign in, import, send with pause/resume to 100 %, counters match the sink, tenant isolation, XSS inert")
        func walkThrough() async throws {
            try await CampaignIT.withDeliveringHerald(database: "console", domain: Self.domain) { h in
                let keyB = try await CampaignIT.createTenant(h.herald, "beta")
                // 10 ordinary subscribers, one whose name is a payload, one the sink refuses
                // (550 5.1.1); an invalid address (line 14) and a repeated one (line 15) are rejected.
                var csv = "email,first_name,last_name\n"
                for i in 0..<10 { csv += "u\(i)@s\(i % 3).\(Self.domain),First\(i),Last\(i)\n" }
                csv += "mallory@m.\(Self.domain),\"\(Self.xssName.replacingOccurrences(of: "\"", with: "\"\""))\",\n"
                csv += "permfail@p.\(Self.domain),Pat,Fail\n"
                csv += "not-an-address,Bad,Line\n"
                csv += "u1@s1.\(Self.domain),Again,Twice\n"
                let csvPath = h.herald.directory + "/subscribers.csv"
                try csv.write(toFile: csvPath, atomically: true, encoding: .utf8)
                let shots = ProcessInfo.processInfo.environment["HERALD_CONSOLE_SCREENSHOTS"]
                    ?? (NSTemporaryDirectory() + "herald-console-screenshots-" + UUID().uuidString)
                let config = CampaignIT.json([
                    "base": h.api.base, "key_a": h.api.key, "key_b": keyB, "csv": csvPath,
                    "xss_name": Self.xssName, "xss_subject": Self.xssSubject, "xss_list": Self.xssList,
                    "search_email": "u7@s1.\(Self.domain)", "from": "Herald News <news@campaign.test>",
                    "screenshots": shots, "rate": "1/s", "test_email": "tester@campaign.test",
                    "remove_email": "u9@s0.\(Self.domain)", "suppress_email": "u8@s2.\(Self.domain)",
                    "edited_subject": Self.editedSubject, "preview_email": "mallory@m.\(Self.domain)",
                    "sink_dir": h.sink.outDirectory, "domain": Self.domain, "landing": Self.landing,
                    "xss_smtp_user": Self.xssSMTPUser, "smtp_users": Self.smtpUsers,
                ])
                let r = try await Python.run(IT.script("console_browser.py"), [config], timeout: 240)
                print("console browser: screenshots in \(shots)\n\(r.stderrText.suffix(3000))")
                guard r.termination.succeeded, let line = r.stdoutText.split(separator: "\n").last,
                      let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                else {
                    Issue.record("console_browser.py failed: \(r)\n\(h.herald.diagnostics())")
                    return
                }
                func int(_ any: Any?) -> Int? {
                    (any as? String).flatMap { Int($0.filter(\.isNumber)) } ?? (any as? Int)
                }

                // Sign-in: a wrong key is refused with the API's problem detail, and not kept.
                #expect((o["wrong_key_error"] as? String)?.contains("This API key is not valid") == true,
                        "\(o["wrong_key_error"] ?? "")")
                #expect(o["wrong_key_stored"] as? Int == 0)
                #expect(o["key_in_session"] as? Bool == true)
                let storage = o["storage"] as? [String: Any] ?? [:]
                #expect(storage["cookie"] as? String == "", "no cookie: \(storage)")
                #expect(storage["local"] as? Int == 0, "nothing in localStorage: \(storage)")
                #expect((storage["url"] as? String)?.contains(h.api.key) == false, "the key in the URL: \(storage)")
                #expect((o["csp_header"] as? String)?.contains("default-src 'self'") == true)

                // The import: 14 lines read, 12 imported, 2 rejected with their line numbers.
                let summary = o["import_summary"] as? String ?? ""
                #expect(summary.hasPrefix("14 lines read: 12 imported (12 new"), "\(summary)")
                #expect(summary.contains("2 rejected"), "\(summary)")
                let rejections = o["rejections"] as? [[String]] ?? []
                #expect(rejections.map { $0.first ?? "" } == ["14", "15"], "\(rejections)")
                #expect(rejections.first.map { $0[1] == "not-an-address" && $0[2].contains("invalid") } == true,
                        "\(rejections)")
                #expect(rejections.last.map { $0[2].contains("duplicate") || $0[2].contains("repeat") } == true, "\(rejections)")
                #expect(o["import_progress"] as? Int == 100)
                #expect(int(o["list_count"]) == 12)
                #expect(o["subscriber_rows"] as? Int == 12)
                #expect(o["bounced_filter_rows"] as? Int == 0)
                #expect(o["search_result"] as? String == "u7@s1.\(Self.domain)")
                // Search by a part of a name or address (u1, u4, u7 and the repeated u1 line: 3 on s1.).
                #expect(o["search_name_result"] as? String == "u7@s1.\(Self.domain)")
                #expect(o["search_xss_name"] as? String == Self.xssName)
                #expect(o["search_xss_elements"] as? Int == 0)
                #expect(o["search_domain_rows"] as? Int == 3, "\(o["search_domain_rows"] ?? "")")

                // The payloads are text: shown exactly, no element made, nothing ran.
                #expect((o["subscriber_names"] as? [String])?.contains(Self.xssName) == true,
                        "\(o["subscriber_names"] ?? "")")
                #expect(o["subscriber_table_elements"] as? [String: Int] == ["img": 0, "script": 0])
                #expect(o["list_heading"] as? String == Self.xssList)
                #expect(o["campaign_subject"] as? String == Self.xssSubject)
                #expect(o["campaign_subject_children"] as? Int == 0)
                #expect(o["xss_flag_a"] is NSNull, "a payload ran: \(o["xss_flag_a"] ?? "")")
                #expect(o["xss_flag"] is NSNull, "a payload ran: \(o["xss_flag"] ?? "")")
                #expect((o["csp_violations"] as? [Any])?.isEmpty == true, "CSP violations: \(o["csp_violations"] ?? "")")
                #expect((o["page_errors"] as? [Any])?.isEmpty == true, "page errors: \(o["page_errors"] ?? "")")

                // The campaign: paused and resumed, then 100 % with counters matching the sink.
                #expect(o["draft_status"] as? String == "draft")
                #expect(o["paused"] as? Bool == true, "the campaign finished before it could be paused")
                // Send, pause, resume, retry failed, duplicate, cancel, remove, suppress, a new SMTP
                // password, an SMTP user's deletion: each asked first.
                #expect((o["dialogs"] as? [String])?.count == 10, "confirmations: \(o["dialogs"] ?? "")")
                let campaign = try #require(o["campaign_id"] as? Int)
                let final = o["final_counters"] as? [String: String] ?? [:]
                #expect(o["final_percent"] as? Int == 100)
                #expect(o["progress_aria"] as? String == "100")
                #expect(int(final["total"]) == 12)
                #expect(int(final["remaining"]) == 0)
                #expect(int(final["bounced"]).map { $0 + (int(final["failed"]) ?? 0) } == 1, "\(final)")
                let stats = try await h.api.stats(campaign: campaign)
                // The chart: this node's outcomes per minute add up to the counters; the API
                // says the same, and another tenant gets a 404 for it.
                let timeline = o["timeline"] as? [String: Int] ?? [:]
                #expect(timeline["sent"] == 11 && timeline["failed"] == 1, "\(timeline)")
                #expect((timeline["minutes"] ?? 0) >= 10, "\(timeline)")
                #expect((o["timeline_bars"] as? Int).map { $0 >= 1 } == true)
                #expect((o["timeline_label"] as? String)?.contains("11 sent") == true, "\(o["timeline_label"] ?? "")")
                #expect(o["eta_figure"] as? String == "done", "\(o["eta_figure"] ?? "")")
                let series = try await h.api.expect(200, "GET", "/v1/campaigns/\(campaign)/timeline?minutes=30")
                let minutes = series["data"] as? [[String: Any]] ?? []
                #expect(minutes.count == 30)
                #expect(minutes.reduce(0) { $0 + ($1["sent"] as? Int ?? 0) } == 11, "\(minutes)")
                #expect(minutes.reduce(0) { $0 + ($1["bounced"] as? Int ?? 0) + ($1["failed"] as? Int ?? 0) } == 1)
                let foreign = try await CampaignIT.http("GET", h.api.base + "/v1/campaigns/\(campaign)/timeline", key: keyB)
                #expect(foreign.status == 404, "\(foreign.status)")
                #expect(try await h.api.call("GET", "/v1/campaigns/\(campaign)/timeline?minutes=0").status == 400)
                // Tracking turned on in the form: the links table shows, and the messages carry the open image.
                #expect(o["links_visible"] as? Bool == true)
                #expect((o["links_text"] as? String)?.contains("No clicks yet.") == true, "\(o["links_text"] ?? "")")
                // (quoted-printable: soft line breaks removed first)
                #expect(h.sink.messages().contains {
                    String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "=\r\n", with: "").contains("/t/o/")
                },
                        "no open image in the delivered messages")
                for key in ["total", "expanded", "sent", "bounced", "failed", "remaining"] {
                    #expect(int(final[key]) == stats[key] as? Int, "\(key): console \(final[key] ?? "-"), API \(stats[key] ?? "-")")
                }
                #expect(int(final["opens"]) == 0 && int(final["clicks"]) == 0, "\(final)")
                // One message's open image and tracked link fetched on loopback: the live view
                // counted both without a reload, as the API does, and the clicks-per-link table
                // shows the link's target with the API's figures.
                let message = o["tracked_message"] as? [String: Any] ?? [:]
                #expect((message["to"] as? String)?.hasSuffix(Self.domain + ">") == true
                        || (message["to"] as? String)?.hasSuffix(Self.domain) == true, "\(message)")
                #expect((o["open_fetch"] as? [String: Any])?["status"] as? Int == 200, "\(o["open_fetch"] ?? "")")
                let click = o["click_fetch"] as? [String: Any] ?? [:]
                #expect(click["status"] as? Int == 302 && click["location"] as? String == Self.landing, "\(click)")
                let tracked = o["tracked_counters"] as? [String: String] ?? [:]
                #expect(int(tracked["opens"]) == 1 && int(tracked["clicks"]) == 1, "\(tracked)")
                for key in ["opens", "unique_opens", "clicks", "unique_clicks"] {
                    #expect(int(tracked[key]) == stats[key] as? Int, "\(key): console \(tracked[key] ?? "-"), API \(stats[key] ?? "-")")
                }
                let apiLinks = try await h.api.expect(200, "GET", "/v1/campaigns/\(campaign)/links")["data"] as? [[String: Any]] ?? []
                let shownLinks = o["links_rows"] as? [[String]] ?? []
                #expect(apiLinks.count == 1 && apiLinks.first?["url"] as? String == Self.landing, "\(apiLinks)")
                #expect(shownLinks == apiLinks.map { [$0["url"] as? String ?? "", "\($0["clicks"] ?? "")", "\($0["unique_clicks"] ?? "")"] },
                        "console \(shownLinks), API \(apiLinks)")
                // The delivery attempts given at creation are stored.
                let created = try await h.api.expect(200, "GET", "/v1/campaigns/\(campaign)")
                #expect(created["max_attempts"] as? Int == 5, "\(created["max_attempts"] ?? "-")")
                let arrived = await h.sink.waitForMessages(11, timeout: 30)
                #expect(arrived >= 11)
                let delivered = h.sink.index().filter { $0.rcpts.contains { $0.hasSuffix("." + Self.domain) } }
                #expect(int(final["sent"]) == 11)
                #expect(int(final["sent"]) == delivered.count, "console sent \(final["sent"] ?? "-"), sink \(delivered.count)")
                let failures = o["failures"] as? [[String]] ?? []
                #expect(failures.count == 1 && failures.first?[0] == "permfail@p.\(Self.domain)"
                        && failures.first?[2].contains("5.1.1") == true, "\(failures)")
                #expect((o["actions_when_sent"] as? [String]) == ["retry-failed", "duplicate"],
                        "\(o["actions_when_sent"] ?? "")")
                let listed = o["campaign_list"] as? [[String: String]] ?? []
                #expect(listed.map { $0["status"] ?? "" } == ["sent", "cancelled"], "\(listed)")
                #expect(listed.map { $0["subject"] ?? "" } == [Self.xssSubject, Self.editedSubject], "\(listed)")

                // Test-send before the send: one message to the test address, not counted in the stats.
                #expect(o["test_notice"] as? String == "1 test message queued.")
                #expect(await h.sink.waitForMessages(12, timeout: 30) >= 12)
                #expect(h.sink.index().filter { $0.rcpts == ["tester@campaign.test"] }.count == 1)
                // Retry failed: the bounced address was suppressed by its hard bounce, so nobody is sent again.
                #expect(o["retry_notice"] as? String == "0 recipients are sent again.")
                // Duplicate: a new draft with the same subject.
                #expect((o["duplicate_id"] as? Int).map { $0 > campaign } == true)
                #expect(o["duplicate_status"] as? String == "draft")
                #expect(o["duplicate_subject"] as? String == Self.xssSubject)
                // The copy edited: subject, a segment of two conditions (any), a send window
                // and a rate, read back from the API; edited again, the form is filled in,
                // and removing the conditions clears the segment.
                #expect(o["edit_prefilled_subject"] as? String == Self.xssSubject)
                #expect(o["edited_subject"] as? String == Self.editedSubject)
                #expect(o["edited_segment"] as? String == #"plan is one of gold, silver, 3 or vip does not exist"#,
                        "\(o["edited_segment"] ?? "")")
                #expect(o["edited_window"] as? String == "09:00–18:00 on mon, tue (Europe/Paris)", "\(o["edited_window"] ?? "")")
                let again = o["edit_again"] as? [String: Any] ?? [:]
                #expect(again["rows"] as? Int == 2 && again["match"] as? String == "any" && again["start"] as? String == "09:00"
                        && again["days"] as? [String] == ["mon", "tue"] && again["rate"] as? String == "2/s", "\(again)")
                #expect(again["values"] as? [String] == ["gold, silver, 3", ""], "\(again)")
                #expect(o["cleared_segment"] as? String == "the whole list")
                // Delivery attempts: copied by the duplicate (5), edited to 3 and shown, then emptied (cleared).
                #expect(o["edit_prefilled_attempts"] as? String == "5", "\(o["edit_prefilled_attempts"] ?? "")")
                #expect(o["edited_attempts"] as? String == "at most 3", "\(o["edited_attempts"] ?? "")")
                #expect(again["attempts"] as? String == "3", "\(again)")
                #expect(o["cleared_attempts"] as? String == "the server's limit", "\(o["cleared_attempts"] ?? "")")
                if let copy = o["duplicate_id"] as? Int {
                    let c = try await h.api.expect(200, "GET", "/v1/campaigns/\(copy)")
                    #expect(c["subject"] as? String == Self.editedSubject)
                    #expect(c["segment"] is NSNull, "\(c["segment"] ?? "")")
                    #expect(c["send_rate"] as? String == "2/s")
                    #expect(c["max_attempts"] is NSNull, "\(c["max_attempts"] ?? "-")")
                    let window = c["send_window"] as? [String: Any] ?? [:]
                    #expect(window["start"] as? String == "09:00" && window["end"] as? String == "18:00"
                            && window["days"] as? [String] == ["mon", "tue"] && window["time_zone"] as? String == "Europe/Paris",
                            "\(window)")
                }
                // The preview for the subscriber whose name is a payload: shown as text.
                let shownName = Self.xssName
                #expect(o["preview_subject"] as? String == "Edited for \(shownName)", "\(o["preview_subject"] ?? "")")
                #expect(o["preview_subject_children"] as? Int == 0)
                #expect((o["preview_to"] as? String)?.hasPrefix("mallory@m.\(Self.domain) (subscriber ") == true,
                        "\(o["preview_to"] ?? "")")
                #expect((o["preview_text"] as? String)?.contains("Hello \(shownName)") == true, "\(o["preview_text"] ?? "")")
                let frame = o["preview_frame"] as? [String: Any] ?? [:]
                #expect(frame["sandbox"] as? String == "", "\(frame)")
                #expect((frame["srcdoc"] as? String)?.contains("Hello &lt;img") == true, "\(frame)")

                // The copy scheduled for 09:00 Paris time in two days, then cancelled.
                let sendAt = o["send_at"] as? String ?? "?"
                let deadline = o["deadline"] as? String ?? "?"
                #expect((o["schedule_notice"] as? String)?.hasSuffix("(\(sendAt.replacingOccurrences(of: "T", with: " ")) Europe/Paris), "
                    + "deadline \(deadline.replacingOccurrences(of: "T", with: " ")).") == true, "\(o["schedule_notice"] ?? "")")
                #expect(o["schedule_before"] as? [String] == ["not scheduled", "—"], "\(o["schedule_before"] ?? "")")
                // The page shows the schedule in the zone it was given in, before and after a reload.
                let shownSchedule = o["schedule_shown"] as? [[String: String]] ?? []
                #expect(shownSchedule.count == 2 && shownSchedule[0]["text"]?.hasSuffix("9:00 AM (Europe/Paris)") == true
                        && shownSchedule[1]["text"]?.hasSuffix("12:00 PM (Europe/Paris)") == true, "\(shownSchedule)")
                #expect(o["schedule_reloaded"] as? [[String: String]] == shownSchedule, "\(o["schedule_reloaded"] ?? "")")
                #expect(o["schedule_form_hidden"] as? Bool == true)
                #expect(o["copy_final_status"] as? String == "cancelled")
                if let copy = o["duplicate_id"] as? Int {
                    let c = try await h.api.expect(200, "GET", "/v1/campaigns/\(copy)")
                    #expect(c["status"] as? String == "cancelled", "\(c)")
                    // The deadline stored is 12:00 Paris time on the day, in UTC; the page's is the API's.
                    var paris = Calendar(identifier: .gregorian)
                    paris.timeZone = try #require(TimeZone(identifier: "Europe/Paris"))
                    let day = deadline.prefix(10).split(separator: "-").compactMap { Int($0) }
                    let expected = paris.date(from: DateComponents(year: day.first, month: day.dropFirst().first,
                                                                   day: day.last, hour: 12))
                    let stored = (c["deadline"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) }
                    #expect(stored != nil && stored == expected, "\(c["deadline"] ?? "-"), expected \(String(describing: expected))")
                    #expect(shownSchedule.last?["time"] == c["deadline"] as? String, "\(shownSchedule)")
                    #expect(shownSchedule.first?["time"] == c["send_at"] as? String, "\(shownSchedule)")
                }

                // From the list's page: one subscriber taken off the list, another suppressed.
                #expect(o["remove_notice"] as? String == "u9@s0.\(Self.domain) was removed from this list.")
                #expect(o["rows_left_with_removed"] as? Int == 0)
                #expect(int(o["count_after_remove"]) == 11)
                #expect(o["suppress_notice"] as? String == "u8@s2.\(Self.domain) is suppressed.")
                let list = try #require(o["list_id"] as? Int)
                let gone = try await h.api.call("GET", "/v1/lists/\(list)/subscribers?email=u9@s0.\(Self.domain)")
                #expect(gone.status == 404, "\(gone.status) \(gone.text)")
                let suppressed = try await h.api.expect(200, "GET", "/v1/suppressions?email=u8@s2.\(Self.domain)")
                #expect(suppressed["reason"] as? String == "manual", "\(suppressed)")

                // Phone width: nothing wider than the screen.
                #expect((o["phone_overflow"] as? Int).map { $0 <= 0 } == true, "\(o["phone_overflow"] ?? "")")
                #expect((o["phone_overflow_list"] as? Int).map { $0 <= 0 } == true, "\(o["phone_overflow_list"] ?? "")")

                // Tenant B: sign-out forgot A's key; B sees none of A's campaigns or lists.
                #expect(o["after_signout_storage"] as? Int == 0)
                #expect((o["b_campaign_ids"] as? [String]) == [], "\(o["b_campaign_ids"] ?? "")")
                #expect((o["b_list_ids"] as? [String]) == [], "\(o["b_list_ids"] ?? "")")
                #expect(o["b_campaign_error"] as? String == "campaign \(campaign) not found")
                #expect(o["b_campaign_progress"] as? Int == 0)
                #expect((o["b_list_error"] as? String)?.hasSuffix("not found") == true, "\(o["b_list_error"] ?? "")")
                #expect(o["b_list_rows"] as? Int == 0)

                // SMTP users: a refused name's problem is shown as text; two users made, each
                // password shown once (32 characters); one given a new password, one deleted; the
                // API agrees; tenant B sees none of them and gets 404 for them.
                #expect(o["smtp_empty"] as? String == "No SMTP users yet.", "\(o["smtp_empty"] ?? "")")
                let badName = o["smtp_bad_name_error"] as? String ?? ""
                #expect(badName.contains(Self.xssSMTPUser) && badName.contains("may hold only"), "\(badName)")
                #expect(o["smtp_bad_name_elements"] as? Int == 0)
                let made = o["smtp_users_made"] as? [[String: String]] ?? []
                #expect(made.map { $0["username"] ?? "" } == Self.smtpUsers, "\(made)")
                let passwords = o["smtp_created_passwords"] as? [String] ?? []
                let reset = o["smtp_reset_password"] as? String ?? ""
                #expect(passwords.count == 2 && Set(passwords + [reset]).count == 3
                        && (passwords + [reset]).allSatisfy { $0.count == 32 }, "\(passwords) \(reset)")
                #expect((o["smtp_password_text"] as? String)?.contains("shown this once") == true)
                #expect(o["smtp_password_hidden"] as? Bool == true)
                #expect(o["smtp_reset_notice"] as? String == "\(Self.smtpUsers[0]) has a new password.")
                #expect(o["smtp_delete_notice"] as? String == "\(Self.smtpUsers[1]) was deleted.")
                let kept = o["smtp_users_after_reload"] as? [[String: String]] ?? []
                #expect(kept.map { $0["username"] ?? "" } == [Self.smtpUsers[0]], "\(kept)")
                #expect(o["smtp_password_after_reload"] as? Int == 0)
                let smtpListed = try await h.api.expect(200, "GET", "/v1/smtp-users")["data"] as? [[String: Any]] ?? []
                #expect(smtpListed.map { "\($0["id"] ?? "")" } == kept.map { $0["id"] ?? "" }, "\(smtpListed)")
                #expect(smtpListed.first?["username"] as? String == Self.smtpUsers[0], "\(smtpListed)")
                if made.count == 2, let keptID = made[0]["id"], let droppedID = made[1]["id"] {
                    #expect(try await h.api.call("GET", "/v1/smtp-users/\(droppedID)").status == 404)
                    for (method, path) in [("GET", ""), ("POST", "/reset-password"), ("DELETE", "")] {
                        let foreign = try await CampaignIT.http(method, h.api.base + "/v1/smtp-users/\(keptID)\(path)", key: keyB)
                        #expect(foreign.status == 404, "tenant B \(method) \(path): \(foreign.status)")
                    }
                    #expect(try await h.api.call("GET", "/v1/smtp-users/\(keptID)").status == 200)
                }
                #expect((o["b_smtp_users"] as? [Any])?.isEmpty == true, "\(o["b_smtp_users"] ?? "")")
                #expect(o["b_smtp_empty"] as? String == "No SMTP users yet.")

                let screenshots = o["screenshots"] as? [String] ?? []
                #expect(screenshots.count == 11, "\(screenshots)")
                for path in screenshots {
                    let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                    #expect(size > 10_000, "\(path): \(size) bytes")
                }
            }
        }
    }
}
