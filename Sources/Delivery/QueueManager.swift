import DKIM
import DNS
import Foundation
import Logging
import NIOCore
import SMTPClient
import SMTPCore
import Spool

/// Herald's queue manager: the I/O around ``DeliveryScheduler``. The spool is the
/// truth; the scheduler's index is a cache of it, rebuilt by a scan at start-up, fed by
/// `enqueue` after each commit, and refreshed by a periodic rescan that picks up what
/// `herald queue …` changed (released, deleted, retried messages). This actor reads the
/// clock, loads and writes spool files, runs the attempts the scheduler hands out,
/// writes the delivery log, queues DSNs and sleeps until the scheduler's next time.
public actor QueueManager {
    let spool: Spool
    let config: DeliveryConfiguration
    let deliverer: Deliverer
    let log: DeliveryLog
    let bounces: BounceBuilder
    /// Signs the DSNs Herald writes (From MAILER-DAEMON@<helo name>) when that domain, or
    /// a parent, has a DKIM key.
    let signer: DKIMSigner
    let logger: Logger
    /// Called for every recipient outcome (``DeliveryOutcomeEvent``); must not block.
    let onOutcome: DeliveryOutcomeHandler?
    var scheduler: DeliveryScheduler
    /// Attempts whose outcome is not yet on disk (shutdown waits for these).
    private var unfinished = 0
    private var stopping = false
    private var lastRescan = Date()
    private var sweepShard = 0
    private var wake: CheckedContinuation<Void, Never>?
    private var lastStateWrite = Date.distantPast
    /// ``loadIndex()`` ran: `run()` does not scan again at start.
    private var indexLoaded = false
    /// Messages in `hold/` put there by the postmaster (`herald queue hold`), found at
    /// start-up or seen leaving `queue/` for `hold/`: their waiting recipients were
    /// reported `held`. Each scan looks for them again: back in `queue/` is `released`,
    /// gone from both is `deleted`. A cancelled campaign's are removed like its queued mail.
    var postmasterHeld: [QueueID: Envelope] = [:]
    var holdLoaded = false

    public init(spool: Spool, config: DeliveryConfiguration, resolver: any MXResolver, group: any EventLoopGroup,
                logger: Logger, signer: DKIMSigner = DKIMSigner(keys: []),
                onOutcome: DeliveryOutcomeHandler? = nil, localAgent: (any LocalDeliveryAgent)? = nil) {
        self.spool = spool
        self.signer = signer
        self.onOutcome = onOutcome
        self.config = config
        self.logger = logger
        self.scheduler = DeliveryScheduler(config: config)
        self.deliverer = Deliverer(config: config, resolver: resolver, group: group, logger: logger, local: localAgent)
        self.log = DeliveryLog(path: config.logPath, maxBytes: config.logMaxBytes)
        self.bounces = BounceBuilder(hostname: config.heloName)
        // What this node last learnt about paused campaigns holds their mail from the start.
        do {
            scheduler.setHeldCampaigns(try spool.heldCampaigns(), now: Date())
        } catch {
            logger.error("cannot read the held campaigns", metadata: ["path": "\(spool.heldCampaignsPath)", "error": "\(error)"])
        }
    }

    // MARK: - Input

    /// A message was just committed: index it and start what can start.
    public func enqueue(_ envelope: Envelope) {
        guard !stopping, scheduler.add(envelope, now: Date()) else { return }
        dispatch()
    }

    /// What start-up recovery decoded, used by the first scan instead of reading each
    /// envelope again; emptied by it.
    private var recovered = RecoveredQueue(limit: 0)

    /// The queue as `Spool.recover(queued:)` found it, in a form that fits in memory
    /// at a million messages: the first `limit` envelopes (oldest first, as recovery
    /// hands them) whole, the rest as parking records.
    public struct RecoveredQueue: Sendable {
        let limit: Int
        var whole: [QueueID: (envelope: Envelope, stamp: Int64)] = [:]
        var rest: [QueueID: (campaign: String?, size: Int, stamp: Int64)] = [:]
        /// Every id added, in the order recovery handed them (queue id order): the
        /// first scan's listing of queue/.
        var order: [QueueID] = []
        /// Messages recovery may still hand on with ``QueueManager/addRecovered(_:)``
        /// (the parked table is sized for them at once).
        public var later = 0

        public init(limit: Int) { self.limit = limit }

        /// Messages added.
        public var count: Int { order.count }

        /// Makes room for `count` messages at once (recovery says how many it found).
        public mutating func reserve(_ count: Int) {
            order.reserveCapacity(count)
            whole.reserveCapacity(min(count, limit))
            rest.reserveCapacity(max(count - limit, 0))
        }

        public mutating func add(_ envelope: Envelope, stamp: Int64) {
            order.append(envelope.id)
            if whole.count < limit {
                whole[envelope.id] = (envelope, stamp)
            } else {
                rest[envelope.id] = (envelope.campaign, envelope.size, stamp)
            }
        }
    }

    /// Hands over what `Spool.recover(queued:)` read, before `loadIndex()`/`run()`.
    /// `recovering`: recovery goes on checking the rest of the queue beside delivery and
    /// hands it over with ``addRecovered(_:)``, then calls ``recoveryFinished()``.
    public func adoptRecovered(_ queue: RecoveredQueue, recovering: Bool = false) {
        recovered = queue
        recoveredListing = true
        self.recovering = recovering
    }

    /// Recovery is still checking part of `queue/` (newer messages than those it handed
    /// over first). No rescan runs meanwhile: it would read, and index, messages that
    /// recovery has not checked and may be setting aside.
    private var recovering = false

    /// Messages recovery checked after delivery started (queue id order): indexed like
    /// the first scan's, parked beyond the active limit. False once stopping (recovery
    /// then stops too: the next start checks the rest).
    public func addRecovered(_ batch: [(envelope: Envelope, stamp: Int64)]) -> Bool {
        guard !stopping else { return false }
        if !indexLoaded { firstScan() }   // the oldest first
        let now = Date()
        for (envelope, stamp) in batch { scheduler.add(envelope, stamp: stamp, now: now) }
        if !batch.isEmpty { wakeUp() }
        return true
    }

    /// Recovery has checked all of `queue/`: rescans resume.
    public func recoveryFinished() {
        recovering = false
        #if os(Linux)
        _ = glibcMallocTrim(0)   // as after the first scan
        #endif
        logger.info("queue indexed after recovery", metadata: [
            "messages": "\(scheduler.entries.count + scheduler.parked.count)",
            "parked": "\(scheduler.parked.count)",
        ])
    }

    /// Whether the first scan takes queue/'s listing from recovery (made by this process
    /// just before, with nothing delivered since) instead of listing it again: at a
    /// million messages, a second listing and the sets made from it cost seconds before
    /// the first delivery. Anything a postmaster changes in between is found by the next
    /// rescan, as it would be had it happened after the first scan.
    private var recoveredListing = false

    /// Loads the index from `queue/` before `run()` (which then starts from it), so that
    /// decisions about queued mail (campaign control) can be made before any delivery.
    public func loadIndex() {
        if !indexLoaded { firstScan() }
    }

    /// The start-up scan, and what it found.
    private func firstScan() {
        scan()
        indexLoaded = true
        #if os(Linux)
        // Recovery and this scan made and freed a few small allocations per queued
        // message; hand the freed pages back rather than keep them as resident memory.
        _ = glibcMallocTrim(0)
        #endif
        logger.info("queue indexed", metadata: [
            "messages": "\(scheduler.entries.count + scheduler.parked.count)",
            "parked": "\(scheduler.parked.count)", "active_limit": "\(config.activeLimit)",
        ])
    }

    /// Loads everything in `queue/` (start-up, rescans).
    func scan() {
        let now = Date()
        let fromRecovery = !indexLoaded && recoveredListing
        let ids = fromRecovery ? recovered.order : ((try? spool.enumerate(.queue)) ?? [])
        if fromRecovery { scheduler.reserveParked(recovered.rest.count + recovered.later) }
        for id in ids {
            if let p = scheduler.parked[id] {
                // Parked: only a retry's change behind our back (`herald queue retry`)
                // matters; ready and held ones are read afresh when their turn comes.
                if p.place == .retry { scheduler.parkedChanged(id, stamp: envelopeStamp(id)) }
                continue
            }
            if let known = scheduler.entries[id] {
                // Pick up envelope changes made by `herald queue retry` while idle: only
                // files whose modification time moved are read again (a stat, not a decode,
                // per message and rescan).
                guard scheduler.isIdle(id) else { continue }
                let stamp = envelopeStamp(id)
                if known.stamp == 0 {
                    scheduler.setStamp(id, stamp)
                } else if stamp != known.stamp, let disk = try? spool.loadEnvelope(id, in: .queue) {
                    scheduler.replace(disk, stamp: stamp, now: now)
                }
                continue
            }
            if let known = recovered.whole.removeValue(forKey: id) {
                scheduler.add(known.envelope, stamp: known.stamp, now: now)
                continue
            }
            if let known = recovered.rest.removeValue(forKey: id) {
                scheduler.park(id, campaign: known.campaign, size: known.size, stamp: known.stamp)
                continue
            }
            do {
                let env = try spool.loadEnvelope(id, in: .queue)
                scheduler.add(env, stamp: envelopeStamp(id), now: now)
            } catch {
                logger.error("cannot load envelope", metadata: ["id": "\(id)", "error": "\(error)"])
            }
        }
        recovered = RecoveredQueue(limit: 0)   // what recovery read and is gone from queue/ since: not indexed
        if fromRecovery {
            // Nothing indexed can have left queue/ yet (the only other entries are
            // messages committed since recovery), and no hold was known to follow.
            if !holdLoaded { loadHold(now: now) }
            return
        }
        // Gone from queue/ (held or deleted by the postmaster) and idle: forget. A
        // deletion is the final outcome of the recipients still waiting; a hold is not.
        let queued = Set(ids)
        if !holdLoaded { loadHold(now: now) }
        for envelope in scheduler.forgetIdle(notIn: queued) {
            switch spool.locate(envelope.id) {
            case nil:
                report(envelope, as: .deleted, reason: "deleted from the queue by the postmaster", now: now)
            case .hold:
                postmasterHeld[envelope.id] = envelope
                report(envelope, as: .held, reason: "held by the postmaster", now: now)
            case .queue, .corrupt:
                break   // back already (the next scan indexes it), or set aside by recovery
            }
        }
        for id in scheduler.forgetParked(notIn: queued) { gone(id, now: now) }
        followHold(queued: queued, now: now)
    }

    /// The postmaster's holds found at start-up (made while Herald was stopped, or
    /// before): reported `held` again, which changes nothing where it was known.
    func loadHold(now: Date) {
        holdLoaded = true
        guard let ids = try? spool.enumerate(.hold) else { return }
        for id in ids where postmasterHeld[id] == nil {
            guard let envelope = try? spool.loadEnvelope(id, in: .hold) else { continue }
            postmasterHeld[id] = envelope
            report(envelope, as: .held, reason: "held by the postmaster", now: now)
        }
    }

    /// A message that left `queue/` while parked (its envelope not in memory): held by
    /// the postmaster (read from `hold/` and reported like an indexed one), or deleted
    /// (logged with the message's id only: its recipients went with its envelope).
    private func gone(_ id: QueueID, now: Date) {
        switch spool.locate(id) {
        case .hold:
            guard postmasterHeld[id] == nil, let envelope = try? spool.loadEnvelope(id, in: .hold) else { return }
            postmasterHeld[id] = envelope
            report(envelope, as: .held, reason: "held by the postmaster", now: now)
        case nil:
            log.write(.init(time: now, queueId: id.rawValue, recipient: "", domain: "", mxHost: nil, ip: nil,
                            tls: false, result: DeliveryOutcomeEvent.Result.deleted.rawValue, code: nil, enhanced: nil,
                            reply: "deleted from the queue by the postmaster while parked", attempt: 0,
                            nextAttempt: nil, tenant: nil, campaign: nil, durationMs: nil))
        case .queue, .corrupt:
            break
        }
    }

    /// Held messages that left `hold/`: released into `queue/` (indexed by this scan)
    /// or deleted.
    private func followHold(queued: Set<QueueID>, now: Date) {
        guard !postmasterHeld.isEmpty, let holding = try? spool.enumerate(.hold) else { return }
        let stillHeld = Set(holding)
        for (id, envelope) in postmasterHeld where !stillHeld.contains(id) {
            postmasterHeld[id] = nil
            if queued.contains(id) {
                report(envelope, as: .released, reason: "released by the postmaster", now: now)
            } else if spool.locate(id) == nil {
                report(envelope, as: .deleted, reason: "deleted from hold by the postmaster", now: now)
            }
        }
    }

    /// Logs and reports `result` for every recipient of `envelope` still waiting
    /// (pending or deferred) when the message left the queue (or came back) without an
    /// attempt.
    func report(_ envelope: Envelope, as result: DeliveryOutcomeEvent.Result, reason: String, now: Date) {
        for r in envelope.recipients where r.state == .pending || r.state == .deferred {
            log.write(.init(time: now, queueId: envelope.id.rawValue, recipient: r.address,
                            domain: DeliveryScheduler.domain(of: r.address), mxHost: nil, ip: nil, tls: false,
                            result: result.rawValue, code: nil, enhanced: nil, reply: reason, attempt: r.attempts,
                            nextAttempt: nil, tenant: envelope.tenant, campaign: envelope.campaign, durationMs: nil))
            onOutcome?(DeliveryOutcomeEvent(
                time: now, queueID: envelope.id.rawValue, recipient: r.address, tenant: envelope.tenant,
                campaign: envelope.campaign, result: result, firstAttempt: r.attempts == 0,
                wasDeferred: r.state == .deferred,
                isBounceMessage: envelope.sender.isEmpty && envelope.origin.listener == "bounce", reply: reason,
                attempt: r.attempts))
        }
    }

    // MARK: - Campaign control

    /// The campaign tags of the messages this node has queued or holds, for the
    /// campaign control loop to look up.
    public func campaignTags() -> Set<String> {
        Set(scheduler.byCampaign.keys).union(scheduler.heldCampaigns).union(scheduler.parkedCampaigns)
            .union(postmasterHeld.values.compactMap(\.campaign))
    }

    /// What ``controlCampaigns(held:cancelled:)`` did.
    public struct CampaignControlReport: Sendable, Equatable {
        /// Messages removed because their campaign is cancelled.
        public var removed = 0
        /// Messages of cancelled campaigns with an attempt in flight: removed by a later call.
        public var busy = 0
        public init() {}
    }

    /// Applies campaign decisions to this node's spool: `held` becomes the set of
    /// campaigns whose mail waits (written to the spool first, so a restart keeps it),
    /// and the messages of each campaign in `cancelled` are deleted (queued, or held by
    /// the postmaster), their waiting recipients reported as `cancelled`.
    public func controlCampaigns(held: Set<String>, cancelled: Set<String>) async throws -> CampaignControlReport {
        if held != scheduler.heldCampaigns {
            try await spool.offload { spool in try spool.setHeldCampaigns(held) }
            let previous = scheduler.heldCampaigns
            scheduler.setHeldCampaigns(held, now: Date())
            logger.notice("held campaigns changed", metadata: [
                "held": "\(held.sorted())", "released": "\(previous.subtracting(held).sorted())",
            ])
        }
        var report = CampaignControlReport()
        for tag in cancelled.sorted() {
            let queued = scheduler.removeCampaign(tag)
            let parked = scheduler.removeParked(campaign: tag)
            let held = postmasterHeld.values.filter { $0.campaign == tag }
            for envelope in held { postmasterHeld[envelope.id] = nil }
            report.busy += scheduler.byCampaign[tag]?.count ?? 0
            guard !(queued.isEmpty && parked.isEmpty && held.isEmpty) else { continue }
            let places = queued.map { ($0.id, SpoolQueue.queue) } + held.map { ($0.id, SpoolQueue.hold) }
                + parked.map { ($0, SpoolQueue.queue) }
            // Parked messages are read for their recipients (the report) as they go.
            let unparked: [Envelope] = try await spool.offload { spool in
                var envelopes: [Envelope] = []
                for (id, place) in places {
                    if parked.contains(id), let envelope = try? spool.loadEnvelope(id, in: place) {
                        envelopes.append(envelope)
                    }
                    do {
                        // Not durable one by one: a crash re-reads the rest and the next
                        // control pass removes them again.
                        try spool.remove(id, from: place, durable: false)
                    } catch let error as SpoolError where error.isNotFound {
                        continue   // moved or deleted by the postmaster meanwhile
                    }
                }
                return envelopes
            }
            let removed = queued + held + unparked
            let now = Date()
            for envelope in removed {
                self.report(envelope, as: .cancelled, reason: "campaign \(tag) cancelled", now: now)
            }
            report.removed += removed.count
            logger.notice("cancelled campaign's messages removed", metadata: ["campaign": "\(tag)", "count": "\(removed.count)"])
        }
        dispatch()
        wakeUp()
        return report
    }

    /// Applies the database tenants' delivery limits (by envelope tenant tag: the
    /// tenant's id); called at start-up and whenever they change.
    public func setTenantLimits(_ limits: [String: TenantDeliveryLimits]) {
        guard limits != scheduler.tenants else { return }
        scheduler.setTenants(limits, now: Date())
        logger.info("tenant delivery limits", metadata: ["tenants": "\(limits.count)"])
        dispatch()
        wakeUp()
    }

    /// The `.env` file's modification time in nanoseconds (0 when it cannot be read).
    private func envelopeStamp(_ id: QueueID) -> Int64 { spool.envelopeStamp(id, in: .queue) }

    // MARK: - Dispatch

    /// Starts every delivery that may start now; returns when to look again.
    @discardableResult
    func dispatch() -> Date? {
        guard !stopping else { return nil }
        refill(now: Date())
        let (attempts, wakeAt) = scheduler.dispatch(now: Date())
        for attempt in attempts {
            unfinished += 1
            start(attempt)
        }
        return wakeAt
    }

    /// Reads parked messages in as room allows (at most 512 per call, so that one call
    /// never holds the actor long): due retries first, then the oldest ready ones.
    private func refill(now: Date) {
        for id in scheduler.takeLoadable(now: now, max: 512) {
            let stamp = envelopeStamp(id)   // before the read: a later change shows
            do {
                scheduler.load(try spool.loadEnvelope(id, in: .queue), stamp: stamp, now: now)
            } catch {
                if spool.locate(id) == .queue {
                    // Unreadable for now (an I/O error, a broken file): looked at again by
                    // the next rescan, as a message that is not indexed.
                    logger.error("cannot load envelope", metadata: ["id": "\(id)", "error": "\(error)"])
                } else {
                    gone(id, now: now)
                }
            }
        }
    }

    private func start(_ attempt: DeliveryScheduler.Attempt) {
        let spool = self.spool
        let deliverer = self.deliverer
        // Detached: reading the message and the attempt itself run off the actor.
        Task.detached {
            let began = Date()
            let envelope = attempt.envelope
            var result: AttemptResult
            do {
                let message = try spool.loadMessage(attempt.id, in: .queue, envelope: envelope)
                let tx = OutboundTransaction(
                    sender: envelope.sender,
                    recipients: attempt.indices.map {
                        OutboundTransaction.Recipient(address: envelope.recipients[$0].address,
                                                      notify: envelope.recipients[$0].notify,
                                                      orcpt: envelope.recipients[$0].orcpt)
                    },
                    message: message, declared8BitMIME: envelope.body == "8BITMIME", smtputf8: envelope.smtputf8,
                    dsnRet: envelope.dsnRet, dsnEnvid: envelope.dsnEnvid)
                result = attempt.indices.isEmpty ? AttemptResult(outcomes: [], tls: false)
                                                 : await deliverer.attempt(domain: attempt.recipientDomain, tx: tx,
                                                                           id: attempt.id)
            } catch {
                // The message vanished (held/deleted meanwhile) or is unreadable.
                await self.abandon(attempt, error: error)
                return
            }
            await self.completed(attempt, result: result, began: began)
        }
    }

    // MARK: - Completion

    private func abandon(_ attempt: DeliveryScheduler.Attempt, error: any Error) {
        unfinished -= 1
        let inQueue = spool.locate(attempt.id) == .queue
        let now = Date()
        let retryAt = now.addingTimeInterval(scheduler.config.retry.minimal)
        scheduler.abandoned(attempt, inQueue: inQueue, retryAt: retryAt, now: now)
        if inQueue {
            logger.error("cannot read message, trying again later",
                         metadata: ["id": "\(attempt.id)", "error": "\(error)",
                                    "retry_in": "\(Int(scheduler.config.retry.minimal))s"])
        }
        dispatch()
        wakeUp()
    }

    private func completed(_ attempt: DeliveryScheduler.Attempt, result: AttemptResult, began: Date) async {
        defer { unfinished -= 1 }
        let completion = scheduler.completed(attempt, result: result, began: began, now: Date())
        if result.throttled, let window = scheduler.queues[attempt.destination]?.window {
            logger.warning("destination throttled", metadata: ["domain": "\(attempt.destination)", "window": "\(window)"])
        }
        guard let completion else {
            dispatch()
            return
        }
        for entry in completion.log {
            log.write(entry)
            DeliveryMetrics.recordLatency(entry, arrival: completion.envelope.arrival)
        }
        if let onOutcome {
            for event in completion.events { onOutcome(event) }
        }
        if !completion.failed.isEmpty { await bounce(attempt.id, completion.envelope, completion.failed) }
        await persist(attempt.id)
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
            let bytes = try signer.sign(bounces.build(kind: .failed, original: envelope, message: message,
                                                      recipients: wanted, id: bounceID.rawValue, now: now), now: now)
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
        guard scheduler.beginWrite(id) else { return }
        while let (envelope, done) = scheduler.nextWrite(id) {
            let spool = self.spool
            if done && envelope.campaign == nil && spool.isPendingInJournal(id) {
                // Only in the journal: its removal is a D frame (no flush, no file), done
                // here rather than with two thread switches to a committer and back.
                let removed = (try? spool.remove(id, from: .queue, durable: false)) != nil
                guard scheduler.wrote(id, removed: removed, done: done, stamp: { envelopeStamp(id) }, now: Date()) else {
                    return
                }
                continue
            }
            // On a committer thread: envelope writes fsync and must not block the pool.
            let removed: Bool = (try? await spool.offload { spool in
                if done {
                    // A campaign message is marked finished first: its chunk, if expanded
                    // again after a crash, must not send it twice (Spool.markFinished).
                    if envelope.campaign != nil { try spool.markFinished(id) }
                    // Delivered or bounced: see Spool.remove(durable:) for why no fsync.
                    try spool.remove(id, from: .queue, durable: false)
                    return true
                }
                try spool.update(envelope, in: .queue)
                return false
            }) ?? false   // held or deleted meanwhile: the postmaster's action wins
            guard scheduler.wrote(id, removed: removed, done: done, stamp: { envelopeStamp(id) }, now: Date()) else {
                return
            }
        }
    }

    // MARK: - Run loop

    /// Scans the spool, then dispatches until shutdown: on every commit and completion,
    /// and on a timer for retries, paused destinations and rate-limit slots.
    public func run() async {
        if !indexLoaded { firstScan() }
        while !Task.isCancelled && !stopping {
            let now = Date()
            scheduler.releaseDue(now: now)
            if !recovering && now.timeIntervalSince(lastRescan) >= seconds(config.rescanInterval) {
                scan()
                lastRescan = now
                // One shard of finished campaign marks per rescan: all of them every
                // 256 rescans (about two hours at the default 30 s).
                spool.sweepFinished(shard: sweepShard, now: now)
                sweepShard = (sweepShard + 1) % 256
                await deliverer.pool.sweep()
            }
            if now.timeIntervalSince(lastStateWrite) >= 2 {
                writeState(now)
                lastStateWrite = now
            }
            let next = [dispatch(), scheduler.nextDue, scheduler.nextParkedDue()].compactMap { $0 }.min()
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

    func wakeUp() {
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
        while (scheduler.inFlight > 0 || unfinished > 0) && Date() < deadline {
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
        /// Tenants (by tag) with messages waiting for a slot of their rate, and the rate
        /// (nil in a file from an older Herald).
        public var pacedTenants: [String: String]?
    }

    private func writeState(_ now: Date) {
        guard let logPath = config.logPath else { return }
        let path = (logPath as NSString).deletingLastPathComponent + "/queue-state.json"
        let state = State(time: now, pid: getpid(), messages: scheduler.entries.count + scheduler.parked.count,
                          inFlight: scheduler.inFlight,
                          destinations: scheduler.queues.values.map {
                              DestinationState(domain: $0.domain, queued: $0.count, active: $0.active, window: $0.window,
                                               limit: $0.limit, pausedUntil: $0.pausedUntil, reason: $0.pauseReason)
                          }.sorted { $0.domain < $1.domain },
                          pacedTenants: Dictionary(uniqueKeysWithValues: scheduler.paced.compactMap { key, bucket in
                              key.hasPrefix("tenant:") ? (String(key.dropFirst("tenant:".count)), bucket.rate.text) : nil
                          }))
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
        /// Messages known: indexed with their envelopes, plus parked.
        public var messages: Int
        /// Of those, parked (their envelopes on disk only: beyond the active limit).
        public var parked: Int
        public var inFlight: Int
        public var destinations: [String: (queued: Int, active: Int, window: Double, paused: String?)]
        /// Messages waiting for a pacing slot, by bucket key (`policy:…` a send-policy rate,
        /// `tenant:…` a tenant's rate).
        public var paced: [String: Int]
        /// Indexed messages per campaign tag, and the tags held now.
        public var campaigns: [String: Int]
        public var heldCampaigns: Set<String>
    }

    public func snapshot() -> Snapshot {
        Snapshot(messages: scheduler.entries.count + scheduler.parked.count, parked: scheduler.parked.count,
                 inFlight: scheduler.inFlight,
                 destinations: scheduler.queues.mapValues { ($0.count, $0.active, $0.window, $0.pauseReason) },
                 paced: scheduler.paced.mapValues { $0.todo.count },
                 campaigns: scheduler.byCampaign.mapValues(\.count).merging(scheduler.parkedPerCampaign, uniquingKeysWith: +),
                 heldCampaigns: scheduler.heldCampaigns)
    }

    /// When a message's next attempt is due, if it waits for one (a retry, a send window).
    public func waitingUntil(_ id: QueueID) -> Date? {
        if let p = scheduler.parked[id] { return p.place == .retry ? Date(timeIntervalSince1970: p.due) : nil }
        return scheduler.waiting[id]
    }

    // MARK: - Metrics

    /// What `/metrics` shows of this node's queue, from the index (no file is read).
    public struct MetricsSnapshot: Sendable {
        /// Messages and their `.msg` octets.
        public struct Census: Sendable, Equatable {
            public var messages = 0
            public var bytes = 0
            mutating func add(_ envelope: Envelope) { add(size: envelope.size) }
            mutating func add(size: Int) {
                messages += 1
                bytes += size
            }
        }
        /// One destination queue (a domain, or a route's smart host).
        public struct Destination: Sendable, Equatable {
            public var name: String
            /// Messages with a recipient waiting for it (pending or deferred, not held).
            public var messages: Int
            /// Attempts in flight to it.
            public var active: Int
            /// Its concurrency window (slow start, halved on throttle replies); nil
            /// until it has been scheduled once.
            public var window: Double?
        }
        /// Messages in `queue/` whose recipients wait for a first attempt or are in flight.
        public var queued = Census()
        /// Messages in `queue/` with a recipient deferred (waiting for a retry).
        public var deferred = Census()
        /// Messages held: by the postmaster (`hold/`) or because their campaign is paused.
        public var held = Census()
        /// The destinations with the most messages waiting, most first.
        public var destinations: [Destination] = []
        /// Destinations with mail waiting, all of them (``destinations`` is the top of these).
        public var destinationCount = 0
        public var inFlight = 0
        public var pool = SMTPConnectionPool.Statistics(idle: 0, opened: 0, reused: 0)
    }

    /// The queue by state (each message in one: held, else deferred, else queued) and
    /// the `top` destinations by messages waiting. Costs one pass over the index.
    public func metricsSnapshot(topDestinations top: Int) async -> MetricsSnapshot {
        var s = MetricsSnapshot()
        var waiting: [String: Int] = [:]
        for entry in scheduler.entries.values {
            let envelope = entry.envelope
            if scheduler.isHeld(envelope) {
                s.held.add(envelope)
                continue
            }
            var deferred = false
            var destinations = Set<String>()
            for r in envelope.recipients where r.state == .pending || r.state == .deferred {
                if r.state == .deferred { deferred = true }
                destinations.insert(scheduler.destination(of: r.address))
            }
            if deferred { s.deferred.add(envelope) } else { s.queued.add(envelope) }
            for d in destinations { waiting[d, default: 0] += 1 }
        }
        for envelope in postmasterHeld.values { s.held.add(envelope) }
        // Parked messages count by their records; their destinations are not known
        // without their envelopes, so the destination figures cover the indexed ones.
        for p in scheduler.parked.values {
            switch p.place {
            case .held: s.held.add(size: Int(p.size))
            case .retry: s.deferred.add(size: Int(p.size))
            case .ready: s.queued.add(size: Int(p.size))
            }
        }
        for (name, q) in scheduler.queues where q.active > 0 && waiting[name] == nil { waiting[name] = 0 }
        s.destinationCount = waiting.count
        s.destinations = waiting.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(max(0, top)).map { name, n in
            let q = scheduler.queues[name]
            return MetricsSnapshot.Destination(name: name, messages: n, active: q?.active ?? 0, window: q?.window)
        }
        s.inFlight = scheduler.inFlight
        s.pool = await deliverer.pool.statistics
        return s
    }
}

#if os(Linux)
/// glibc's `malloc_trim(3)` (not exported by the Glibc module).
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32
#endif

func seconds(_ t: TimeAmount) -> Double { Double(t.nanoseconds) / 1e9 }
