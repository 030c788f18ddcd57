import Delivery
import Foundation
import Herald
import HeraldTestSupport
import Testing

@testable import Campaigns
@testable import CampaignStore

/// The bounce intake without a database: return paths, the classification table shipped
/// in conf/bounce-classes.toml, and which events a report gives.
@Suite("Bounce intake: reports to events")
struct BounceIntakeTests {
    static let classifier = BounceClassifier(
        classes: try! HeraldConfig.bounceClasses(path: HeraldProcess.packageRoot + "/conf/bounce-classes.toml"))

    @Test func returnPathsRoundTrip() {
        let a = CampaignExpander.bounceAddress("news@example.org", campaign: 12, subscriber: 3456,
                                               returnPathDomain: "bounces.example.org")
        #expect(a == "news+c12-s3456@bounces.example.org")
        #expect(BounceAddress(a) == BounceAddress(campaign: 12, subscriber: 3456))
        #expect(BounceAddress("<News+C7-S42@Bounces.Example.org>") == BounceAddress(campaign: 7, subscriber: 42))
        #expect(BounceAddress("a+b+c1-s2@x.example") == BounceAddress(campaign: 1, subscriber: 2))
        for bad in ["news@example.org", "news+c12@x.example", "news+c-s1@x.example", "news+c1-s@x.example",
                    "news+c1-s2x@x.example", "news+x1-s2@x.example", "news+c1-s99999999999999999999@x.example",
                    "news+c١-s2@x.example", ""] {
            #expect(BounceAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func returnPathDomainAlignsWithTheFromDomain() {
        let domains = ["bounces.example.org", "rp.other.example", "return.example.net"]
        #expect(BounceSettings.returnPathDomain(for: "example.org", among: domains) == "bounces.example.org")
        #expect(BounceSettings.returnPathDomain(for: "News.Example.org", among: domains) == "bounces.example.org")
        #expect(BounceSettings.returnPathDomain(for: "other.example", among: domains) == "rp.other.example")
        #expect(BounceSettings.returnPathDomain(for: "return.example.net", among: domains) == "return.example.net")
        #expect(BounceSettings.returnPathDomain(for: "example.com", among: domains) == nil)
        #expect(BounceSettings.returnPathDomain(for: "badexample.org", among: domains) == nil)
        // `label.tld` never makes every domain under the TLD its own.
        #expect(BounceSettings.returnPathDomain(for: "anything.org", among: ["bounces.org"]) == nil)
    }

    @Test(arguments: [
        ("5.1.1", "smtp; 550 5.1.1 <a@b.example>: Recipient address rejected: User unknown in local recipient table",
         "bad-mailbox", true),
        ("5.1.1", "", "bad-mailbox", true),
        ("5.1.2", "", "bad-domain", true),
        ("5.4.4", "Host or domain name not found. Name service error for name=nowhere.example", "bad-domain", true),
        ("5.2.2", "smtp; 552 5.2.2 Mailbox full", "mailbox-full", false),
        ("5.7.1", "smtp; 550 5.7.1 The user's mailbox is over quota", "mailbox-full", false),
        ("5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering", "policy", false),
        ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", "policy", false),
        ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", "too-large", false),
        ("4.4.7", "delivery time expired", "transient", false),
        ("5.0.0", "550 Requested action not taken: mailbox unavailable", "bad-mailbox", true),
        ("5.9.9", "something nobody has seen", "unknown", false),
        ("5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "bad-mailbox", true),
    ])
    func shippedTableClassifies(status: String, text: String, category: String, hard: Bool) {
        let verdict = Self.classifier.classify(status: status, text: text)
        #expect(verdict == BounceClassifier.Verdict(category: category, hard: hard), "\(status) \(text)")
    }

    /// Delivery-time failures are judged by the same table as the reports that come later.
    @Test func deliveryFailuresUseTheTable() {
        func outcome(_ code: Int, _ enhanced: String?, _ reply: String) -> CampaignDeliveryOutcome {
            CampaignDeliveryOutcome(queueID: "Q", recipient: "a@example.net", tenant: "1", campaign: "2",
                                    result: .failed, code: code, enhanced: enhanced, firstAttempt: true,
                                    wasDeferred: false, reply: reply)
        }
        let full = outcome(552, "5.2.2", "552 5.2.2 Mailbox full")
        #expect(full.isHardBounce(by: nil), "without [bounce], 5.2.x is hard as before")
        #expect(!full.isHardBounce(by: Self.classifier))
        let unknown = outcome(550, "5.7.1", "550 5.7.1 <a@example.net>: Recipient address rejected: User unknown")
        #expect(!unknown.isHardBounce(by: nil))
        #expect(unknown.isHardBounce(by: Self.classifier))
        #expect(!outcome(550, "5.7.1", "550 5.7.1 blocked using zen.spamhaus.org").isHardBounce(by: Self.classifier))
    }

    @Test func statusPrefixesPreferTheLongestMatch() {
        let c = BounceClassifier(classes: [
            BounceClass(category: "wide", hard: false, statuses: ["5."]),
            BounceClass(category: "narrow", hard: true, statuses: ["5.1."]),
            BounceClass(category: "exact", hard: false, statuses: ["5.1.7"]),
        ])
        #expect(c.classify(status: "5.1.7", text: "").category == "exact")
        #expect(c.classify(status: "5.1.1", text: "").category == "narrow")
        #expect(c.classify(status: "5.3.0", text: "").category == "wide")
        #expect(c.classify(status: "4.0.0", text: "") == BounceClassifier.unknown)
        #expect(c.classify(status: nil, text: "whatever") == BounceClassifier.unknown)
    }

    static func message(_ sender: String, _ recipients: [String], _ text: String, id: String = "Q1") -> LocalMessage {
        LocalMessage(id: id, sender: sender, recipients: recipients,
                     message: Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8))
    }

    static func dsn(action: String, status: String, diagnostic: String, returnedHeaders: String = "") -> String {
        """
        From: MAILER-DAEMON@mx.example.net
        To: news+c3-s9@bounces.example.org
        Subject: Undelivered Mail Returned to Sender
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="B"

        --B
        Content-Type: text/plain

        I'm sorry to have to inform you that your message could not be delivered.

        --B
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net

        Final-Recipient: rfc822; a@example.net
        Action: \(action)
        Status: \(status)
        Diagnostic-Code: smtp; \(diagnostic)

        --B
        Content-Type: text/rfc822-headers

        \(returnedHeaders)Subject: hello

        --B--

        """
    }

    @Test func aFailedDSNIsABounceOfTheReturnPathsRecipient() throws {
        let found = BounceIntake.events(in: Self.message("", ["news+c3-s9@bounces.example.org"],
                                                         Self.dsn(action: "failed", status: "5.1.1",
                                                                  diagnostic: "550 5.1.1 User unknown")),
                                        classifier: Self.classifier)
        let e = try #require(found.events.first)
        #expect(found.events.count == 1)
        #expect(e == IncomingBounceEvent(type: .bounce, campaignID: 3, subscriberID: 9, category: "bad-mailbox",
                                         hard: true, status: "5.1.1", diagnostic: "550 5.1.1 User unknown",
                                         reporter: "mx.example.net", source: "Q1", seq: 0))
    }

    @Test func delayAndSuccessNoticesAreNotBounces() {
        for action in ["delayed", "delivered", "relayed", "expanded"] {
            let found = BounceIntake.events(in: Self.message("", ["news+c3-s9@bounces.example.org"],
                                                             Self.dsn(action: action, status: "4.4.1",
                                                                      diagnostic: "451 4.4.1 try later")),
                                            classifier: Self.classifier)
            #expect(found.events.isEmpty, "\(action)")
        }
    }

    @Test func aDSNToAFixedAddressIsAttributedByTheReturnedHeaders() throws {
        let text = Self.dsn(action: "failed", status: "5.2.2", diagnostic: "552 5.2.2 Mailbox full",
                            returnedHeaders: "Return-Path: <news+c5-s77@bounces.example.org>\n")
        let found = BounceIntake.events(in: Self.message("", ["postmaster@bounces.example.org"], text),
                                        classifier: Self.classifier)
        let e = try #require(found.events.first)
        #expect((e.campaignID, e.subscriberID, e.category, e.hard) == (5, 77, "mailbox-full", false))
        // With no return path anywhere, nothing can be attributed.
        let none = BounceIntake.events(in: Self.message("", ["postmaster@bounces.example.org"],
                                                        Self.dsn(action: "failed", status: "5.1.1", diagnostic: "x")),
                                       classifier: Self.classifier)
        #expect(none.events.isEmpty)
    }

    @Test func aNonStandardBounceIsClassifiedFromItsTextAndItsQuotedCopyIsIgnored() throws {
        let text = """
            From: MAILER-DAEMON@old.example
            To: news+c4-s8@bounces.example.org
            Subject: failure notice

            Hi. This is the qmail-send program at old.example.
            I'm afraid I wasn't able to deliver your message to the following addresses.
            This is a permanent error; I've given up. Sorry it didn't work out.

            <gone@old.example>:
            192.0.2.7 does not like recipient.
            Remote host said: 550 5.1.1 <gone@old.example>... No such user
            Giving up on 192.0.2.7.

            --- Below this line is a copy of the message.

            Return-Path: <news+c4-s8@bounces.example.org>
            DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=x; b=y
            Subject: We were blocked as spam last week, over quota, message too large

            Hello
            """
        let found = BounceIntake.events(in: Self.message("", ["news+c4-s8@bounces.example.org"], text),
                                        classifier: Self.classifier)
        let e = try #require(found.events.first)
        #expect((e.campaignID, e.subscriberID, e.category, e.hard, e.status) == (4, 8, "bad-mailbox", true, "5.1.1"))
        #expect(e.diagnostic?.contains("No such user") == true)
        #expect(e.diagnostic?.contains("spam") == false, "\(e.diagnostic ?? "")")
    }

    @Test func autoRepliesAndMailFromPeopleAreNotBounces() {
        let vacation = """
            From: someone@example.net
            To: news+c4-s8@bounces.example.org
            Auto-Submitted: auto-replied
            Subject: Out of office

            I am away until Monday; your mail box is full of my absence.
            """
        #expect(BounceIntake.events(in: Self.message("", ["news+c4-s8@bounces.example.org"], vacation),
                                    classifier: Self.classifier).events.isEmpty)
        let person = "From: someone@example.net\nSubject: re: news\n\n550 user unknown? no, just replying.\n"
        #expect(BounceIntake.events(in: Self.message("someone@example.net", ["news+c4-s8@bounces.example.org"], person),
                                    classifier: Self.classifier).events.isEmpty)
    }

    static func arf(type: String, originalMailFrom: String) -> String {
        """
        From: fbl@isp.example
        To: fbl@bounces.example.org
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary="F"

        --F
        Content-Type: text/plain

        An abuse report.

        --F
        Content-Type: message/feedback-report

        Feedback-Type: \(type)
        User-Agent: ISP-FBL/2.1
        Version: 1
        Original-Mail-From: <\(originalMailFrom)>

        --F
        Content-Type: message/rfc822

        From: news@example.org
        Subject: hi

        body
        --F--

        """
    }

    @Test func anAbuseReportIsAComplaint() throws {
        let found = BounceIntake.events(
            in: Self.message("fbl@isp.example", ["fbl@bounces.example.org"],
                             Self.arf(type: "abuse", originalMailFrom: "news+c6-s60@bounces.example.org")),
            classifier: Self.classifier)
        let e = try #require(found.events.first)
        #expect(e == IncomingBounceEvent(type: .complaint, campaignID: 6, subscriberID: 60, category: "complaint",
                                         hard: true, diagnostic: "feedback report: abuse", reporter: "ISP-FBL/2.1",
                                         source: "Q1", seq: 0))
        let notSpam = BounceIntake.events(
            in: Self.message("fbl@isp.example", ["fbl@bounces.example.org"],
                             Self.arf(type: "not-spam", originalMailFrom: "news+c6-s60@bounces.example.org")),
            classifier: Self.classifier)
        #expect(notSpam.events.isEmpty)
    }
}

