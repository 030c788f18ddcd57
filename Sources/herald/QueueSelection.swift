import ArgumentParser
import Delivery
import Foundation
import Spool

/// Why a message waits, in a few words a postmaster can act on, and the state it puts the
/// message in for `--state`. Worked out from the files alone (the envelope, the queue it
/// is in, `<spool>/held-campaigns`), so it reads the same whether or not `herald serve`
/// runs; the checks go in the order the queue manager applies them:
///
/// | state | text | when |
/// |---|---|---|
/// | `held` | `held` | the message is in `hold/` |
/// | `paused` | `campaign 7 paused` | its campaign tag is listed in `held-campaigns` |
/// | `window` | `window opens 09:00 Europe/Paris` | its send window is closed when it is next due (a day name is added when that is more than a day away) |
/// | `retry` | `retry at 2026-12-06T09:14:00Z` | every outstanding recipient's next attempt is in the future: the earliest one |
/// | `paced` | `paced campaign 7 (10/m)` | it has a send-policy rate and no attempt was made yet |
/// | `paced` | `paced tenant 7 (1000/h)` | no attempt was made yet, and the daemon has mail of its tenant waiting for a slot of the tenant's rate (its `queue-state.json`) |
/// | `backoff` | `gmail.com backing off until 2026-12-06T09:14:00Z` | due now, but every destination it waits for is paused after a throttling reply (known only while `herald serve` runs: its `queue-state.json`) |
/// | `ready` | `ready` | due now: waits for a connection slot or throttle only |
/// | `in-delivery` | `in delivery` | no recipient is outstanding: the daemon is finishing it |
struct WaitReason: Equatable {
    enum State: String, CaseIterable, ExpressibleByArgument {
        case held, paused, window, retry, paced, backoff, ready
        case inDelivery = "in-delivery"
        /// Not reasons, only selectors: every message in `queue/`, and messages with a
        /// recipient in state `deferred` (whatever they wait for now).
        case queued, deferred
    }

    var state: State
    var text: String

    /// Shared by every message of one listing: `now`, the held campaigns, and the
    /// formatted window openings (a window's calendar arithmetic once per distinct time).
    final class Context {
        let now: Date
        let heldCampaigns: Set<String>
        /// Destination queues the daemon has paused (throttle back-off), until when.
        let pausedUntil: [String: Date]
        /// Tenants whose mail waits for a slot of their rate in the daemon, with the rate.
        let pacedTenants: [String: String]
        let delivery: DeliveryConfiguration?
        private var openings: [String: String] = [:]
        private var destinations: [String: String] = [:]

        init(now: Date, heldCampaigns: Set<String>, pausedUntil: [String: Date] = [:],
             pacedTenants: [String: String] = [:], delivery: DeliveryConfiguration? = nil) {
            self.pacedTenants = pacedTenants
            self.now = now
            self.heldCampaigns = heldCampaigns
            self.pausedUntil = pausedUntil
            self.delivery = delivery
        }

        /// The queue manager's destination key for a recipient domain.
        func destination(of domain: String) -> String {
            guard let delivery else { return domain }
            if let key = destinations[domain] { return key }
            let key = QueueStats.destination(of: domain, delivery).key
            if destinations.count > 100_000 { destinations.removeAll() }
            destinations[domain] = key
            return key
        }

        /// `09:00 Europe/Paris`, or `Mon 09:00 Europe/Paris` when more than a day away.
        func opening(_ window: SendWindow, _ date: Date) -> String {
            let far = date.timeIntervalSince(now) >= 86_400
            let key = "\(window.timeZone)|\(date.timeIntervalSince1970)|\(far)"
            if let text = openings[key] { return text }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = window.zone
            formatter.dateFormat = far ? "EEE HH:mm" : "HH:mm"
            let text = formatter.string(from: date) + " " + window.timeZone
            if openings.count > 10_000 { openings.removeAll() }
            openings[key] = text
            return text
        }
    }

    static func of(_ envelope: Envelope, in queue: SpoolQueue, _ context: Context) -> WaitReason {
        if queue == .hold { return WaitReason(state: .held, text: "held") }
        if let campaign = envelope.campaign, context.heldCampaigns.contains(campaign) {
            return WaitReason(state: .paused, text: "campaign \(campaign) paused")
        }
        let now = context.now
        let outstanding = envelope.recipients.filter { $0.state == .pending || $0.state == .deferred }
        guard !outstanding.isEmpty else { return WaitReason(state: .inDelivery, text: "in delivery") }
        // The message is next due when its first outstanding recipient is (nil = now).
        let due = outstanding.map { max($0.nextAttempt ?? now, now) }.min() ?? now
        if let window = envelope.sendPolicy?.window, !window.isOpen(at: due) {
            let opens = window.nextOpening(atOrAfter: due)
            return WaitReason(state: .window, text: "window opens " + context.opening(window, opens))
        }
        if due > now { return WaitReason(state: .retry, text: "retry at " + iso8601(due)) }
        if let policy = envelope.sendPolicy, let rate = policy.rate, envelope.recipients.allSatisfy({ $0.attempts == 0 }) {
            let bucket = envelope.campaign.map { "campaign \($0)" } ?? policy.rateKey
            return WaitReason(state: .paced, text: "paced " + (bucket.map { $0 + " " } ?? "") + "(\(rate.text))")
        }
        if let tag = envelope.tenant, let rate = context.pacedTenants[tag],
           envelope.recipients.allSatisfy({ $0.attempts == 0 }) {
            return WaitReason(state: .paced, text: "paced tenant \(tag) (\(rate))")
        }
        // Due now: held back only if every destination it waits for is in back-off; it
        // moves when the first of them resumes.
        if !context.pausedUntil.isEmpty {
            var soonest: (domain: String, until: Date)?
            for r in outstanding where (r.nextAttempt ?? now) <= now {
                let domain = MessageFilter.domain(of: r.address)
                guard let until = context.pausedUntil[context.destination(of: domain)], until > now else {
                    soonest = nil
                    break
                }
                if soonest.map({ until < $0.until }) ?? true { soonest = (domain, until) }
            }
            if let soonest {
                return WaitReason(state: .backoff, text: "\(soonest.domain) backing off until " + iso8601(soonest.until))
            }
        }
        return WaitReason(state: .ready, text: "ready")
    }
}

