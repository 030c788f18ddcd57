import Foundation
import SMTPClient
import SMTPCore
import Spool

/// The queue manager's decisions, without I/O and without a clock: every call takes
/// `now`, and what is to be done comes back as values (attempts to start, outcomes to
/// log and persist, a DSN to queue, when to look again). ``QueueManager`` is the thin
/// actor that feeds it from the spool and carries its answers out; tests drive it with
/// hand-picked times.
///
/// Strategies:
/// - One ``DestinationQueue`` per destination (a domain, or a smart-host route), served
///   round-robin so that a slow or throttled destination never holds back the others.
/// - Each queue has a concurrency window with slow start and back-off on throttle replies.
/// - GCRA rate limits (``RateLimiter``): global, per route, per domain, per MX site,
///   per tenant. A message waits at the head of its queue until every bucket allows it.
/// - Campaign pacing: a message with a send-policy rate waits in its campaign's
///   ``PacedQueue`` and joins its destination queues one rate slot at a time; outside
///   its send window it waits for the next opening with no attempt made.
/// - Retries: a deferred recipient gets its next attempt from ``RetrySchedule``; the
///   waiting set remembers when each message is next due, so the retry pass looks at
///   those only.
/// - Held campaigns (a paused campaign, ``setHeldCampaigns(_:now:)``): their messages
///   stay indexed but are not scheduled; one already waiting in a destination queue or a
///   paced queue is dropped from it when it reaches the head, without taking a slot.
///   Releasing the campaign schedules its messages again in arrival order, so pacing
///   continues from the bucket's state. The per-campaign index (``byCampaign``) makes
///   both, and ``removeCampaign(_:)`` (cancel), cost the campaign's size, not the queue's.
struct DeliveryScheduler {
    struct Entry {
        var envelope: Envelope
        /// The `.env` file's modification time when this copy was loaded or written
        /// (0 = not known yet): a rescan reloads only envelopes changed behind our back.
        var stamp: Int64 = 0
        /// Destinations with an attempt in flight for this message.
        var busy: Set<String> = []
        /// Destinations whose queue already holds this message.
        var queued: Set<String> = []
        /// An envelope write is running; `dirty` asks it to write again.
        var writing = false
        var dirty = false
        /// Waiting in a ``PacedQueue`` for a slot of its send policy's rate.
        var paced = false
        /// When the send window this message was scheduled in closes (nil: no window,
        /// or not scheduled inside one): past it, no new attempt starts.
        var windowClosesAt: Date?
    }

    /// One delivery attempt to start: the recipients of one message for one destination.
    struct Attempt: Sendable {
        var id: QueueID
        /// The destination queue's key (a domain, or a route's `[host]:port (pattern)`).
        var destination: String
        /// A recipient domain of this attempt (MX lookup, route, throttle keys).
        var recipientDomain: String
        /// Indices into `envelope.recipients`.
        var indices: [Int]
        var envelope: Envelope
    }

    /// What an attempt's outcome changed, for the I/O side to write.
    struct Completion {
        /// The envelope with the recipients' new states (to persist).
        var envelope: Envelope
        var log: [DeliveryLog.Entry] = []
        var events: [DeliveryOutcomeEvent] = []
        /// Recipients that failed for good (a DSN to the sender, if they want one).
        var failed: [BounceBuilder.FailedRecipient] = []
    }

    let config: DeliveryConfiguration
    private(set) var entries: [QueueID: Entry] = [:]
    private(set) var queues: [String: DestinationQueue] = [:]
    /// Send-policy rate buckets, by limiter key (`policy:<rateKey>`).
    private(set) var paced: [String: PacedQueue] = [:]
    /// ``windowState(_:_:)``'s answers, valid from `from` (a clock stepped back asks again).
    private var windowStates: [SendWindow: (open: Bool, from: Date, until: Date)] = [:]
    /// Round-robin order of destinations (fairness: each gets one start per pass).
    private var ring: [String] = []
    private var ringIndex = 0
    private(set) var inFlight = 0
    private var limiter = RateLimiter()
    private var siteOf: [String: String] = [:]
    private var activeBySite: [String: Int] = [:]
    /// Messages with recipients waiting for a later attempt, and the earliest such time.
    private(set) var waiting: [QueueID: Date] = [:]
    /// The earliest time in `waiting` (nil: nothing waits).
    private(set) var nextDue: Date?
    private var destinationCache: [String: String] = [:]
    /// Campaign tags whose messages are not scheduled now.
    private(set) var heldCampaigns: Set<String> = []
    /// The indexed messages of each campaign tag.
    private(set) var byCampaign: [String: Set<QueueID>] = [:]