/// The effects of recorded events on a real PostgreSQL: subscribers, suppressions,
/// campaign counters and recipient rows, once per report.
@Suite("Bounce store", .serialized, .enabled(if: PostgresServer.isAvailable))
struct BounceStoreTests {
    /// A campaign expanded to `count` subscribers, every recipient recorded `sent`.
    static func sentCampaign(_ f: CampaignFixture) async throws -> Int64 {
        let campaign = try await f.createCampaign("Bounces")
        _ = try #require(try await CampaignStore(f.db).send(tenant: f.tenant, id: campaign.id))
        _ = try await f.expander().run(campaign: campaign.id)
        try await f.db.execute("UPDATE campaign_recipients SET state = 'sent' WHERE campaign_id = $1", [String(campaign.id)])
        try await f.db.execute("""
            UPDATE campaign_counters SET sent = (SELECT count(*) FROM campaign_recipients WHERE campaign_id = $1)
            WHERE campaign_id = $1
            """, [String(campaign.id)])
        return campaign.id
    }

    static func subscriber(_ f: CampaignFixture, _ n: Int) async throws -> Int64 {
        Int64(try await f.int("SELECT id FROM subscribers WHERE email = $1", ["user\(n)@example.com"]))
    }

    static func event(_ campaign: Int64, _ subscriber: Int64, type: BounceEventType = .bounce, hard: Bool,
                      category: String = "bad-mailbox", source: String, seq: Int = 0) -> IncomingBounceEvent {
        IncomingBounceEvent(type: type, campaignID: campaign, subscriberID: subscriber, category: category, hard: hard,
                            status: hard ? "5.1.1" : "5.2.2", diagnostic: "550 test", reporter: "mx.test",
                            source: source, seq: seq)
    }

