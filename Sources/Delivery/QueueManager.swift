import DNS
import Foundation
import Logging
import NIOCore
import SMTPClient
import SMTPCore
import Spool

/// Herald's queue manager. The spool is the truth; this actor's index is a cache of it,
/// rebuilt by a scan at start-up, fed by `enqueue` after each commit, and refreshed by
/// a periodic rescan that picks up what `herald queue …` changed (released, deleted,
/// retried messages).
public actor QueueManager {
    struct Entry {
        var envelope: Envelope
        /// The `.env` file's modification time when this copy was loaded or written
        /// (0 = not known yet): a rescan reloads only envelopes changed behind our back.
        var stamp: Int64 = 0
        /// Domains with an attempt in flight for this message.
        var busy: Set<String> = []
        /// Domains already sitting in a destination queue for this message.
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

    let spool: Spool
    let config: DeliveryConfiguration
    let deliverer: Deliverer
    let log: DeliveryLog
    let bounces: BounceBuilder
    let logger: Logger
    /// Called for every recipient outcome (``DeliveryOutcomeEvent``); must not block.
    let onOutcome: DeliveryOutcomeHandler?
    private var entries: [QueueID: Entry] = [:]
    private var queues: [String: DestinationQueue] = [:]
    /// Send-policy rate buckets, by limiter key (`policy:<rateKey>`).
    private var paced: [String: PacedQueue] = [:]
    /// ``windowState(_:_:)``'s answers, valid from `from` (a clock stepped back asks again).
    private var windowStates: [SendWindow: (open: Bool, from: Date, until: Date)] = [:]
    /// Round-robin order of domains (fairness: each gets one start per pass).
    private var ring: [String] = []
    private var ringIndex = 0
    private var inFlight = 0
    /// Attempts whose outcome is not yet on disk (shutdown waits for these).
    private var unfinished = 0
    private var limiter = RateLimiter()
    private var siteOf: [String: String] = [:]
    private var activeBySite: [String: Int] = [:]
    private var stopping = false
    private var lastRescan = Date()
    /// Messages with recipients waiting for a later attempt, and the earliest such time:
    /// the once-a-second retry pass looks at these only, not at every message.
    private var waiting: [QueueID: Date] = [:]
    /// The earliest time in `waiting` (nil: nothing waits).
    private var nextDue: Date?
    private var wake: CheckedContinuation<Void, Never>?
    private var lastStateWrite = Date.distantPast

    public init(spool: Spool, config: DeliveryConfiguration, resolver: any MXResolver, group: any EventLoopGroup,
                logger: Logger, onOutcome: DeliveryOutcomeHandler? = nil) {
        self.spool = spool
        self.onOutcome = onOutcome
        self.config = config
        self.logger = logger
        self.deliverer = Deliverer(config: config, resolver: resolver, group: group, logger: logger)
        self.log = DeliveryLog(path: config.logPath, maxBytes: config.logMaxBytes)
        self.bounces = BounceBuilder(hostname: config.heloName)
    }

    // MARK: - Input

    /// A message was just committed: index it and start what can start.
    public func enqueue(_ envelope: Envelope) {
        guard !stopping, entries[envelope.id] == nil else { return }
        entries[envelope.id] = Entry(envelope: envelope)
        schedule(envelope.id, now: Date())
        dispatch()
    }

    /// Loads everything in `queue/` (start-up, rescans).
    func scan() {
        let now = Date()
        let ids = (try? spool.enumerate(.queue)) ?? []
        let present = Set(ids)
        for id in ids {
            if var e = entries[id] {
                // Pick up envelope changes made by `herald queue retry` while idle: only
                // files whose modification time moved are read again (a stat, not a decode,
                // per message and rescan).
                guard e.busy.isEmpty && !e.writing else { continue }
                let stamp = envelopeStamp(id)
                if e.stamp == 0 {
                    e.stamp = stamp
                    entries[id] = e
                } else if stamp != e.stamp, let disk = try? spool.loadEnvelope(id, in: .queue) {
                    e.envelope = disk
                    e.stamp = stamp
                    entries[id] = e
                    schedule(id, now: now)
                }
                continue
            }
            do {
                let env = try spool.loadEnvelope(id, in: .queue)
                var entry = Entry(envelope: env)
                entry.stamp = envelopeStamp(id)
                entries[id] = entry
                schedule(id, now: now)
            } catch {
                logger.error("cannot load envelope", metadata: ["id": "\(id)", "error": "\(error)"])
            }
        }
        // Gone from queue/ (held or deleted by the postmaster) and idle: forget.
        for (id, e) in entries where !present.contains(id) && e.busy.isEmpty && !e.writing {
            entries[id] = nil
            waiting[id] = nil
        }
    }

    /// The `.env` file's modification time in nanoseconds (0 when it cannot be read).
    private func envelopeStamp(_ id: QueueID) -> Int64 {
        var info = stat()
        guard stat(spool.envelopePath(id, in: .queue), &info) == 0 else { return 0 }
        return Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }

    /// Puts the message into the destination queue of each domain with a due recipient.
    /// A message with a send policy goes there only inside its send window (outside it,
    /// it waits for the next opening) and, with a policy rate, only once its rate bucket
    /// gives it a slot (`released`): until then it waits in the bucket's ``PacedQueue``.
    private func schedule(_ id: QueueID, now: Date, released: Bool = false) {
        guard var entry = entries[id] else { return }
        var domains: [String] = []
        var earliest: Date?
        for r in entry.envelope.recipients where r.state == .pending || r.state == .deferred {
            if let next = r.nextAttempt, next > now {
                earliest = min(earliest ?? next, next)
                continue
            }
            let d = destination(of: r.address)
            if !entry.busy.contains(d) && !entry.queued.contains(d) && !domains.contains(d) { domains.append(d) }
        }
        if !domains.isEmpty, let policy = entry.envelope.sendPolicy {
            if let window = policy.window {
                let state = windowState(window, now)
                entry.windowClosesAt = state.open ? state.until : nil
                if !state.open {
                    earliest = min(earliest ?? state.until, state.until)
                    domains = []
                }
            }
            if !domains.isEmpty, !released, let (key, rate) = Self.pacing(policy) {
                if !entry.paced {
                    entry.paced = true
                    paced[key, default: PacedQueue(rate: rate)].todo.push(id)
                }
                domains = []
            }
        }
        for d in domains {
            entry.queued.insert(d)
            ensureQueue(d)
            queues[d]!.push(id)
        }
        entries[id] = entry
        waiting[id] = earliest
        if let earliest { nextDue = min(nextDue ?? earliest, earliest) }
    }

    private func ensureQueue(_ domain: String) {
        if queues[domain] == nil {
            // A route's queue key is not a domain: its limit comes from the route.
            let limit = domain.hasPrefix("[")
                ? min(config.connectionsPerDestination, routeConnections(key: domain) ?? Int.max)
                : connectionLimit(for: domain)
            queues[domain] = DestinationQueue(domain: domain, initialWindow: config.initialWindow, limit: limit)
            ring.append(domain)
        }
    }

    private var destinationCache: [String: String] = [:]

    /// The destination queue a recipient domain belongs to: the domain itself for MX
    /// delivery; for a `[[route]]` with a smart host, one queue per route, so that all
    /// its domains share the route's connection window (and ride one transaction when
    /// one message has recipients in several of them), as a relay host is one
    /// destination in Postfix's queue manager. Domains with their own throttle are the
    /// exception: they keep a queue each.
    func destination(ofDomain d: String) -> String {
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

    func destination(of address: String) -> String { destination(ofDomain: Self.domain(of: address)) }

    /// A recipient domain of `entry` that maps to `key` (for route lookup and throttles).
    func representativeDomain(_ entry: Entry, _ key: String) -> String {
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
    private func windowState(_ window: SendWindow, _ now: Date) -> (open: Bool, until: Date) {
        if let s = windowStates[window], now < s.until, now >= s.from { return (s.open, s.until) }
        let closes = window.openUntil(at: now)
        let s = (open: closes != nil, from: now, until: closes ?? window.nextOpening(atOrAfter: now))
        if windowStates.count >= 10_000 { windowStates.removeAll() }
        windowStates[window] = s
        return (s.open, s.until)
    }

    /// The limiter bucket of a send policy's rate, when it has one. An unparsable rate
    /// paces nothing (the expander validates rates before they reach an envelope).
    static func pacing(_ policy: SendPolicy) -> (String, Rate)? {
        guard let key = policy.rateKey, let text = policy.rate, let rate = Rate(text) else { return nil }
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

    /// Starts every delivery that may start now; returns when to look again.
    @discardableResult
    private func dispatch() -> Date? {
        let now = Date()
        var wakeAt: Date?
        func later(_ d: Date) { wakeAt = min(wakeAt ?? d, d) }
        guard !stopping else { return nil }
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
            unfinished += 1
            if let (siteKey, _) = siteConnectionLimit(for: domain) { activeBySite[siteKey, default: 0] += 1 }
            start(id, domain: domain, envelope: entry.envelope)
        }
        return wakeAt
    }

    /// Moves paced messages whose rate bucket has a slot now into their destination
    /// queues, oldest first; a message whose window closed meanwhile waits for the next
    /// opening without taking a slot.
    private func releasePaced(_ now: Date, _ later: (Date) -> Void) {
        for key in Array(paced.keys) {
            guard var bucket = paced[key] else { continue }
            while let id = bucket.todo.peek() {
                guard var entry = entries[id], entry.paced else {
                    _ = bucket.todo.pop()   // forgotten, or a stale duplicate of a re-scheduled id
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

    private func start(_ id: QueueID, domain: String, envelope: Envelope) {
        let now = Date()
        let indices = envelope.recipients.indices.filter { i in
            let r = envelope.recipients[i]
            return (r.state == .pending || r.state == .deferred) && destination(of: r.address) == domain
                && (r.nextAttempt.map { $0 <= now } ?? true)
        }
        let spool = self.spool
        let deliverer = self.deliverer
        let recipientDomain = indices.first.map { Self.domain(of: envelope.recipients[$0].address) } ?? domain
        // Detached: reading the message and the attempt itself run off the actor.
        Task.detached {
            let began = Date()
            var result: AttemptResult
            do {
                let message = try spool.loadMessage(id, in: .queue, envelope: envelope)
                let tx = OutboundTransaction(
                    sender: envelope.sender,
                    recipients: indices.map {
                        OutboundTransaction.Recipient(address: envelope.recipients[$0].address,
                                                      notify: envelope.recipients[$0].notify,
                                                      orcpt: envelope.recipients[$0].orcpt)
                    },
                    message: message, declared8BitMIME: envelope.body == "8BITMIME", smtputf8: envelope.smtputf8,
                    dsnRet: envelope.dsnRet, dsnEnvid: envelope.dsnEnvid)
                result = indices.isEmpty ? AttemptResult(outcomes: [], tls: false)
                                         : await deliverer.attempt(domain: recipientDomain, tx: tx)
            } catch {
                // The message vanished (held/deleted meanwhile) or is unreadable.
                await self.abandon(id, domain: domain, error: error)
                return
            }
            await self.completed(id, domain: domain, indices: indices, result: result, began: began)
        }
    }

    // MARK: - Completion

    private func release(_ domain: String) {
        inFlight -= 1
        if var q = queues[domain] {
            q.active -= 1
            queues[domain] = q
        }
        if let (siteKey, _) = siteConnectionLimit(for: domain) { activeBySite[siteKey, default: 1] -= 1 }
    }

    private func abandon(_ id: QueueID, domain: String, error: any Error) {
        release(domain)
        unfinished -= 1
        if var e = entries[id] {
            e.busy.remove(domain)
            entries[id] = e
            if spool.locate(id) != .queue && e.busy.isEmpty && !e.writing {
                entries[id] = nil
                waiting[id] = nil
            } else if spool.locate(id) == .queue {
                logger.error("cannot read message", metadata: ["id": "\(id)", "error": "\(error)"])
            }
        }
        dispatch()
        wakeUp()
    }

    private func completed(_ id: QueueID, domain: String, indices: [Int], result: AttemptResult, began: Date) async {
        release(domain)
        defer { unfinished -= 1 }
        let now = Date()
        if let site = result.mxSite { siteOf[domain] = site }
        if var q = queues[domain] {
            if result.throttled {
                q.throttled(until: now.addingTimeInterval(seconds(config.throttleBackoff)),
                            reason: result.outcomes.first?.reply.description ?? "")
                logger.warning("destination throttled", metadata: ["domain": "\(domain)", "window": "\(q.window)"])
            } else if result.outcomes.contains(where: { if case .delivered = $0 { return true } else { return false } }) {
                q.succeeded()
            } else if result.mxHost == nil && !result.outcomes.isEmpty
                        && result.outcomes.allSatisfy({ if case .deferred = $0 { return true } else { return false } }) {
                q.unreachable(until: now.addingTimeInterval(min(60, config.retry.minimal)),
                              reason: result.outcomes[0].reply.description)
            }
            queues[domain] = q
        }
        guard var entry = entries[id] else {
            dispatch()
            return
        }
        entry.busy.remove(domain)
        var failed: [BounceBuilder.FailedRecipient] = []
        for (k, i) in indices.enumerated() where k < result.outcomes.count {
            var r = entry.envelope.recipients[i]
            let outcome = result.outcomes[k]
            let firstAttempt = r.attempts == 0, wasDeferred = r.state == .deferred
            r.attempts += 1
            r.lastReply = outcome.reply.description
            var logResult: String
            switch outcome {
            case .delivered:
                r.state = .delivered
                r.nextAttempt = nil
                logResult = "delivered"
            case .failed(let reply):
                r.state = .failed
                r.nextAttempt = nil
                logResult = "failed"
                failed.append(.init(address: r.address, orcpt: r.orcpt,
                                    status: reply.enhanced?.description ?? "5.0.0", remoteMTA: result.mxHost,
                                    diagnostic: reply.description, lastAttempt: now))
            case .deferred(let reply):
                if now.timeIntervalSince(entry.envelope.arrival) >= config.retry.maxLifetime {
                    r.state = .failed
                    r.nextAttempt = nil
                    logResult = "expired"
                    failed.append(.init(address: r.address, orcpt: r.orcpt, status: "4.4.7", remoteMTA: result.mxHost,
                                        diagnostic: "message expired after \(Int(config.retry.maxLifetime))s; last reply: \(reply)",
                                        lastAttempt: now))
                } else {
                    r.state = .deferred
                    r.nextAttempt = now.addingTimeInterval(config.retry.delay(afterAttempt: r.attempts))
                    logResult = "deferred"
                }
            }
            entry.envelope.recipients[i] = r
            log.write(.init(time: now, queueId: id.rawValue, recipient: r.address, domain: Self.domain(of: r.address),
                            mxHost: result.mxHost, ip: result.ip, tls: result.tls, result: logResult,
                            code: outcome.reply.code, enhanced: outcome.reply.enhanced?.description,
                            reply: outcome.reply.lines.joined(separator: " "), attempt: r.attempts,
                            nextAttempt: r.nextAttempt, tenant: entry.envelope.tenant,
                            campaign: entry.envelope.campaign,
                            durationMs: Int(now.timeIntervalSince(began) * 1000)))
            if let onOutcome, let kind = DeliveryOutcomeEvent.Result(rawValue: logResult) {
                onOutcome(DeliveryOutcomeEvent(
                    time: now, queueID: id.rawValue, recipient: r.address, tenant: entry.envelope.tenant,
                    campaign: entry.envelope.campaign, result: kind, code: outcome.reply.code,
                    enhanced: logResult == "expired" ? "4.4.7" : outcome.reply.enhanced?.description,
                    firstAttempt: firstAttempt, wasDeferred: wasDeferred,
                    isBounceMessage: entry.envelope.sender.isEmpty && entry.envelope.origin.listener == "bounce",
                    reply: outcome.reply.description))
            }
        }
        entries[id] = entry
        if !failed.isEmpty { await bounce(id, entry.envelope, failed) }
        await persist(id)
        dispatch()
        wakeUp()
    }

    /// Queues a DSN for failed recipients to the envelope sender (never for `<>`), and
    /// only for recipients whose NOTIFY asks for failures.
    private func bounce(_ id: QueueID, _ envelope: Envelope, _ failed: [BounceBuilder.FailedRecipient]) async {
        guard !envelope.sender.isEmpty else {
            logger.info("no bounce for a null sender", metadata: ["id": "\(id)"])
            return
        }
        let wanted = failed.filter { f in
            BounceBuilder.wants(.failed, notify: envelope.recipients.first { $0.address == f.address }?.notify)
        }
        guard !wanted.isEmpty else { return }
        do {
            let message = try spool.loadMessage(id, in: .queue, envelope: envelope)
            let now = Date()
            let bounceID = Self.bounceID(for: id, recipients: wanted.map(\.address))
            let bytes = bounces.build(kind: .failed, original: envelope, message: message, recipients: wanted,
                                      id: bounceID.rawValue, now: now)
            let env = Envelope(id: bounceID, arrival: now, sender: "",
                               origin: EnvelopeOrigin(listener: "bounce", clientAddress: "127.0.0.1",
                                                      authenticatedUser: nil, helo: nil, tls: false),
                               recipients: [EnvelopeRecipient(address: envelope.sender)],
                               body: "8BITMIME", smtputf8: envelope.sender.utf8.contains { $0 >= 0x80 },
                               tenant: envelope.tenant, campaign: envelope.campaign)
            let stored: Envelope
            do {
                stored = try await spool.store(message: bytes, envelope: env)
            } catch let error as SpoolError where error.isAlreadyExists {
                // A replay after a crash between this DSN's commit and the envelope
                // update: the DSN is already queued; do not send a second one.
                logger.info("DSN already queued", metadata: ["id": "\(id)", "dsn": "\(bounceID)"])
                return
            }
            log.write(.init(time: now, queueId: id.rawValue, recipient: wanted.map(\.address).joined(separator: ","),
                            domain: "", mxHost: nil, ip: nil, tls: false, result: "bounced", code: nil,
                            enhanced: nil, reply: "DSN \(bounceID) to <\(envelope.sender)>", attempt: 0,
                            nextAttempt: nil, tenant: envelope.tenant, campaign: envelope.campaign, durationMs: nil))
            enqueue(stored)
        } catch {
            logger.error("cannot queue bounce", metadata: ["id": "\(id)", "error": "\(error)"])
        }
    }

    /// The DSN's queue id is derived from the original's id and the failed recipients,
    /// so that replaying the same failure after a crash finds the DSN already queued.
    /// It keeps the original's time prefix (ids stay sortable by arrival).
    static func bounceID(for id: QueueID, recipients: [String]) -> QueueID {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array(id.rawValue.utf8) + Array(recipients.sorted().joined(separator: "\n").utf8) + [0x44] {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        var suffix = ""
        for _ in 0..<7 {
            suffix.append(alphabet[Int(hash & 31)])
            hash >>= 5
        }
        let prefix = id.rawValue.prefix(QueueID.timeLength)
        return QueueID(String(prefix) + suffix) ?? QueueID.generate()
    }

    /// Writes the envelope (or removes the message when every recipient is final).
    /// Writes for one message never overlap; the last state always reaches the disk.
    private func persist(_ id: QueueID) async {
        guard var entry = entries[id] else { return }
        if entry.writing {
            entry.dirty = true
            entries[id] = entry
            return
        }
        entry.writing = true
        entries[id] = entry
        while true {
            guard var e = entries[id] else { return }
            e.dirty = false
            entries[id] = e
            let envelope = e.envelope
            let done = envelope.recipients.allSatisfy { $0.state == .delivered || $0.state == .failed }
            let spool = self.spool
            // On a committer thread: envelope writes fsync and must not block the pool.
            let removed: Bool = (try? await spool.offload { spool in
                if done {
                    // Delivered or bounced: see Spool.remove(durable:) for why no fsync.
                    try spool.remove(id, from: .queue, durable: false)
                    return true
                }
                try spool.update(envelope, in: .queue)
                return false
            }) ?? false   // held or deleted meanwhile: the postmaster's action wins
            guard var after = entries[id] else { return }
            if removed || (done && after.busy.isEmpty) {
                entries[id] = nil
                waiting[id] = nil
                return
            }
            if !after.dirty {
                after.writing = false
                after.stamp = envelopeStamp(id)   // our own write is not a postmaster's change
                entries[id] = after
                schedule(id, now: Date())
                return
            }
        }
    }

    // MARK: - Run loop

    /// Scans the spool, then dispatches until shutdown: on every commit and completion,
    /// and on a timer for retries, paused destinations and rate-limit slots.
    public func run() async {
        scan()
        while !Task.isCancelled && !stopping {
            let now = Date()
            if let due = nextDue, now >= due {
                for (id, at) in waiting where at <= now { schedule(id, now: now) }
                nextDue = waiting.values.min()
            }
            if now.timeIntervalSince(lastRescan) >= seconds(config.rescanInterval) {
                scan()
                lastRescan = now
                await deliverer.pool.sweep()
            }
            if now.timeIntervalSince(lastStateWrite) >= 2 {
                writeState(now)
                lastStateWrite = now
            }
            let next = [dispatch(), nextDue].compactMap { $0 }.min()
            let wait = min(max((next ?? now.addingTimeInterval(1)).timeIntervalSince(Date()), 0.002), 1)
            await sleep(wait)
        }
    }

    private var sleeper: Task<Void, Never>?

    /// Sleeps up to `seconds`; `wakeUp()` ends it early (and cancels its timer).
    private func sleep(_ seconds: Double) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            wake = c
            sleeper = Task {
                try? await Task.sleep(for: .milliseconds(max(1, Int(seconds * 1000))))
                if !Task.isCancelled { self.wakeUp() }
            }
        }
    }

    private func wakeUp() {
        if let c = wake {
            wake = nil
            sleeper?.cancel()
            sleeper = nil
            c.resume()
        }
    }

    /// Stops dispatching; `run()` returns soon after.
    public func requestStop() {
        stopping = true
        wakeUp()
    }

    /// Stops dispatching and waits (up to `grace`) for attempts in flight and their
    /// outcomes on disk, then closes pooled connections.
    public func shutdown(grace: TimeAmount) async {
        stopping = true
        wakeUp()
        let deadline = Date().addingTimeInterval(seconds(grace))
        while (inFlight > 0 || unfinished > 0) && Date() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        await deliverer.pool.closeAll()
    }

    /// Destination state for `herald queue stats` (which reads the spool for counts and
    /// this file for what only the daemon knows): `<log dir>/queue-state.json`.
    public struct DestinationState: Codable, Sendable {
        public var domain: String
        public var queued: Int
        public var active: Int
        public var window: Double
        public var limit: Int
        public var pausedUntil: Date?
        public var reason: String?
    }

    public struct State: Codable, Sendable {
        public var time: Date
        public var pid: Int32
        public var messages: Int
        public var inFlight: Int
        public var destinations: [DestinationState]
    }

    private func writeState(_ now: Date) {
        guard let logPath = config.logPath else { return }
        let path = (logPath as NSString).deletingLastPathComponent + "/queue-state.json"
        let state = State(time: now, pid: getpid(), messages: entries.count, inFlight: inFlight,
                          destinations: queues.values.map {
                              DestinationState(domain: $0.domain, queued: $0.count, active: $0.active, window: $0.window,
                                               limit: $0.limit, pausedUntil: $0.pausedUntil, reason: $0.pauseReason)
                          }.sorted { $0.domain < $1.domain })
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(state) else { return }
        let tmp = path + ".tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) {
            _ = rename(tmp, path)
        }
    }

    // MARK: - Introspection (tests, stats)

    public struct Snapshot: Sendable {
        public var messages: Int
        public var inFlight: Int
        public var destinations: [String: (queued: Int, active: Int, window: Double, paused: String?)]
        /// Messages waiting for a slot of their send-policy rate, by bucket key.
        public var paced: [String: Int]
    }

    public func snapshot() -> Snapshot {
        Snapshot(messages: entries.count, inFlight: inFlight,
                 destinations: queues.mapValues { ($0.count, $0.active, $0.window, $0.pauseReason) },
                 paced: paced.mapValues { $0.todo.count })
    }

    /// When a message's next attempt is due, if it waits for one (a retry, a send window).
    public func waitingUntil(_ id: QueueID) -> Date? { waiting[id] }
}

func seconds(_ t: TimeAmount) -> Double { Double(t.nanoseconds) / 1e9 }
