import Foundation
import Spool

/// The postmaster's view of a running queue manager and the steering it allows (the
/// admin HTTP API, `/v1/admin/…`): the shape of each destination queue, the messages on
/// hold, and hold, release and delete of one message.
///
/// `herald queue hold|release|delete` act on the spool's files and the running daemon
/// learns of it at its next rescan; these act through the queue manager itself, so its
/// index, the campaign stats (the `held`, `released` and `deleted` outcomes) and the
/// spool change together, at once. A message with an attempt in flight (or its envelope
/// being written) is refused as busy rather than moved under the attempt's feet; the
/// caller tries again a moment later. The file operations run on the actor, without a
/// suspension between them and the index update, so a rescan cannot see the message in
/// neither or both places.
extension QueueManager {
    /// One destination queue as the postmaster sees it.
    public struct DestinationView: Sendable, Equatable {
        /// The queue's key: a recipient domain, or a route's `[host]:port (pattern)`.
        public var name: String
        /// Messages with a recipient waiting for it (pending or deferred; not held).
        public var messages = 0
        /// Recipients waiting for it, and how many of them were deferred at least once.
        public var recipients = 0
        public var deferred = 0
        /// The arrival of the oldest message waiting for it.
        public var oldest: Date?
        /// Attempts in flight, the concurrency window (slow start, halved on throttle
        /// replies) and its limit; nil until the queue was scheduled once.
        public var active = 0
        public var window: Double?
        public var limit: Int?
        /// The back-off of the whole destination, while it lasts, and why.
        public var backoffUntil: Date?
        public var backoffReason: String?
        /// The last reply a waiting recipient of this destination got (the recipient
        /// whose next attempt is furthest away, i.e. the one deferred most recently).
        public var lastReply: String?
    }

    /// The whole queue, for the postmaster.
    public struct PostmasterView: Sendable {
        public var time: Date
        /// Messages indexed in `queue/`, and attempts in flight.
        public var messages: Int
        public var inFlight: Int
        /// Messages the postmaster put on hold (`hold/`).
        public var held: Int
        /// Campaign tags whose mail waits because the campaign is paused, with the
        /// number of their messages in `queue/`.
        public var heldCampaigns: [String: Int]
        /// Destinations with mail waiting or attempts in flight, most messages first.
        public var destinations: [DestinationView]
    }

