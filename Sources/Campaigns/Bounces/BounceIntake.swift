import CampaignStore
import Delivery
import Logging
import MailFormat

/// The `[bounce]` settings the intake needs.
public struct BounceSettings: Sendable {
    /// The return-path domains (lower-cased): mail to them is Herald's.
    public var domains: [String]
    public var classifier: BounceClassifier
    public var softBounces: SoftBounceLimit

    public init(domains: [String], classifier: BounceClassifier, softBounces: SoftBounceLimit) {
        self.domains = domains.map { $0.lowercased() }
        self.classifier = classifier
        self.softBounces = softBounces
    }

    /// The return-path domain for mail from `fromDomain`: the first of `domains` that
    /// is `label.P` where `fromDomain` is `P` or under `P` (`bounces.example.org` for
    /// `example.org` and `news.example.org`, never for `org`), or the from domain itself
    /// when it is one of them. Such a return path aligns with the From domain under
    /// relaxed DMARC alignment. Nil when none fits: the message keeps its From domain.
    public static func returnPathDomain(for fromDomain: String, among domains: [String]) -> String? {
        let from = fromDomain.lowercased()
        if domains.contains(from) { return from }
        return domains.first { domain in
            guard let dot = domain.firstIndex(of: ".") else { return false }
            let parent = domain[domain.index(after: dot)...]
            return parent.contains(".") && (from == parent || from.hasSuffix("." + parent))
        }
    }
}

/// The campaign and subscriber a return path names: `<local>+c<campaign>-s<subscriber>@…`
/// (``CampaignExpander/bounceAddress(_:campaign:subscriber:returnPathDomain:)``).
public struct BounceAddress: Sendable, Equatable {
    public var campaign: Int64
    public var subscriber: Int64

    public init(campaign: Int64, subscriber: Int64) {
        self.campaign = campaign
        self.subscriber = subscriber
    }

