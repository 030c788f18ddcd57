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
/// - GCRA rate limits (``RateLimiter``): global, per route, per domain, per MX site.
///   A message waits at the head of its queue until every bucket allows it.
/// - Pacing stages: a message with a send-policy rate waits in its campaign's
///   ``PacedQueue`` and joins its destination queues one rate slot at a time; outside
///   its send window it waits for the next opening with no attempt made. A tenant's
///   rate (``TenantDeliveryLimits/rate``, or a `[[throttle]] match = "tenant:NAME"`)
///   is a second stage of the same kind, after the campaign's: so neither a slow
///   campaign nor a slow tenant ever sits at the head of a destination queue that
///   other tenants' mail shares.
/// - Tenant connections: a tenant at its ``TenantDeliveryLimits/maxConnections``
///   (attempts in flight over all destinations) has its message taken off the head of
///   the destination queue and set aside; each attempt of that tenant that ends brings
///   one set-aside message back. Other mail in the queue goes on meanwhile.
/// - Retries: a deferred recipient gets its next attempt from ``RetrySchedule``; the
///   waiting set remembers when each message is next due, so the retry pass looks at
///   those only.
/// - Held campaigns (a paused campaign, ``setHeldCampaigns(_:now:)``): their messages
///   stay indexed but are not scheduled; one already waiting in a destination queue or a
///   paced queue is dropped from it when it reaches the head, without taking a slot.
///   Releasing the campaign schedules its messages again in arrival order, so pacing
///   continues from the bucket's state. The per-campaign index (``byCampaign``) makes
///   both, and ``removeCampaign(_:)`` (cancel), cost the campaign's size, not the queue's.
/// - The active limit (``DeliveryConfiguration/activeLimit``): at most that many
///   envelopes are held (``entries``). Messages beyond it are *parked*: known by a
///   ``Parked`` record (no envelope) and read in again by the queue manager as room frees
///   up (``takeLoadable(now:max:)``, ``load(_:stamp:now:)``): due retries first, then
///   the rest in arrival order. While anything is parked or the limit is reached, a
///   message that only waits (for a retry, a send window, or its paused campaign) is
///   parked too instead of holding a place.
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
        /// Waiting in a ``PacedQueue`` for a slot of one of its pacing stages.
        var paced = false
        /// Pacing stages (``pacingStages(_:)``) passed since its last attempt started.
        var slots = 0
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
    /// Database tenants' delivery limits, by envelope tenant tag (the tenant's id).
    private(set) var tenants: [String: TenantDeliveryLimits] = [:]
    /// Attempts in flight per tenant tag.
    private(set) var activeByTenant: [String: Int] = [:]
    /// Messages taken off a destination queue because their tenant was at its
    /// connection limit; one comes back each time an attempt of the tenant ends.
    private(set) var waitingForTenant: [String: IDQueue] = [:]

    /// A queued message whose envelope is not held (see the active limit above).
    struct Parked: Sendable {
        enum Place: UInt8, Sendable {
            /// Waiting for its first load, in arrival order.
            case ready
            /// Waiting for a retry (or a send window) at `due`.
            case retry
            /// Held with its paused campaign.
            case held
        }
        /// The `.env` file's modification time when parked (0: unknown): a rescan that
        /// sees another one reads the message in again (`herald queue retry`).
        var stamp: Int64
        /// Seconds since 1970 (`retry` only).
        var due: Double
        /// The `.msg` size in octets.
        var size: UInt32
        /// 1 + the index of its campaign tag in `campaignTagNames`; 0 = none.
        var campaign: UInt32
        var place: Place
    }
    /// The parked messages.
    private(set) var parked: [QueueID: Parked] = [:]

    /// Makes room for `count` more parked messages at once (the first scan after a
    /// restart parks most of a large queue), instead of growing a step at a time.
    mutating func reserveParked(_ count: Int) {
        parked.reserveCapacity(parked.count + count)
    }
    private var readyToLoad = IDQueue()
    private var parkedRetries = DueHeap()
    private var parkedHeld: [UInt32: [QueueID]] = [:]
    /// Parked messages by place, and by campaign number.
    private var parkedCount: [Parked.Place: Int] = [:]
    private var parkedByCampaign: [UInt32: Int] = [:]
    /// Campaign tags of parked messages, numbered from 1 (a record holds a number).
    private var campaignTagNames: [String] = []
    private var campaignTagNumbers: [String: UInt32] = [:]

    init(config: DeliveryConfiguration) {
        self.config = config
    }

    // MARK: - The index

    /// Indexes a message (committed just now, or found by a scan) and schedules it.
    /// Returns false when it is already known.
    /// Past the active limit, or behind parked messages that came first, it is parked.
    @discardableResult
    mutating func add(_ envelope: Envelope, stamp: Int64 = 0, now: Date) -> Bool {
        guard entries[envelope.id] == nil, parked[envelope.id] == nil else { return false }
        if entries.count >= config.activeLimit || parkedCount[.ready, default: 0] > 0 {
            park(envelope.id, campaign: envelope.campaign, size: envelope.size, stamp: stamp,
                 place: isHeld(envelope) ? .held : .ready, due: 0)
            return true
        }
        load(envelope, stamp: stamp, now: now)
        return true
    }

    /// Indexes a message read in from disk (one ``takeLoadable(now:max:)`` handed out,
    /// or one below the limit) and schedules it.
    mutating func load(_ envelope: Envelope, stamp: Int64, now: Date) {
        entries[envelope.id] = Entry(envelope: envelope, stamp: stamp)
        if let tag = envelope.campaign { byCampaign[tag, default: []].insert(envelope.id) }
        schedule(envelope.id, now: now)
    }

    // MARK: - Parked messages

    /// Parks a message found on disk without its envelope in memory (start-up beyond
    /// the limit): ready, or held when its campaign is.
    mutating func park(_ id: QueueID, campaign: String?, size: Int, stamp: Int64) {
        guard entries[id] == nil, parked[id] == nil else { return }
        let held = campaign.map { heldCampaigns.contains($0) } ?? false
        park(id, campaign: campaign, size: size, stamp: stamp, place: held ? .held : .ready, due: 0)
    }

    private mutating func park(_ id: QueueID, campaign: String?, size: Int, stamp: Int64, place: Parked.Place,
                               due: Double) {
        var number: UInt32 = 0
        if let campaign {
            if let known = campaignTagNumbers[campaign] {
                number = known
            } else {
                campaignTagNames.append(campaign)
                number = UInt32(campaignTagNames.count)
                campaignTagNumbers[campaign] = number
            }
            parkedByCampaign[number, default: 0] += 1
        }
        parked[id] = Parked(stamp: stamp, due: due, size: UInt32(clamping: size), campaign: number, place: place)
        parkedCount[place, default: 0] += 1
        switch place {
        case .ready: readyToLoad.push(id)
        case .retry: parkedRetries.push(due, id)
        case .held: parkedHeld[number, default: []].append(id)
        }
    }

    /// Forgets a parked record (its queue entry, if any, is skipped when reached).
    @discardableResult
    private mutating func unpark(_ id: QueueID) -> Parked? {
        guard let p = parked.removeValue(forKey: id) else { return nil }
        parkedCount[p.place, default: 1] -= 1
        if p.campaign != 0 {
            parkedByCampaign[p.campaign, default: 1] -= 1
            if parkedByCampaign[p.campaign] == 0 { parkedByCampaign[p.campaign] = nil }
        }
        return p
    }

    /// Whether the index is full or anything waits parked: then a message that only
    /// waits gives its place up.
    private var crowded: Bool { entries.count >= config.activeLimit || !parked.isEmpty }

    /// Parks an indexed message that only waits (nothing queued, in flight or being
    /// written), when the index is crowded: `due` is its next attempt (nil: held with
    /// its campaign).
    private mutating func parkIfWaiting(_ id: QueueID, due: Date?) {
        guard crowded, let e = entries[id], e.busy.isEmpty, e.queued.isEmpty, !e.writing, !e.paced else { return }
        let held = isHeld(e.envelope)
        guard held || due != nil else { return }
        forget(id)
        park(id, campaign: e.envelope.campaign, size: e.envelope.size, stamp: e.stamp,
             place: held ? .held : .retry, due: held ? 0 : due!.timeIntervalSince1970)
    }

    /// Up to `max` parked messages to read in now, as room allows: due retries first,
    /// then ready ones in arrival order. They are no longer parked: the caller reads each
    /// and hands it to ``load(_:stamp:now:)`` (or reports it gone).
    mutating func takeLoadable(now: Date, max: Int) -> [QueueID] {
        let room = Swift.min(max, config.activeLimit - entries.count)
        guard room > 0, !parked.isEmpty else { return [] }
        var ids: [QueueID] = []
        let time = now.timeIntervalSince1970
        while ids.count < room, let top = parkedRetries.peek(), top.due <= time {
            _ = parkedRetries.pop()
            if let p = parked[top.id], p.place == .retry, p.due == top.due {
                unpark(top.id)
                ids.append(top.id)
            }
        }
        while ids.count < room, let id = readyToLoad.pop() {
            if parked[id]?.place == .ready {
                unpark(id)
                ids.append(id)
            }
        }
        return ids
    }

    /// When the earliest parked retry is due, if there is room to read it in (nil: none,
    /// or the index is full: a completion makes room and looks again).
    mutating func nextParkedDue() -> Date? {
        guard entries.count < config.activeLimit else { return nil }
        while let top = parkedRetries.peek() {
            if let p = parked[top.id], p.place == .retry, p.due == top.due {
                return Date(timeIntervalSince1970: top.due)
            }
            _ = parkedRetries.pop()   // read in or forgotten since
        }
        return nil
    }

    /// A parked retry whose envelope changed on disk (`herald queue retry`) is read in
    /// with the ready ones.
    mutating func parkedChanged(_ id: QueueID, stamp: Int64) {
        guard let p = parked[id], p.place == .retry, p.stamp != 0, stamp != p.stamp else { return }
        makeReady(id, stamp: stamp)
    }

    /// Moves a parked message to the back of the ready line (its entry in the queue of
    /// its old place is skipped when reached).
    private mutating func makeReady(_ id: QueueID, stamp: Int64) {
        guard let p = unpark(id) else { return }
        park(id, campaign: campaignTag(p.campaign), size: Int(p.size), stamp: stamp, place: .ready, due: 0)
    }

    /// The campaign tag a parked record's number stands for (nil for 0, no campaign).
    private func campaignTag(_ number: UInt32) -> String? {
        number == 0 ? nil : campaignTagNames[Int(number) - 1]
    }

    /// Forgets parked messages that are no longer in `queue/` and returns their ids.
    mutating func forgetParked(notIn present: Set<QueueID>) -> [QueueID] {
        let gone = parked.keys.filter { !present.contains($0) }
        for id in gone { unpark(id) }
        return gone
    }

    /// Forgets the parked messages of a campaign and returns their ids (the caller
    /// removes their files).
    mutating func removeParked(campaign tag: String) -> [QueueID] {
        guard let number = campaignTagNumbers[tag], parkedByCampaign[number] != nil else { return [] }
        let ids = parked.compactMap { $0.value.campaign == number ? $0.key : nil }.sorted()
        for id in ids { unpark(id) }
        parkedHeld[number] = nil
        return ids
    }

    /// Campaign tags with parked messages.
    var parkedCampaigns: Set<String> {
        Set(parkedByCampaign.keys.compactMap(campaignTag))
    }

    /// Parked messages per campaign tag.
    var parkedPerCampaign: [String: Int] {
        Dictionary(uniqueKeysWithValues: parkedByCampaign.compactMap { n, count in campaignTag(n).map { ($0, count) } })
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
    /// attempt in flight or an envelope write running), in which case it stays. A parked
    /// message is forgotten too (nil: its envelope is not in memory).
    mutating func forgetIfIdle(_ id: QueueID) -> Envelope? {
        if unpark(id) != nil { return nil }
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
    /// Parked messages of a released campaign join the ready ones; idle indexed messages
    /// of a newly held one are parked when the index is crowded.
    mutating func setHeldCampaigns(_ tags: Set<String>, now: Date) {
        let released = heldCampaigns.subtracting(tags)
        let newlyHeld = tags.subtracting(heldCampaigns)
        heldCampaigns = tags
        for tag in released.sorted() {
            for id in (byCampaign[tag] ?? []).sorted() { schedule(id, now: now) }
            guard let number = campaignTagNumbers[tag], let ids = parkedHeld.removeValue(forKey: number) else { continue }
            for id in ids.sorted() {
                guard let p = parked[id], p.place == .held else { continue }
                makeReady(id, stamp: p.stamp)
            }
        }
        for tag in newlyHeld.sorted() {
            for id in (byCampaign[tag] ?? []).sorted() { parkIfWaiting(id, due: nil) }
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
    /// (outside it, it waits for the next opening), and a message with pacing stages
    /// (a policy rate, a tenant rate) only once each stage's bucket gave it a slot
    /// (`slots`): until then it waits in the next stage's ``PacedQueue``.
    private mutating func schedule(_ id: QueueID, now: Date) {
        guard var entry = entries[id] else { return }
        if isHeld(entry.envelope) {
            // Held with its campaign: nothing is due until the campaign is released.
            waiting[id] = nil
            parkIfWaiting(id, due: nil)
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
        if !destinations.isEmpty, let window = entry.envelope.sendPolicy?.window {
            let state = windowState(window, now)
            entry.windowClosesAt = state.open ? state.until : nil
            if !state.open {
                earliest = min(earliest ?? state.until, state.until)
                destinations = []
            }
        }
        if !destinations.isEmpty {
            let stages = pacingStages(entry.envelope)
            if entry.slots < stages.count {
                if !entry.paced {
                    entry.paced = true
                    let (key, rate) = stages[entry.slots]
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
        if destinations.isEmpty && !entry.paced, let earliest { parkIfWaiting(id, due: earliest) }
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

    private func rateKeys(domain: String) -> [(String, Rate)] {
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

    /// The rate buckets a message passes, one after the other, before it joins its
    /// destination queues: its send policy's rate (a campaign's pace), then its tenant's.
    func pacingStages(_ envelope: Envelope) -> [(String, Rate)] {
        var stages: [(String, Rate)] = []
        if let policy = envelope.sendPolicy, let stage = Self.pacing(policy) { stages.append(stage) }
        if let tag = envelope.tenant, let rate = tenantRate(tag) { stages.append(("tenant:\(tag)", rate)) }
        return stages
    }

    // MARK: - Tenants

    /// Whether a `[[throttle]] match = "tenant:NAME"` applies to mail tagged `tag`: the
    /// tag is NAME (a config-file tenant, or SMTP users of a tenant the database does not
    /// know), or the id of the database tenant named NAME (names compare ignoring case,
    /// as the database keeps them unique).
    func throttleNames(_ name: String, tenant tag: String) -> Bool {
        if name == tag { return true }
        guard let known = tenants[tag]?.name else { return false }
        return known.caseInsensitiveCompare(name) == .orderedSame
    }

    /// The tenant's rate: the slowest of its own limit and the `tenant:` throttles that
    /// match it; nil when none applies.
    func tenantRate(_ tag: String) -> Rate? {
        var rates: [Rate] = []
        if let r = tenants[tag]?.rate { rates.append(r) }
        for t in config.throttles {
            if case .tenant(let name) = t.target, let r = t.rate, throttleNames(name, tenant: tag) { rates.append(r) }
        }
        return rates.max { $0.interval < $1.interval }
    }

    /// The tenant's attempts in flight at once: the lowest of its own limit and the
    /// `tenant:` throttles' `connections`; nil when none applies.
    func tenantConnectionLimit(_ tag: String) -> Int? {
        var limits: [Int] = []
        if let c = tenants[tag]?.maxConnections { limits.append(c) }
        for t in config.throttles {
            if case .tenant(let name) = t.target, let c = t.connections, throttleNames(name, tenant: tag) {
                limits.append(c)
            }
        }
        return limits.min().map { max(1, $0) }
    }

    /// Replaces the database tenants' limits (by envelope tag). Messages waiting in the
    /// pacing queue of a tenant whose rate is gone or changed are scheduled again (with
    /// the new rate, if any), and parked messages of a tenant with connections free
    /// (or no limit now) come back.
    mutating func setTenants(_ limits: [String: TenantDeliveryLimits], now: Date) {
        guard limits != tenants else { return }
        // A tenant whose rate changed starts a fresh bucket (an hour-long wait left by
        // a rate of 1/h must not outlive it).
        let tags = Set(tenants.keys).union(limits.keys)
        let before = Dictionary(uniqueKeysWithValues: tags.map { ($0, tenantRate($0)) })
        tenants = limits
        for tag in tags where tenantRate(tag) != before[tag] ?? nil { limiter.forget("tenant:\(tag)") }
        for key in paced.keys.sorted() where key.hasPrefix("tenant:") {
            let tag = String(key.dropFirst("tenant:".count))
            guard var bucket = paced[key] else { continue }
            if let rate = tenantRate(tag) {
                bucket.rate = rate
                paced[key] = bucket
                continue
            }
            paced[key] = nil
            while let id = bucket.todo.pop() {
                guard var entry = entries[id], entry.paced else { continue }
                entry.paced = false
                entries[id] = entry
                schedule(id, now: now)
            }
        }
        for tag in waitingForTenant.keys.sorted() { returnWaiting(ofTenant: tag, now: now) }
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
                parkIfWaiting(id, due: nil)
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
            if let tag = entry.envelope.tenant, let limit = tenantConnectionLimit(tag),
               activeByTenant[tag, default: 0] >= limit {
                // Its tenant has all its connections in use: set aside (off this queue, so
                // the mail behind it goes on) until one of the tenant's attempts ends.
                _ = q.pop()
                queues[domain] = q
                entry.queued.remove(domain)
                entries[id] = entry
                waitingForTenant[tag, default: IDQueue()].push(id)
                continue
            }
            let keys = rateKeys(domain: representativeDomain(entry, domain))
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
            entry.slots = 0   // a later attempt (a retry) takes new pacing slots
            if let tag = entry.envelope.tenant { activeByTenant[tag, default: 0] += 1 }
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
        // Stage by stage (a campaign's pace, then tenants' rates), so that a message
        // released by its campaign's bucket may pass its tenant's in the same pass.
        for stage in ["policy:", "tenant:"] {
            releasePaced(stage: stage, now, later)
        }
    }

    private mutating func releasePaced(stage: String, _ now: Date, _ later: (Date) -> Void) {
        for key in paced.keys.filter({ $0.hasPrefix(stage) }).sorted() {
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
                    parkIfWaiting(id, due: nil)
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
                if !windowClosed { entry.slots += 1 }
                entries[id] = entry
                schedule(id, now: now)
            }
            paced[key] = bucket.todo.isEmpty ? nil : bucket
        }
    }

    // MARK: - Outcomes

    private mutating func release(_ attempt: Attempt, now: Date) {
        let destination = attempt.destination
        inFlight -= 1
        if var q = queues[destination] {
            q.active -= 1
            queues[destination] = q
        }
        if let (siteKey, _) = siteConnectionLimit(for: destination) { activeBySite[siteKey, default: 1] -= 1 }
        if let tag = attempt.envelope.tenant {
            let n = activeByTenant[tag, default: 1] - 1
            activeByTenant[tag] = n > 0 ? n : nil
            returnWaiting(ofTenant: tag, now: now)
        }
    }

    /// Brings set-aside messages of the tenant back to their destination queues, as many
    /// as it has connections free (all of them when it has no limit any more).
    private mutating func returnWaiting(ofTenant tag: String, now: Date) {
        guard var waiting = waitingForTenant[tag] else { return }
        var free = tenantConnectionLimit(tag).map { $0 - activeByTenant[tag, default: 0] } ?? Int.max
        while free > 0, let id = waiting.pop() {
            guard entries[id] != nil else { continue }
            schedule(id, now: now)
            free -= 1
        }
        waitingForTenant[tag] = waiting.isEmpty ? nil : waiting
    }

    /// The attempt never ran (the message could not be read). Returns true when the
    /// message is gone from the index (it left `queue/`, `inQueue` false, and is idle).
    /// A message still in `queue/` whose file could not be read (an I/O error, a file
    /// replaced by something unreadable) is tried again at `retryAt`: its attempt's
    /// recipients wait until then in memory, with no attempt counted and nothing
    /// written, since the message did not change and the fault may pass.
    @discardableResult
    mutating func abandoned(_ attempt: Attempt, inQueue: Bool, retryAt: Date, now: Date) -> Bool {
        release(attempt, now: now)
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
        release(attempt, now: now)
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
                reply: outcome.reply.description, attempt: r.attempts))
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