    init(config: DeliveryConfiguration) {
        self.config = config
    }

    // MARK: - The index

    /// Indexes a message (committed just now, or found by a scan) and schedules it.
    /// Returns false when it is already known.
    @discardableResult
    mutating func add(_ envelope: Envelope, stamp: Int64 = 0, now: Date) -> Bool {
        guard entries[envelope.id] == nil else { return false }
        entries[envelope.id] = Entry(envelope: envelope, stamp: stamp)
        if let tag = envelope.campaign { byCampaign[tag, default: []].insert(envelope.id) }
        schedule(envelope.id, now: now)
        return true
    }

    /// No attempt in flight and no envelope write running: safe to reload or forget.
    func isIdle(_ id: QueueID) -> Bool {
        guard let e = entries[id] else { return true }
        return e.busy.isEmpty && !e.writing
    }

    mutating func setStamp(_ id: QueueID, _ stamp: Int64) {
        entries[id]?.stamp = stamp
    }

    /// The envelope changed on disk (e.g. `herald queue retry`): take that copy.
    mutating func replace(_ envelope: Envelope, stamp: Int64, now: Date) {
        guard var e = entries[envelope.id] else { return }
        e.envelope = envelope
        e.stamp = stamp
        entries[envelope.id] = e
        schedule(envelope.id, now: now)
    }

    /// Forgets idle messages that are no longer in `queue/` (held or deleted by the
    /// postmaster) and returns their last known envelopes.
    @discardableResult
    mutating func forgetIdle(notIn present: Set<QueueID>) -> [Envelope] {
        var gone: [Envelope] = []
        for (id, e) in entries where !present.contains(id) && e.busy.isEmpty && !e.writing {
            gone.append(e.envelope)
            forget(id)
        }
        return gone
    }

    /// Forgets one message (the postmaster held or deleted it through the queue
    /// manager) and returns its envelope: nil when it is not indexed, or not idle (an
    /// attempt in flight or an envelope write running), in which case it stays.
    mutating func forgetIfIdle(_ id: QueueID) -> Envelope? {
        guard let e = entries[id], e.busy.isEmpty, !e.writing else { return nil }
        forget(id)
        return e.envelope
    }

    private mutating func forget(_ id: QueueID) {
        if let tag = entries[id]?.envelope.campaign {
            byCampaign[tag]?.remove(id)
            if byCampaign[tag]?.isEmpty == true { byCampaign[tag] = nil }
        }
        entries[id] = nil
        waiting[id] = nil
    }

    // MARK: - Campaign holds

    /// Whether the message belongs to a held campaign.
    func isHeld(_ envelope: Envelope) -> Bool {
        guard let tag = envelope.campaign else { return false }
        return heldCampaigns.contains(tag)
    }

    /// Replaces the set of held campaign tags. Messages of a campaign that is no longer
    /// held are scheduled again, oldest first (queue ids sort by arrival).
    mutating func setHeldCampaigns(_ tags: Set<String>, now: Date) {
        let released = heldCampaigns.subtracting(tags)
        heldCampaigns = tags
        for tag in released.sorted() {
            for id in (byCampaign[tag] ?? []).sorted() { schedule(id, now: now) }
        }
    }