    @Test func hardBounceComplaintSoftLimitAndDuplicates() async throws {
        try await CampaignFixture.with(count: 20) { f in
            let c = try await Self.sentCampaign(f)
            let store = BounceStore(f.db)
            let limit = SoftBounceLimit(limit: 2, days: 7)
            let s1 = try await Self.subscriber(f, 1), s2 = try await Self.subscriber(f, 2)
            let s3 = try await Self.subscriber(f, 3)
            let sentBefore = try await f.int("SELECT sent FROM campaign_counters WHERE campaign_id = $1", [String(c)])

            // A hard bounce: recorded, suppresses, the recipient becomes bounced.
            var outcomes = try await store.record([Self.event(c, s1, hard: true, source: "A")], softBounces: limit)
            guard case .recorded(let id, true) = outcomes.first else {
                Issue.record("\(outcomes)")
                return
            }
            #expect(try await f.int("SELECT count(*) FROM suppressions WHERE email = 'user1@example.com' AND reason = 'bounced'") == 1)
            #expect(try await f.db.query("SELECT status FROM subscribers WHERE id = $1", [String(s1)])[0][0] == "bounced")
            #expect(try await f.db.query("SELECT state FROM campaign_recipients WHERE subscriber_id = $1", [String(s1)])[0][0]
                    == "bounced")
            // The same report again (a restart after the database commit): nothing changes.
            outcomes = try await store.record([Self.event(c, s1, hard: true, source: "A")], softBounces: limit)
            #expect(outcomes == [.duplicate])

            // Soft bounces: the first is only counted, the second (limit 2) suppresses.
            outcomes = try await store.record([Self.event(c, s2, hard: false, category: "mailbox-full", source: "B")],
                                              softBounces: limit)
            #expect(outcomes.first.map { if case .recorded(_, false) = $0 { true } else { false } } == true, "\(outcomes)")
            #expect(try await f.int("SELECT count(*) FROM suppressions WHERE email = 'user2@example.com'") == 0)
            #expect(try await f.db.query("SELECT status FROM subscribers WHERE id = $1", [String(s2)])[0][0] == "active")
            outcomes = try await store.record([Self.event(c, s2, hard: false, category: "mailbox-full", source: "C")],
                                              softBounces: limit)
            #expect(outcomes.first.map { if case .recorded(_, true) = $0 { true } else { false } } == true, "\(outcomes)")
            #expect(try await f.db.query("SELECT status FROM subscribers WHERE id = $1", [String(s2)])[0][0] == "bounced")

            // A complaint: counted, the subscriber complained, suppressed as complained.
            outcomes = try await store.record([Self.event(c, s3, type: .complaint, hard: true, category: "complaint",
                                                          source: "D")], softBounces: limit)
            #expect(outcomes.first.map { if case .recorded(_, true) = $0 { true } else { false } } == true)
            #expect(try await f.db.query("SELECT status FROM subscribers WHERE id = $1", [String(s3)])[0][0] == "complained")
            #expect(try await f.int("SELECT count(*) FROM suppressions WHERE email = 'user3@example.com' AND reason = 'complained'") == 1)
            #expect(try await f.db.query("SELECT state FROM campaign_recipients WHERE subscriber_id = $1", [String(s3)])[0][0]
                    == "sent", "a complaint is not a delivery failure")
            // A second report about the same message is kept, but the recipient counts once.
            outcomes = try await store.record([Self.event(c, s3, type: .complaint, hard: true, category: "complaint",
                                                          source: "E")], softBounces: limit)
            #expect(outcomes.first.map { if case .recorded = $0 { true } else { false } } == true)