    /// Why a postmaster operation was refused.
    public struct PostmasterError: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            /// No message with this id in the place the operation applies to.
            case notFound
            /// An attempt is in flight, or its envelope is being written: try again.
            case busy
        }
        public var kind: Kind
        public var description: String
    }

    /// The queue's shape from the index (no message file is read). Parked messages
    /// (beyond the active limit) count in `messages` and in the held campaigns, not in
    /// the destinations, which are not known without their envelopes.
    public func postmasterView(now: Date = Date()) -> PostmasterView {
        var views: [String: DestinationView] = [:]
        var lastReplyAt: [String: Date] = [:]
        var heldCampaigns: [String: Int] = [:]
        let parkedPerCampaign = scheduler.parkedPerCampaign
        for tag in scheduler.heldCampaigns {
            heldCampaigns[tag] = (scheduler.byCampaign[tag]?.count ?? 0) + (parkedPerCampaign[tag] ?? 0)
        }
        for entry in scheduler.entries.values {
            let envelope = entry.envelope
            if scheduler.isHeld(envelope) { continue }
            var counted = Set<String>()
            for r in envelope.recipients where r.state == .pending || r.state == .deferred {
                let name = scheduler.destination(of: r.address)
                var v = views[name] ?? DestinationView(name: name)
                if counted.insert(name).inserted { v.messages += 1 }
                v.recipients += 1
                if r.state == .deferred { v.deferred += 1 }
                if v.oldest.map({ envelope.arrival < $0 }) ?? true { v.oldest = envelope.arrival }
                if let reply = r.lastReply, !reply.isEmpty {
                    let at = r.nextAttempt ?? .distantPast
                    if lastReplyAt[name].map({ at >= $0 }) ?? true {
                        lastReplyAt[name] = at
                        v.lastReply = reply
                    }
                }
                views[name] = v
            }
        }
        for (name, q) in scheduler.queues where views[name] != nil || q.active > 0 {
            var v = views[name] ?? DestinationView(name: name)
            v.active = q.active
            v.window = q.window
            v.limit = q.limit
            if let until = q.pausedUntil, until > now {
                v.backoffUntil = until
                v.backoffReason = q.pauseReason
            }
            views[name] = v
        }
        let destinations = views.values.sorted { ($0.messages, $1.name) > ($1.messages, $0.name) }
        return PostmasterView(time: now, messages: scheduler.entries.count + scheduler.parked.count,
                              inFlight: scheduler.inFlight,
                              held: postmasterHeld.count, heldCampaigns: heldCampaigns, destinations: destinations)
    }

    /// The messages on hold, oldest first, and how many there are in all.
    public func heldMessages(limit: Int) -> (messages: [Envelope], total: Int) {
        if !holdLoaded { loadHold(now: Date()) }
        let sorted = postmasterHeld.values.sorted { $0.id < $1.id }
        return (Array(sorted.prefix(max(0, limit))), sorted.count)
    }

    /// Moves a queued message to `hold/`; its waiting recipients are reported `held`.
    public func hold(_ id: QueueID) throws -> Envelope {
        guard spool.locate(id) == .queue else {
            throw PostmasterError(kind: .notFound, description: "message \(id) is not in the queue")
        }
        guard scheduler.isIdle(id) else {
            throw PostmasterError(kind: .busy, description: "message \(id) is being delivered; try again in a moment")
        }
        let envelope = try scheduler.entries[id]?.envelope ?? spool.loadEnvelope(id, in: .queue)
        try move(id, from: .queue, to: .hold)
        _ = scheduler.forgetIfIdle(id)
        postmasterHeld[id] = envelope
        report(envelope, as: .held, reason: "held by the postmaster", now: Date())
        logger.notice("message held by the postmaster", metadata: ["id": "\(id)"])
        return envelope
    }

    /// Moves a held message back to `queue/` and schedules it at once; its waiting
    /// recipients are reported `released`.
    public func release(_ id: QueueID) throws -> Envelope {
        guard spool.locate(id) == .hold else {
            throw PostmasterError(kind: .notFound, description: "message \(id) is not on hold")
        }
        try move(id, from: .hold, to: .queue)
        let envelope = try spool.loadEnvelope(id, in: .queue)
        let now = Date()
        // Held with `herald queue hold` and not yet seen by a rescan: still indexed, and
        // it never left as far as the stats know.
        if scheduler.entries[id] == nil {
            scheduler.add(envelope, stamp: spool.envelopeStamp(id, in: .queue), now: now)
            if postmasterHeld.removeValue(forKey: id) != nil {
                report(envelope, as: .released, reason: "released by the postmaster", now: now)
            }
        }
        postmasterHeld[id] = nil
        logger.notice("message released by the postmaster", metadata: ["id": "\(id)"])
        dispatch()
        wakeUp()
        return envelope
    }

    /// Deletes a message from `queue/` or `hold/` without a bounce; its waiting
    /// recipients are reported `deleted`.
    public func delete(_ id: QueueID) throws -> Envelope {
        guard let place = spool.locate(id), place == .queue || place == .hold else {
            throw PostmasterError(kind: .notFound, description: "message \(id) is not in the queue or on hold")
        }
        guard scheduler.isIdle(id) else {
            throw PostmasterError(kind: .busy, description: "message \(id) is being delivered; try again in a moment")
        }
        let envelope = try postmasterHeld[id] ?? scheduler.entries[id]?.envelope ?? spool.loadEnvelope(id, in: place)
        do {
            try spool.remove(id, from: place)
        } catch let error as SpoolError where error.isNotFound {
            throw PostmasterError(kind: .notFound, description: "message \(id) is not in the queue or on hold")
        }
        _ = scheduler.forgetIfIdle(id)
        postmasterHeld[id] = nil
        report(envelope, as: .deleted, reason: "deleted by the postmaster", now: Date())
        logger.notice("message deleted by the postmaster", metadata: ["id": "\(id)", "from": "\(place.rawValue)"])
        return envelope
    }

    /// `Spool.move`, with "gone meanwhile" (delivered, or moved by `herald queue …`) as
    /// ``PostmasterError/Kind/notFound``.
    private func move(_ id: QueueID, from: SpoolQueue, to: SpoolQueue) throws {
        do {
            try spool.move(id, from: from, to: to)
        } catch let error as SpoolError where error.isNotFound {
            throw PostmasterError(kind: .notFound, description: "message \(id) is no longer in \(from.rawValue)")
        }
    }
}