    /// Forgets the campaign's idle messages and returns them (the caller removes their
    /// files). Messages with an attempt in flight or an envelope write running stay:
    /// a later call takes them once they are idle, unless they finished meanwhile.
    mutating func removeCampaign(_ tag: String) -> [Envelope] {
        var removed: [Envelope] = []
        for id in (byCampaign[tag] ?? []).sorted() {
            guard let e = entries[id], e.busy.isEmpty, !e.writing else { continue }
            removed.append(e.envelope)
            forget(id)
        }
        return removed
    }

    /// Schedules every message whose next attempt (a retry, a window opening) is due.
    mutating func releaseDue(now: Date) {
        guard let due = nextDue, now >= due else { return }
        for (id, at) in waiting where at <= now { schedule(id, now: now) }
        nextDue = waiting.values.min()
    }

    // MARK: - Scheduling

    /// Puts the message into the destination queue of each destination with a due
    /// recipient. A message with a send policy goes there only inside its send window
    /// (outside it, it waits for the next opening) and, with a policy rate, only once
    /// its rate bucket gives it a slot (`released`): until then it waits in the
    /// bucket's ``PacedQueue``.
    private mutating func schedule(_ id: QueueID, now: Date, released: Bool = false) {
        guard var entry = entries[id] else { return }
        if isHeld(entry.envelope) {
            // Held with its campaign: nothing is due until the campaign is released.
            waiting[id] = nil
            return
        }
        var destinations: [String] = []
        var earliest: Date?
        for r in entry.envelope.recipients where r.state == .pending || r.state == .deferred {
            if let next = r.nextAttempt, next > now {
                earliest = min(earliest ?? next, next)
                continue
            }
            let d = destination(of: r.address)
            if !entry.busy.contains(d) && !entry.queued.contains(d) && !destinations.contains(d) { destinations.append(d) }
        }
        if !destinations.isEmpty, let policy = entry.envelope.sendPolicy {
            if let window = policy.window {
                let state = windowState(window, now)
                entry.windowClosesAt = state.open ? state.until : nil
                if !state.open {
                    earliest = min(earliest ?? state.until, state.until)
                    destinations = []
                }
            }
            if !destinations.isEmpty, !released, let (key, rate) = Self.pacing(policy) {
                if !entry.paced {
                    entry.paced = true
                    paced[key, default: PacedQueue(rate: rate)].todo.push(id)
                }
                destinations = []
            }
        }
        for d in destinations {
            entry.queued.insert(d)
            ensureQueue(d)
            queues[d]!.push(id)
        }
        entries[id] = entry
        waiting[id] = earliest
        if let earliest { nextDue = min(nextDue ?? earliest, earliest) }
    }

    private mutating func ensureQueue(_ destination: String) {
        if queues[destination] == nil {
            // A route's queue key is not a domain: its limit comes from the route.
            let limit = destination.hasPrefix("[")
                ? min(config.connectionsPerDestination, routeConnections(key: destination) ?? Int.max)
                : connectionLimit(for: destination)
            queues[destination] = DestinationQueue(domain: destination, initialWindow: config.initialWindow, limit: limit)
            ring.append(destination)
        }
    }

    /// The destination queue a recipient domain belongs to: the domain itself for MX
    /// delivery; for a `[[route]]` with a smart host, one queue per route, so that all
    /// its domains share the route's connection window (and ride one transaction when
    /// one message has recipients in several of them), as a relay host is one
    /// destination in Postfix's queue manager. Domains with their own throttle are the
    /// exception: they keep a queue each.
    mutating func destination(ofDomain d: String) -> String {
        if let cached = destinationCache[d] { return cached }
        var key = d
        // A domain with a [[throttle]] of its own keeps its own queue even behind a
        // route, so its limits neither hold back nor get bypassed by the route's others.
        let throttled = config.throttles.contains { t in
            if case .domain(let p) = t.target { return p.matches(d) }
            return false
        }
        if !throttled, let route = config.route(for: d), let host = route.host {
            key = "[\(host)]:\(route.port) (\(route.pattern))"
        }
        if destinationCache.count > 100_000 { destinationCache.removeAll() }
        destinationCache[d] = key
        return key
    }