            // Counters: s1 once and s2 once moved from sent to bounced (the second soft
            // bounce found the recipient bounced already); one complaint.
            let stats = try #require(try await CampaignStore(f.db).stats(tenant: f.tenant, id: c))
            #expect(stats.sent == Int64(sentBefore) - 2)
            #expect(stats.bounced == 2)
            #expect(stats.complained == 1)

            // Listing: all five, in order, filtered by type and address; the tenant's only.
            let all = try await store.events(tenant: f.tenant, after: nil, limit: 10)
            #expect(all.map(\.id).first == id)
            #expect(all.map(\.email) == ["user1@example.com", "user2@example.com", "user2@example.com", "user3@example.com",
                                          "user3@example.com"])
            #expect(all.map(\.suppressed) == [true, false, true, true, true])
            #expect(try await store.events(tenant: f.tenant, type: .complaint, after: nil, limit: 10).map(\.email)
                    == ["user3@example.com", "user3@example.com"])
            #expect(try await store.events(tenant: f.tenant, email: "USER2@example.com", after: nil, limit: 10).count == 2)
            #expect(try await store.events(tenant: f.tenant, after: all[1].id, limit: 1).map(\.id) == [all[2].id])
            #expect(try await store.events(tenant: TenantID(f.tenant.rawValue + 1000), after: nil, limit: 10).isEmpty)
        }
    }

    /// A downstream that accepts and bounces at once can get its DSN to Herald before the
    /// stats recorder has written the `delivered` outcome: the recipient is still
    /// `queued`. The bounce makes it `bounced`, and the late `delivered` (or a replay of
    /// the delivery log after a restart) does not undo it.
    @Test func aBounceOvertakingTheDeliveredOutcomeStays() async throws {
        try await CampaignFixture.with(count: 5) { f in
            let campaign = try await f.createCampaign("Race")
            _ = try #require(try await CampaignStore(f.db).send(tenant: f.tenant, id: campaign.id))
            _ = try await f.expander().run(campaign: campaign.id)
            let c = campaign.id
            let s1 = try await Self.subscriber(f, 1)
            let queueID = try #require(try await f.db.query(
                "SELECT queue_id FROM campaign_recipients WHERE subscriber_id = $1", [String(s1)])[0][0])
            let outcomes = try await BounceStore(f.db).record([Self.event(c, s1, hard: true, source: "R")],
                                                              softBounces: SoftBounceLimit(limit: 3, days: 7))
            #expect(outcomes.first.map { if case .recorded = $0 { true } else { false } } == true)
            var stats = try #require(try await CampaignStore(f.db).stats(tenant: f.tenant, id: c))
            #expect((stats.sent, stats.bounced) == (0, 1))

            let recorder = CampaignStatsRecorder(db: f.db, interval: .seconds(3600))
            for _ in 0..<2 {   // the outcome, then its replay
                recorder.record(CampaignDeliveryOutcome(queueID: queueID, recipient: "user1@example.com",
                                                        tenant: f.tenant.description, campaign: String(c),
                                                        result: .delivered, code: 250, enhanced: "2.0.0",
                                                        firstAttempt: true, wasDeferred: false))
                await recorder.flush()
            }
            stats = try #require(try await CampaignStore(f.db).stats(tenant: f.tenant, id: c))
            #expect((stats.sent, stats.bounced) == (0, 1), "\(stats)")
            #expect(try await f.db.query("SELECT state FROM campaign_recipients WHERE subscriber_id = $1",
                                         [String(s1)])[0][0] == "bounced")
            await recorder.shutdown()
        }
    }

    @Test func aReturnPathNamingNoRecipientOfTheCampaignTouchesNothing() async throws {
        try await CampaignFixture.with(count: 20) { f in
            let c = try await Self.sentCampaign(f)
            let store = BounceStore(f.db)
            let limit = SoftBounceLimit(limit: 3, days: 7)
            // Another tenant's subscriber, named in this tenant's campaign's return path.
            let (other, _) = try await StoreTestDB.tenant(f.db, "tenant-b")
            let stranger = try await f.db.query("""
                INSERT INTO subscribers (tenant_id, email) VALUES ($1, 'stranger@example.com') RETURNING id
                """, [other.id.parameter])[0][0].flatMap { Int64($0) } ?? -1
            // user10 is unsubscribed: never expanded, so not a recipient of the campaign.
            let notRecipient = try await Self.subscriber(f, 10)
            let outcomes = try await store.record([
                Self.event(c, stranger, hard: true, source: "X", seq: 0),
                Self.event(c, notRecipient, hard: true, source: "X", seq: 1),
                Self.event(c + 1000, try await Self.subscriber(f, 1), hard: true, source: "X", seq: 2),
            ], softBounces: limit)
            #expect(outcomes == [.unattributed, .unattributed, .unattributed])
            #expect(try await f.int("SELECT count(*) FROM bounce_events") == 0)
            #expect(try await f.int("SELECT count(*) FROM suppressions WHERE reason = 'bounced'") == 0)
            #expect(try await f.db.query("SELECT status FROM subscribers WHERE id = $1", [String(stranger)])[0][0] == "active")
        }
    }
}