    public init?(_ address: String) {
        var s = Substring(address.trimming(" \t<>"))
        if let at = s.lastIndex(of: "@") { s = s[..<at] }
        guard let plus = s.lastIndex(of: "+") else { return nil }
        let tag = s[s.index(after: plus)...]
        guard tag.first == "c" || tag.first == "C", let dash = tag.firstIndex(of: "-") else { return nil }
        let c = tag[tag.index(after: tag.startIndex)..<dash], rest = tag[tag.index(after: dash)...]
        guard rest.first == "s" || rest.first == "S" else { return nil }
        let sub = rest.dropFirst()
        guard (1...18).contains(c.count), (1...18).contains(sub.count), c.allSatisfy(\.isASCIIDigit),
              sub.allSatisfy(\.isASCIIDigit), let campaign = Int64(c), let subscriber = Int64(sub)
        else { return nil }
        self.init(campaign: campaign, subscriber: subscriber)
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

private extension String {
    func trimming(_ set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// Bounces and complaints that arrive after delivery: mail to the `[bounce]` domains,
/// spooled like any other and handed here by the queue manager (a
/// ``LocalDeliveryAgent``). Each message is consumed, never relayed:
/// - an RFC 3464 DSN gives one bounce per recipient whose action is `failed` (delays
///   and successes are ignored), classified from its status and diagnostic;
/// - an RFC 5965 feedback report of type abuse, fraud or other gives a complaint;
/// - anything else from `<>` or a MAILER-DAEMON / postmaster address is a non-standard
///   bounce, classified from its text; other mail (an out-of-office reply, a person
///   answering the return path) is consumed and ignored.
/// The campaign and subscriber come from the return path the report was sent to, else
/// from the report (Original-Mail-From, the returned headers' Return-Path). Events are
/// recorded with their effects by ``BounceStore``, at most once per report: a report
/// processed again after a crash finds its events recorded.
public struct BounceIntake: LocalDeliveryAgent {
    public let store: BounceStore
    public let settings: BounceSettings
    let logger: Logger

    public init(store: BounceStore, settings: BounceSettings, logger: Logger) {
        self.store = store
        self.settings = settings
        self.logger = logger
    }

    public func deliver(_ message: LocalMessage) async -> [LocalDeliveryResult] {
        let found = Self.events(in: message, classifier: settings.classifier)
        guard !found.events.isEmpty else {
            logger.info("bounce intake: nothing to record", metadata: ["id": "\(message.id)", "why": "\(found.note)"])
            return message.recipients.map { _ in .delivered("consumed: \(found.note)") }
        }
        do {
            let outcomes = try await store.record(found.events, softBounces: settings.softBounces)
            let recorded = outcomes.count { if case .recorded = $0 { true } else { false } }
            let suppressed = outcomes.count { if case .recorded(_, true) = $0 { true } else { false } }
            let unattributed = outcomes.count { $0 == .unattributed }
            var text = "consumed: \(found.note); \(recorded) recorded, \(suppressed) suppressed"
            if unattributed > 0 { text += ", \(unattributed) unattributed" }
            if outcomes.contains(.duplicate) { text += ", \(outcomes.count { $0 == .duplicate }) already recorded" }
            logger.info("bounce intake", metadata: ["id": "\(message.id)", "result": "\(text)"])
            return message.recipients.map { _ in .delivered(text) }
        } catch {
            logger.warning("bounce intake: cannot record, will retry", metadata: ["id": "\(message.id)", "error": "\(error)"])
            return message.recipients.map { _ in .deferred("cannot record the report yet: \(error)") }
        }
    }

    /// What a report holds, and a few words on it for the delivery log.
    public struct Found: Sendable, Equatable {
        public var events: [IncomingBounceEvent]
        public var note: String
    }

    /// The events in one message (pure: no database).
    public static func events(in message: LocalMessage, classifier: BounceClassifier) -> Found {
        // One MIME parse serves the report and the auto-reply check.
        let entity = MIMEEntity.parse(message.message)
        let report = InboundReport.parse(entity)
        let fromEnvelope = message.recipients.lazy.compactMap(BounceAddress.init).first
        func attributed(_ candidates: [String?]) -> BounceAddress? {
            fromEnvelope ?? candidates.lazy.compactMap { $0.flatMap(BounceAddress.init) }.first
        }
        switch report {
        case .deliveryStatus(let dsn):
            guard let who = attributed([header("Return-Path", dsn.originalHeaders)]) else {
                return Found(events: [], note: "a DSN for no campaign recipient")
            }
            var events: [IncomingBounceEvent] = []
            for (i, r) in dsn.recipients.enumerated() where Self.isFailure(r) {
                let verdict = classifier.classify(status: r.status, text: r.diagnosticCode ?? "")
                events.append(IncomingBounceEvent(
                    type: .bounce, campaignID: who.campaign, subscriberID: who.subscriber, category: verdict.category,
                    hard: verdict.hard, status: r.status, diagnostic: r.diagnosticCode, reporter: dsn.reportingMTA,
                    source: message.id, seq: i))
            }
            return Found(events: events, note: events.isEmpty ? "a DSN without a failed recipient"
                                                                : "a DSN, \(events.count) failed recipient(s)")
        case .feedback(let arf):
            guard Self.complaintTypes.contains(arf.feedbackType) else {
                return Found(events: [], note: "a feedback report of type \(arf.feedbackType)")
            }
            guard let who = attributed([arf.originalMailFrom, header("Return-Path", arf.originalHeaders)]) else {
                return Found(events: [], note: "a complaint about no campaign recipient")
            }
            let event = IncomingBounceEvent(
                type: .complaint, campaignID: who.campaign, subscriberID: who.subscriber, category: "complaint",
                hard: true, diagnostic: "feedback report: \(arf.feedbackType)", reporter: arf.userAgent,
                source: message.id, seq: 0)
            return Found(events: [event], note: "a complaint (\(arf.feedbackType))")
        case .unstructured(let bounce):
            guard Self.fromMailerDaemon(message.sender), !Self.isAutoReply(entity) else {
                return Found(events: [], note: "not a bounce (from <\(message.sender)>)")
            }
            guard let who = attributed([header("Return-Path", bounce.originalHeaders)]) else {
                return Found(events: [], note: "a bounce for no campaign recipient")
            }
            let excerpt = diagnosticExcerpt(bounce.text)
            var verdict = classifier.classify(status: bounce.status, text: excerpt)
            if verdict == BounceClassifier.unknown, bounce.status == nil, let code = bounce.replyCode, code / 100 == 4 {
                verdict = BounceClassifier.Verdict(category: "transient", hard: false)
            }
            let event = IncomingBounceEvent(
                type: .bounce, campaignID: who.campaign, subscriberID: who.subscriber, category: verdict.category,
                hard: verdict.hard, status: bounce.status, diagnostic: excerpt.isEmpty ? nil : excerpt,
                reporter: header("From", entity.headers), source: message.id, seq: 0)
            return Found(events: [event], note: "a non-standard bounce")
        }
    }

    /// Feedback types that are complaints about the mail (RFC 5965 §7.3); `not-spam`,
    /// `virus` and authentication-failure reports are not.
    static let complaintTypes: Set<String> = ["abuse", "fraud", "other"]

    static func isFailure(_ r: DeliveryStatusReport.Recipient) -> Bool {
        if let action = r.action { return action == "failed" }
        return r.status?.hasPrefix("5.") == true
    }

    /// A bounce comes from the null sender (RFC 5321 §4.5.5) or, from a badly behaved
    /// server, a MAILER-DAEMON or postmaster address.
    static func fromMailerDaemon(_ sender: String) -> Bool {
        guard !sender.isEmpty else { return true }
        let local = sender.split(separator: "@").first.map { $0.lowercased() } ?? ""
        return ["mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"].contains(local)
    }

    /// RFC 3834 auto-replies (vacation messages) say so.
    static func isAutoReply(_ entity: MIMEEntity) -> Bool {
        let auto = entity.header("Auto-Submitted")?.lowercased() ?? "no"
        return auto.hasPrefix("auto-replied")
    }

    /// The part of a non-standard bounce's text that explains the failure: the lines
    /// around the first reply code, else the text before the returned message (whose
    /// headers, DKIM-Signature and body would otherwise be classified too). At most
    /// 1,000 characters.
    static func diagnosticExcerpt(_ text: String) -> String {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        let markers = ["below this line is a copy", "this is a copy of the message", "original message follows",
                       "original message headers", "returned message", "received:", "return-path:", "dkim-signature:"]
        var kept: [Substring] = []
        for line in lines {
            let l = line.lowercased().trimming(" \t-")
            if markers.contains(where: { l.hasPrefix($0) }) { break }
            kept.append(line)
        }
        if let i = kept.firstIndex(where: { Self.hasReplyCode($0) }) {
            kept = Array(kept[i..<min(kept.count, i + 3)])
        }
        let joined = kept.map { $0.trimming(" \t") }.filter { !$0.isEmpty }.joined(separator: " ")
        return String(joined.prefix(1000))
    }

    static func hasReplyCode(_ line: Substring) -> Bool {
        let bytes = Array(line.utf8)
        guard bytes.count >= 4 else { return false }
        for i in 0...(bytes.count - 4) {
            let before = i == 0 || !(0x30...0x39).contains(bytes[i - 1])
            if before, bytes[i] == 0x34 || bytes[i] == 0x35, (0x30...0x39).contains(bytes[i + 1]),
               (0x30...0x39).contains(bytes[i + 2]), bytes[i + 3] == 0x20 || bytes[i + 3] == 0x2D {
                return true
            }
        }
        return false
    }

    static func header(_ name: String, _ headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

extension Substring {
    fileprivate func trimming(_ set: String) -> String { String(self).trimming(set) }
}