    mutating func destination(of address: String) -> String { destination(ofDomain: Self.domain(of: address)) }

    /// A recipient domain of `entry` that maps to `key` (for route lookup and throttles).
    private mutating func representativeDomain(_ entry: Entry, _ key: String) -> String {
        for r in entry.envelope.recipients where destination(of: r.address) == key {
            return Self.domain(of: r.address)
        }
        return key
    }

    private func routeConnections(key: String) -> Int? {
        config.routes.first { r in r.host.map { "[\($0)]:\(r.port) (\(r.pattern))" } == key }?.connections
    }

    static func domain(of address: String) -> String {
        guard let at = address.lastIndex(of: "@") else { return "" }
        return address[address.index(after: at)...].lowercased()
    }

    // MARK: - Throttles

    private func connectionLimit(for domain: String) -> Int {
        var limit = config.connectionsPerDestination
        if let c = config.route(for: domain)?.connections { limit = min(limit, c) }
        for t in config.throttles {
            if case .domain(let p) = t.target, p.matches(domain), let c = t.connections { limit = min(limit, c) }
        }
        return max(1, limit)
    }

    private func rateKeys(domain: String, tenant: String?) -> [(String, Rate)] {
        var keys: [(String, Rate)] = []
        if let r = config.globalRate { keys.append(("*", r)) }
        if let route = config.route(for: domain), let r = route.rate { keys.append(("route:\(route.pattern)", r)) }
        for t in config.throttles {
            guard let rate = t.rate else { continue }
            switch t.target {
            case .domain(let p) where p.matches(domain):
                // One bucket per matching domain for exact patterns; a wildcard rule is
                // shared by all the domains it matches only when written as mx: site.
                keys.append(("domain:\(domain)", rate))
            case .mxSite(let p):
                if let site = siteOf[domain], site.split(separator: ",").contains(where: { p.matches(String($0)) }) {
                    keys.append(("site:\(p)", rate))
                }
            case .tenant(let name) where name == tenant:
                keys.append(("tenant:\(name)", rate))
            default:
                break
            }
        }
        return keys
    }

    /// Whether `window` is open at `now`, and until when that answer holds (its closing
    /// when open, its next opening when closed). Cached per window: a campaign's million
    /// envelopes share a few windows, and the calendar arithmetic is not free.
    private mutating func windowState(_ window: SendWindow, _ now: Date) -> (open: Bool, until: Date) {
        if let s = windowStates[window], now < s.until, now >= s.from { return (s.open, s.until) }
        let closes = window.openUntil(at: now)
        let s = (open: closes != nil, from: now, until: closes ?? window.nextOpening(atOrAfter: now))
        if windowStates.count >= 10_000 { windowStates.removeAll() }
        windowStates[window] = s
        return (s.open, s.until)
    }

    /// The limiter bucket of a send policy's rate, when it has one (a rate applies only
    /// with a key; an envelope whose rate does not parse never decodes).
    static func pacing(_ policy: SendPolicy) -> (String, Rate)? {
        guard let key = policy.rateKey, let rate = policy.rate else { return nil }
        return ("policy:\(key)", rate)
    }

    private func siteConnectionLimit(for domain: String) -> (String, Int)? {
        guard let site = siteOf[domain] else { return nil }
        for t in config.throttles {
            if case .mxSite(let p) = t.target, let c = t.connections,
               site.split(separator: ",").contains(where: { p.matches(String($0)) }) {
                return ("site:\(p)", c)
            }
        }
        return nil
    }

    // MARK: - Dispatch