/// `[bounce]` and the classification file: what the config accepts and how it refuses.
@Suite("Bounce configuration")
struct BounceConfigTests {
    static let table = HeraldProcess.packageRoot + "/conf/bounce-classes.toml"

    static func parse(_ bounce: String, source: String = "test.toml") -> Result<HeraldConfig, ConfigError> {
        Result { () throws(ConfigError) -> HeraldConfig in try HeraldConfig.parse(bounce, source: source) }
    }

    static func error(_ bounce: String) -> String {
        if case .failure(let e) = parse(bounce) { return e.description }
        return "(accepted)"
    }

    @Test func acceptedAndDefaults() throws {
        let config = try Self.parse("[bounce]\ndomains = [\"Bounces.Example.org\"]\nclasses = \"\(Self.table)\"\n").get()
        let bounce = try #require(config.bounce)
        #expect(bounce.domains == ["bounces.example.org"])
        #expect(bounce.softBounces == SoftBounceLimit(limit: 3, days: 7))
        #expect(bounce.classifier.classes.map(\.category).contains("bad-mailbox"))
        #expect(config.delivery.localDomains == ["bounces.example.org"])
        // Without `classes`, the table next to the config file is used.
        let sibling = try Self.parse("[bounce]\ndomains = [\"b.example.org\"]\n",
                                source: HeraldProcess.packageRoot + "/conf/herald.toml").get()
        #expect(sibling.bounce?.classifier.classes == bounce.classifier.classes)
        #expect(try Self.parse("").get().bounce == nil)
    }