/// `5m`, `1h`, `2d`, `90s` (a number, decimals allowed, and one of s, m, h, d).
struct Age: ExpressibleByArgument {
    var seconds: Double

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        guard let unit = text.last, let scale = ["s": 1.0, "m": 60, "h": 3600, "d": 86_400][String(unit)],
              let number = Double(text.dropLast()), number >= 0, number.isFinite
        else { return nil }
        seconds = number * scale
    }
}

/// The selectors shared by `queue list` and `queue hold|release|delete|retry`. All given
/// selectors must match (AND); `--state` may be repeated (any of them).
struct MessageFilter: ParsableArguments {
    @Option(help: "Only messages of this campaign (the envelope's campaign tag, e.g. 7).")
    var campaign: String?

    @Option(help: "Only messages of this tenant.")
    var tenant: String?

    @Option(help: "Only messages with a recipient at this domain (e.g. gmail.com).")
    var domain: String?

    @Option(help: ArgumentHelp(
        "Only messages in this state (repeatable): queued (anything not on hold), held, paused (campaign paused), "
            + "window (send window closed), retry (waiting for a retry), deferred (a recipient was deferred), "
            + "paced (waiting for its campaign's rate), backoff (its destination is backing off), ready, in-delivery.",
        valueName: "state"))
    var state: [WaitReason.State] = []

    @Option(help: ArgumentHelp("Only messages that arrived longer ago than this (e.g. 90s, 15m, 1h, 2d).",
                               valueName: "age"))
    var older: Age?

    var isActive: Bool { campaign != nil || tenant != nil || domain != nil || !state.isEmpty || older != nil }

    func matches(_ envelope: Envelope, _ reason: WaitReason, in queue: SpoolQueue, now: Date) -> Bool {
        if let campaign, envelope.campaign != campaign { return false }
        if let tenant, envelope.tenant != tenant { return false }
        if let domain {
            let wanted = domain.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "@."))
            guard envelope.recipients.contains(where: { Self.domain(of: $0.address) == wanted }) else { return false }
        }
        if let older, now.timeIntervalSince(envelope.arrival) <= older.seconds { return false }
        if !state.isEmpty {
            let hit = state.contains { s in
                switch s {
                case .queued: return queue == .queue
                case .deferred: return envelope.recipients.contains { $0.state == .deferred }
                default: return reason.state == s
                }
            }
            if !hit { return false }
        }
        return true
    }

    static func domain(of address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return address[address.index(after: at)...].lowercased()
    }
}

extension SpoolAccess {
    /// A context for ``WaitReason`` at `now`: reads `held-campaigns` once.
    func reasonContext(now: Date = Date()) -> WaitReason.Context {
        var paused: [String: Date] = [:]
        let state = daemonState(now: now)
        for d in state?.destinations ?? [] {
            if let until = d.backoffUntil(after: now) { paused[d.domain] = until }
        }
        return WaitReason.Context(now: now, heldCampaigns: (try? spool.heldCampaigns()) ?? [], pausedUntil: paused,
                                  pacedTenants: state?.pacedTenants ?? [:], delivery: config.delivery)
    }

    /// The messages in `queues` that `filter` selects, oldest first, with why each waits.
    func select(_ queues: [SpoolQueue], _ filter: MessageFilter, now: Date = Date())
        -> [(queue: SpoolQueue, envelope: Envelope, reason: WaitReason)] {
        let context = reasonContext(now: now)
        return entries(queues).compactMap { q, env in
            let reason = WaitReason.of(env, in: q, context)
            return filter.matches(env, reason, in: q, now: now) ? (q, env, reason) : nil
        }
    }
}

/// Queue ids read from standard input (`-` in place of ids, as `postsuper -d -`),
/// separated by any white space, e.g. the output of `herald queue list --ids`. A
/// trailing `!` (the list's mark of a held message) is ignored.
func idsFromStandardInput() -> [String] {
    var ids: [String] = []
    while let line = readLine() {
        for word in line.split(whereSeparator: { $0.isWhitespace }) {
            var id = String(word)
            if id.hasSuffix("!") { id.removeLast() }
            if !id.isEmpty { ids.append(id) }
        }
    }
    return ids
}