    /// The attempts that may start at `now` (their slots are taken), and when to look
    /// again for a paused destination or a rate slot.
    mutating func dispatch(now: Date) -> (attempts: [Attempt], wakeAt: Date?) {
        var wakeAt: Date?
        func later(_ d: Date) { wakeAt = min(wakeAt ?? d, d) }
        var attempts: [Attempt] = []
        releasePaced(now, later)
        var idlePasses = 0
        while inFlight < config.maxConcurrentDeliveries && !ring.isEmpty && idlePasses < ring.count {
            if ringIndex >= ring.count { ringIndex = 0 }
            let domain = ring[ringIndex]
            ringIndex += 1
            guard var q = queues[domain] else { idlePasses += 1; continue }
            if q.isEmpty && q.active == 0 && q.pausedUntil == nil {
                queues[domain] = nil
                ring.removeAll { $0 == domain }
                continue
            }
            if let until = q.pausedUntil {
                if until > now { later(until); idlePasses += 1; continue }
                q.pausedUntil = nil
                q.pauseReason = nil
                queues[domain] = q
            }
            guard !q.isEmpty, q.canStart else { idlePasses += 1; continue }
            if let (siteKey, limit) = siteConnectionLimit(for: domain), activeBySite[siteKey, default: 0] >= limit {
                idlePasses += 1
                continue
            }
            guard let id = q.peek() else { idlePasses += 1; continue }
            guard var entry = entries[id] else {
                _ = q.pop()
                queues[domain] = q
                continue
            }
            if isHeld(entry.envelope) {
                // Its campaign was held while it was queued: it leaves the queue, slot untaken.
                _ = q.pop()
                queues[domain] = q
                entry.queued.remove(domain)
                entries[id] = entry
                continue
            }
            if let closes = entry.windowClosesAt, closes <= now {
                // Its send window closed while it was queued: wait for the next opening.
                _ = q.pop()
                queues[domain] = q
                entry.queued.remove(domain)
                entries[id] = entry
                schedule(id, now: now)
                continue
            }
            let keys = rateKeys(domain: representativeDomain(entry, domain), tenant: entry.envelope.tenant)
            if let retryAt = limiter.reserve(keys, now: now.timeIntervalSince1970) {
                // Not yet: the message stays at the head of its queue for the next slot.
                later(Date(timeIntervalSince1970: retryAt))
                idlePasses += 1
                continue
            }
            _ = q.pop()
            idlePasses = 0
            entry.queued.remove(domain)
            entry.busy.insert(domain)
            q.active += 1
            queues[domain] = q
            entries[id] = entry
            inFlight += 1
            if let (siteKey, _) = siteConnectionLimit(for: domain) { activeBySite[siteKey, default: 0] += 1 }
            attempts.append(attempt(id, destination: domain, envelope: entry.envelope, now: now))
        }
        return (attempts, wakeAt)
    }

    /// The recipients of `envelope` that go to `destination` and are due at `now`.
    private mutating func attempt(_ id: QueueID, destination key: String, envelope: Envelope, now: Date) -> Attempt {
        var indices: [Int] = []
        for i in envelope.recipients.indices {
            let r = envelope.recipients[i]
            if (r.state == .pending || r.state == .deferred) && destination(of: r.address) == key
                && (r.nextAttempt.map { $0 <= now } ?? true) {
                indices.append(i)
            }
        }
        let recipientDomain = indices.first.map { Self.domain(of: envelope.recipients[$0].address) } ?? key
        return Attempt(id: id, destination: key, recipientDomain: recipientDomain, indices: indices,
                       envelope: envelope)
    }

    /// Moves paced messages whose rate bucket has a slot now into their destination
    /// queues, oldest first; a message whose window closed meanwhile waits for the next
    /// opening without taking a slot.
    private mutating func releasePaced(_ now: Date, _ later: (Date) -> Void) {
        for key in Array(paced.keys) {
            guard var bucket = paced[key] else { continue }
            while let id = bucket.todo.peek() {
                guard var entry = entries[id], entry.paced else {
                    _ = bucket.todo.pop()   // forgotten, or a stale duplicate of a re-scheduled id
                    continue
                }
                if isHeld(entry.envelope) {
                    // Its campaign is held: out of the bucket without a slot; a release re-queues it.
                    _ = bucket.todo.pop()
                    entry.paced = false
                    entries[id] = entry
                    continue
                }
                // A closed window sends it back to waiting (schedule sees the window) without a slot.
                let windowClosed = entry.windowClosesAt.map { $0 <= now } ?? false
                if !windowClosed, let retryAt = limiter.reserve([(key, bucket.rate)], now: now.timeIntervalSince1970) {
                    later(Date(timeIntervalSince1970: retryAt))
                    break
                }
                _ = bucket.todo.pop()
                entry.paced = false
                entries[id] = entry
                schedule(id, now: now, released: !windowClosed)
            }
            paced[key] = bucket.todo.isEmpty ? nil : bucket
        }
    }