    @Test func refusals() throws {
        #expect(Self.error("[bounce]\nclasses = \"\(Self.table)\"\n").contains("bounce.domains: name at least one"))
        #expect(Self.error("[bounce]\ndomains = [\"*.example.org\"]\nclasses = \"\(Self.table)\"\n")
                .contains("is not a domain name"))
        #expect(Self.error("[bounce]\ndomains = [\"b.example.org\"]\nclasses = \"/nonexistent.toml\"\n")
                .contains("cannot read /nonexistent.toml"))
        #expect(Self.error("[bounce]\ndomains = [\"b.example.org\"]\nclasses = \"\(Self.table)\"\nsoft_bounce_limit = 0\n")
                .contains("bounce.soft_bounce_limit"))
        let dir = NSTemporaryDirectory() + "herald-bounce-classes-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (table, message) in [
            ("[[class]]\ncategory = \"x\"\nhard = true\npattern = [\"a\"]\n", "unknown key(s): class.pattern"),
            ("[[class]]\ncategory = \"x\"\nhard = true\nstatuses = [\"5.1\"]\n", "\"5.1\" is not a status code"),
            ("[[class]]\ncategory = \"x\"\nhard = true\nstatuses = [\"6.1.1\"]\n", "\"6.1.1\" is not a status code"),
            ("[[class]]\ncategory = \"bad mailbox\"\nhard = true\n", "category: letters, digits"),
            ("# nothing\n", "no [[class]] entries"),
        ] {
            let path = dir + "/classes.toml"
            try table.write(toFile: path, atomically: true, encoding: .utf8)
            let e = Self.error("[bounce]\ndomains = [\"b.example.org\"]\nclasses = \"\(path)\"\n")
            #expect(e.contains(message), "\(table): \(e)")
        }
    }
}