    // MARK: - Outcomes

    private mutating func release(_ destination: String) {
        inFlight -= 1
        if var q = queues[destination] {
            q.active -= 1
            queues[destination] = q
        }
        if let (siteKey, _) = siteConnectionLimit(for: destination) { activeBySite[siteKey, default: 1] -= 1 }
    }

    /// The attempt never ran (the message could not be read). Returns true when the
    /// message is gone from the index (it left `queue/`, `inQueue` false, and is idle).
    /// A message still in `queue/` whose file could not be read (an I/O error, a file
    /// replaced by something unreadable) is tried again at `retryAt`: its attempt's
    /// recipients wait until then in memory, with no attempt counted and nothing
    /// written, since the message did not change and the fault may pass.
    @discardableResult
    mutating func abandoned(_ attempt: Attempt, inQueue: Bool, retryAt: Date, now: Date) -> Bool {
        release(attempt.destination)
        guard var e = entries[attempt.id] else { return true }
        e.busy.remove(attempt.destination)
        if inQueue {
            for i in attempt.indices where i < e.envelope.recipients.count {
                let state = e.envelope.recipients[i].state
                if state == .pending || state == .deferred { e.envelope.recipients[i].nextAttempt = retryAt }
            }
        }
        entries[attempt.id] = e
        if !inQueue && e.busy.isEmpty && !e.writing {
            forget(attempt.id)
            return true
        }
        if inQueue && !e.writing { schedule(attempt.id, now: now) }
        return false
    }

    /// Applies an attempt's result: the destination's window and pause, and each
    /// recipient's new state (delivered, failed, deferred with its next attempt, or
    /// expired past the maximum lifetime). Nil when the message left the index meanwhile.
    mutating func completed(_ attempt: Attempt, result: AttemptResult, began: Date, now: Date) -> Completion? {
        let domain = attempt.destination
        release(domain)
        if let site = result.mxSite { siteOf[domain] = site }
        if var q = queues[domain] {
            if result.throttled {
                q.throttled(until: now.addingTimeInterval(seconds(config.throttleBackoff)),
                            reason: result.outcomes.first?.reply.description ?? "")
            } else if result.outcomes.contains(where: { if case .delivered = $0 { return true } else { return false } }) {
                q.succeeded()
            } else if result.mxHost == nil && !result.outcomes.isEmpty
                        && result.outcomes.allSatisfy({ if case .deferred = $0 { return true } else { return false } }) {
                q.unreachable(until: now.addingTimeInterval(min(60, config.retry.minimal)),
                              reason: result.outcomes[0].reply.description)
            }
            queues[domain] = q
        }
        guard var entry = entries[attempt.id] else { return nil }
        entry.busy.remove(domain)
        let id = attempt.id
        var completion = Completion(envelope: entry.envelope)
        for (k, i) in attempt.indices.enumerated() where k < result.outcomes.count {
            var r = entry.envelope.recipients[i]
            let outcome = result.outcomes[k]
            let firstAttempt = r.attempts == 0, wasDeferred = r.state == .deferred
            r.attempts += 1
            r.lastReply = outcome.reply.description
            let logResult: DeliveryOutcomeEvent.Result
            switch outcome {
            case .delivered:
                r.state = .delivered
                r.nextAttempt = nil
                logResult = .delivered
            case .failed(let reply):
                r.state = .failed
                r.nextAttempt = nil
                logResult = .failed
                completion.failed.append(.init(address: r.address, orcpt: r.orcpt,
                                               status: reply.enhanced?.description ?? "5.0.0", remoteMTA: result.mxHost,
                                               diagnostic: reply.description, lastAttempt: now))
            case .deferred(let reply):
                // The route's limit (else the global one) and the message's own (a
                // campaign's max_attempts): the lowest applies.
                let configured = config.route(for: Self.domain(of: r.address))?.maxAttempts ?? config.retry.maxAttempts
                let maxAttempts = [configured, entry.envelope.sendPolicy?.maxAttempts].compactMap { $0 }.min()
                let expired = now.timeIntervalSince(entry.envelope.arrival) >= config.retry.maxLifetime
                if expired || maxAttempts.map({ r.attempts >= $0 }) == true {
                    r.state = .failed
                    r.nextAttempt = nil
                    logResult = .expired
                    let why = expired ? "message expired after \(Int(config.retry.maxLifetime))s"
                                      : "gave up after \(r.attempts) attempt(s)"
                    completion.failed.append(.init(
                        address: r.address, orcpt: r.orcpt, status: "4.4.7", remoteMTA: result.mxHost,
                        diagnostic: "\(why); last reply: \(reply)", lastAttempt: now))
                } else {
                    r.state = .deferred
                    r.nextAttempt = now.addingTimeInterval(config.retry.delay(afterAttempt: r.attempts))
                    logResult = .deferred
                }
            }
            entry.envelope.recipients[i] = r
            completion.log.append(.init(
                time: now, queueId: id.rawValue, recipient: r.address, domain: Self.domain(of: r.address),
                mxHost: result.mxHost, ip: result.ip, tls: result.tls, result: logResult.rawValue,
                code: outcome.reply.code, enhanced: outcome.reply.enhanced?.description,
                reply: outcome.reply.lines.joined(separator: " "), attempt: r.attempts,
                nextAttempt: r.nextAttempt, tenant: entry.envelope.tenant, campaign: entry.envelope.campaign,
                durationMs: Int(now.timeIntervalSince(began) * 1000)))
            completion.events.append(DeliveryOutcomeEvent(
                time: now, queueID: id.rawValue, recipient: r.address, tenant: entry.envelope.tenant,
                campaign: entry.envelope.campaign, result: logResult, code: outcome.reply.code,
                enhanced: logResult == .expired ? "4.4.7" : outcome.reply.enhanced?.description,
                firstAttempt: firstAttempt, wasDeferred: wasDeferred,
                isBounceMessage: entry.envelope.sender.isEmpty && entry.envelope.origin.listener == "bounce",
                reply: outcome.reply.description))
        }
        entries[id] = entry
        completion.envelope = entry.envelope
        return completion
    }

    // MARK: - Envelope writes

    /// Starts writing a message's envelope, unless a write is already running (then
    /// that write goes round once more). True: the caller writes now.
    mutating func beginWrite(_ id: QueueID) -> Bool {
        guard var entry = entries[id] else { return false }
        if entry.writing {
            entry.dirty = true
            entries[id] = entry
            return false
        }
        entry.writing = true
        entries[id] = entry
        return true
    }

    /// The envelope to write next, and whether every recipient is final (then the
    /// message is removed instead). Nil when the message left the index.
    mutating func nextWrite(_ id: QueueID) -> (envelope: Envelope, done: Bool)? {
        guard var e = entries[id] else { return nil }
        e.dirty = false
        entries[id] = e
        let done = e.envelope.recipients.allSatisfy { $0.state == .delivered || $0.state == .failed }
        return (e.envelope, done)
    }

    /// A write finished (`removed`: the message left the spool, or every recipient is
    /// final). Returns true when the envelope changed meanwhile and must be written again.
    mutating func wrote(_ id: QueueID, removed: Bool, done: Bool, stamp: () -> Int64, now: Date) -> Bool {
        guard var after = entries[id] else { return false }
        if removed || (done && after.busy.isEmpty) {
            forget(id)
            return false
        }
        if after.dirty { return true }
        after.writing = false
        after.stamp = stamp()   // our own write is not a postmaster's change
        entries[id] = after
        schedule(id, now: now)
        return false
    }
}
