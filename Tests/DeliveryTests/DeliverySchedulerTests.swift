import Foundation
import SMTPClient
import SMTPCore
import Spool
import Testing

@testable import Delivery

/// The queue manager's decisions with a hand-driven clock: no sockets, no sleeps.
@Suite struct DeliverySchedulerTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func envelope(_ recipients: [String], arrival: Date = t0, tenant: String? = nil, campaign: String? = nil,
                         sendPolicy: SendPolicy? = nil) -> Envelope {
        Envelope(id: .generate(now: arrival), arrival: arrival, sender: "s@sender.test",
                 origin: EnvelopeOrigin(listener: "127.0.0.1:2525", clientAddress: "127.0.0.1:1", authenticatedUser: nil,
                                        helo: "c.test", tls: false),
                 recipients: recipients.map { EnvelopeRecipient(address: $0) }, tenant: tenant, campaign: campaign,
                 sendPolicy: sendPolicy)
    }

    static func config(_ change: (inout DeliveryConfiguration) -> Void = { _ in }) -> DeliveryConfiguration {
        var c = DeliveryConfiguration(heloName: "herald.test", initialWindow: 2)
        c.retry = RetrySchedule(minimal: 300, maximal: 4000, maxLifetime: 86400, jitter: 0)
        change(&c)
        return c
    }

    static let ok = SMTPReply(250, EnhancedStatusCode(2, 0, 0), "ok")
    static let later = SMTPReply(451, EnhancedStatusCode(4, 3, 0), "try later")
    static let busy = SMTPReply(421, EnhancedStatusCode(4, 7, 0), "too many connections, slow down")
    static let gone = SMTPReply(550, EnhancedStatusCode(5, 1, 1), "no such user")

    static func result(_ outcomes: [RecipientOutcome], host: String? = "mx.example.test",
                       throttled: Bool = false) -> AttemptResult {
        var r = AttemptResult(outcomes: outcomes, mxHost: host, ip: host == nil ? nil : "127.0.0.1", tls: false)
        r.throttled = throttled
        return r
    }

    @Test("a new message starts at once; the attempt names its recipients for that destination")
    func startsAtOnce() {
        var s = DeliveryScheduler(config: Self.config())
        let env = Self.envelope(["a@one.test", "b@two.test", "c@one.test"])
        s.add(env, now: Self.t0)
        let (attempts, _) = s.dispatch(now: Self.t0)
        #expect(attempts.count == 2)
        let one = attempts.first { $0.destination == "one.test" }
        #expect(one?.indices == [0, 2])
        #expect(attempts.first { $0.destination == "two.test" }?.indices == [1])
        #expect(s.inFlight == 2)
        // Nothing more to start until something finishes.
        let r1 = s.dispatch(now: Self.t0)
        #expect(r1.attempts.isEmpty)
    }

    @Test("slow start: a destination starts with the initial window and grows by one per success")
    func slowStart() {
        var s = DeliveryScheduler(config: Self.config { $0.connectionsPerDestination = 3 })
        for _ in 0..<6 { s.add(Self.envelope(["r@slow.test"]), now: Self.t0) }
        var running = s.dispatch(now: Self.t0).attempts
        #expect(running.count == 2, "initial window 2")
        let first = running.removeFirst()
        let r2 = s.completed(first, result: Self.result([.delivered(Self.ok)]), began: Self.t0, now: Self.t0)
        #expect(r2 != nil)
        #expect(s.queues["slow.test"]?.window == 3)
        let more = s.dispatch(now: Self.t0).attempts
        #expect(more.count == 2, "window 3 with one still running")
        running += more
        let next = running.removeFirst()
        _ = s.completed(next, result: Self.result([.delivered(Self.ok)]), began: Self.t0, now: Self.t0)
        #expect(s.queues["slow.test"]?.window == 3, "capped at connections_per_destination")
    }

    @Test("a throttle reply halves the window and pauses the destination until the back-off ends")
    func throttleBackOff() {
        var s = DeliveryScheduler(config: Self.config {
            $0.initialWindow = 8
            $0.throttleBackoff = .seconds(60)
        })
        for _ in 0..<4 { s.add(Self.envelope(["r@busy.test"]), now: Self.t0) }
        var running = s.dispatch(now: Self.t0).attempts
        #expect(running.count == 4)
        let throttled = running.removeFirst()
        let done = s.completed(throttled, result: Self.result([.deferred(Self.busy)], throttled: true),
                               began: Self.t0, now: Self.t0)
        #expect(s.queues["busy.test"]?.window == 4)
        #expect(s.queues["busy.test"]?.pauseReason?.hasPrefix("throttled") == true)
        #expect(done?.envelope.recipients[0].state == .deferred)
        // Another message for the destination waits out the pause; its wake-up is the pause's end.
        s.add(Self.envelope(["x@busy.test"]), now: Self.t0)
        let paused = s.dispatch(now: Self.t0.addingTimeInterval(30))
        #expect(paused.attempts.isEmpty)
        #expect(paused.wakeAt == Self.t0.addingTimeInterval(60))
        let r3 = s.dispatch(now: Self.t0.addingTimeInterval(60))
        #expect(r3.attempts.count == 1)
    }

    @Test("a deferred recipient is retried at its next attempt, not before; then it is delivered")
    func retries() {
        var s = DeliveryScheduler(config: Self.config())
        let env = Self.envelope(["r@later.test"])
        s.add(env, now: Self.t0)
        let first = s.dispatch(now: Self.t0).attempts[0]
        let deferred = s.completed(first, result: Self.result([.deferred(Self.later)]), began: Self.t0, now: Self.t0)
        let recipient = deferred?.envelope.recipients[0]
        #expect(recipient?.state == .deferred)
        #expect(recipient?.attempts == 1)
        #expect(recipient?.nextAttempt == Self.t0.addingTimeInterval(300))
        #expect(deferred?.events.map(\.result) == [.deferred])
        #expect(deferred?.log.first?.result == "deferred")
        // The envelope write finishes; the message waits for its retry.
        let r4 = s.beginWrite(env.id)
        #expect(r4)
        let r5 = s.nextWrite(env.id)
        #expect(r5?.done == false)
        let r6 = s.wrote(env.id, removed: false, done: false, stamp: { 1 }, now: Self.t0)
        #expect(!r6)
        #expect(s.waiting[env.id] == Self.t0.addingTimeInterval(300))
        s.releaseDue(now: Self.t0.addingTimeInterval(299))
        let r7 = s.dispatch(now: Self.t0.addingTimeInterval(299))
        #expect(r7.attempts.isEmpty)
        s.releaseDue(now: Self.t0.addingTimeInterval(300))
        let second = s.dispatch(now: Self.t0.addingTimeInterval(300)).attempts
        #expect(second.count == 1)
        let delivered = s.completed(second[0], result: Self.result([.delivered(Self.ok)]), began: Self.t0,
                                    now: Self.t0.addingTimeInterval(301))
        #expect(delivered?.envelope.recipients[0].state == .delivered)
        #expect(delivered?.events.first?.wasDeferred == true)
        let r8 = s.beginWrite(env.id)
        #expect(r8)
        let r9 = s.nextWrite(env.id)
        #expect(r9?.done == true)
        let r10 = s.wrote(env.id, removed: true, done: true, stamp: { 2 }, now: Self.t0)
        #expect(!r10)
        #expect(s.entries[env.id] == nil, "a finished message leaves the index")
    }

    @Test("a 5xx fails the recipient for a DSN; past the lifetime a deferral expires with 4.4.7")
    func failuresAndExpiry() {
        var s = DeliveryScheduler(config: Self.config())
        let env = Self.envelope(["gone@x.test", "slow@x.test"])
        s.add(env, now: Self.t0)
        let attempt = s.dispatch(now: Self.t0).attempts[0]
        let late = Self.t0.addingTimeInterval(86_400)
        let done = s.completed(attempt, result: Self.result([.failed(Self.gone), .deferred(Self.later)]),
                               began: Self.t0, now: late)
        #expect(done?.envelope.recipients.map(\.state) == [.failed, .failed])
        #expect(done?.events.map(\.result) == [.failed, .expired])
        #expect(done?.events.last?.enhanced == "4.4.7")
        #expect(done?.failed.map(\.status) == ["5.1.1", "4.4.7"])
    }

    @Test("max_attempts: the deferral on the last allowed attempt fails with a DSN; a route's own limit wins")
    func maxAttempts() {
        var s = DeliveryScheduler(config: Self.config {
            $0.retry.maxAttempts = 3
            $0.routes = [Route(pattern: DomainPattern("strict.test")!, host: nil, port: 25, tls: .off, maxAttempts: 1)]
        })
        let env = Self.envelope(["a@x.test"])
        let strict = Self.envelope(["b@strict.test"])
        s.add(env, now: Self.t0)
        s.add(strict, now: Self.t0)
        var now = Self.t0
        var results: [DeliveryOutcomeEvent.Result] = []
        for _ in 0..<4 {
            s.releaseDue(now: now)
            for attempt in s.dispatch(now: now).attempts {
                let done = s.completed(attempt, result: Self.result([.deferred(Self.later)]), began: now, now: now)
                // The envelope write the queue manager does after each attempt.
                if s.beginWrite(attempt.id), let next = s.nextWrite(attempt.id) {
                    _ = s.wrote(attempt.id, removed: next.done, done: next.done, stamp: { 1 }, now: now)
                }
                for e in done?.events ?? [] {
                    results.append(e.result)
                    if e.result == .expired {
                        #expect(done?.failed.first?.status == "4.4.7")
                        let attempts = e.recipient == "b@strict.test" ? 1 : 3
                        let diagnostic = done?.failed.first?.diagnostic ?? ""
                        #expect(diagnostic.hasPrefix("gave up after \(attempts) attempt(s); last reply: 451"), "\(diagnostic)")
                    }
                }
            }
            now = now.addingTimeInterval(5000)
        }
        // strict.test: expired on its first attempt; x.test: deferred twice, expired on the third.
        #expect(results == [.expired, .deferred, .deferred, .expired] || results == [.deferred, .expired, .deferred, .expired],
                "\(results)")
        #expect(results.count(where: { $0 == .expired }) == 2 && results.count == 4, "\(results)")
    }

    @Test("a message's own max_attempts (a campaign's): the lowest of it and the configured limit applies")
    func maxAttemptsOfTheMessage() {
        var s = DeliveryScheduler(config: Self.config { $0.retry.maxAttempts = 3 })
        var tight = Self.envelope(["a@x.test"])
        tight.sendPolicy = SendPolicy(maxAttempts: 2)
        var loose = Self.envelope(["b@y.test"])
        loose.sendPolicy = SendPolicy(maxAttempts: 10)
        s.add(tight, now: Self.t0)
        s.add(loose, now: Self.t0)
        var now = Self.t0
        var expiredAt: [String: Int] = [:]
        for round in 1...4 {
            s.releaseDue(now: now)
            for attempt in s.dispatch(now: now).attempts {
                let done = s.completed(attempt, result: Self.result([.deferred(Self.later)]), began: now, now: now)
                if s.beginWrite(attempt.id), let next = s.nextWrite(attempt.id) {
                    _ = s.wrote(attempt.id, removed: next.done, done: next.done, stamp: { 1 }, now: now)
                }
                for e in done?.events ?? [] where e.result == .expired { expiredAt[e.recipient] = round }
            }
            now = now.addingTimeInterval(5000)
        }
        #expect(expiredAt == ["a@x.test": 2, "b@y.test": 3], "\(expiredAt)")
    }

    @Test("a destination with no reachable host pauses without shrinking its window")
    func unreachable() {
        var s = DeliveryScheduler(config: Self.config())
        s.add(Self.envelope(["r@dead.test"]), now: Self.t0)
        s.add(Self.envelope(["q@dead.test"]), now: Self.t0)
        let attempts = s.dispatch(now: Self.t0).attempts
        _ = s.completed(attempts[0], result: Self.result([.deferred(Self.later)], host: nil), began: Self.t0, now: Self.t0)
        #expect(s.queues["dead.test"]?.window == 2)
        #expect(s.queues["dead.test"]?.pausedUntil == Self.t0.addingTimeInterval(60))
    }

    @Test("a domain rate holds the next message at the head of its queue until its slot")
    func domainRate() throws {
        let rate = try #require(Rate("2/s"))
        var s = DeliveryScheduler(config: Self.config {
            $0.throttles = [ThrottleRule(target: .domain(DomainPattern("rated.test")!), rate: rate, connections: nil)]
        })
        for _ in 0..<3 { s.add(Self.envelope(["r@rated.test"]), now: Self.t0) }
        let first = s.dispatch(now: Self.t0)
        #expect(first.attempts.count == 1)
        #expect(first.wakeAt == Self.t0.addingTimeInterval(0.5))
        let r11 = s.dispatch(now: Self.t0.addingTimeInterval(0.4))
        #expect(r11.attempts.isEmpty)
        let r12 = s.dispatch(now: Self.t0.addingTimeInterval(0.5))
        #expect(r12.attempts.count == 1)
    }

    @Test("round-robin: a slow destination does not hold back another")
    func fairness() {
        var s = DeliveryScheduler(config: Self.config { $0.initialWindow = 1 })
        for _ in 0..<5 { s.add(Self.envelope(["r@big.test"]), now: Self.t0) }
        s.add(Self.envelope(["r@small.test"]), now: Self.t0)
        let started = s.dispatch(now: Self.t0).attempts.map(\.destination)
        #expect(Set(started) == ["big.test", "small.test"])
    }

    @Test("a campaign's send rate releases one message per slot over all its domains")
    func campaignPacing() {
        let policy = SendPolicy(rate: Rate("1/s"), rateKey: "campaign:7")
        var s = DeliveryScheduler(config: Self.config { $0.initialWindow = 10 })
        for domain in ["a.test", "b.test", "c.test"] {
            s.add(Self.envelope(["r@\(domain)"], sendPolicy: policy), now: Self.t0)
        }
        let first = s.dispatch(now: Self.t0)
        #expect(first.attempts.count == 1)
        #expect(s.paced["policy:campaign:7"]?.todo.count == 2)
        #expect(first.wakeAt == Self.t0.addingTimeInterval(1))
        let r13 = s.dispatch(now: Self.t0.addingTimeInterval(0.9))
        #expect(r13.attempts.isEmpty)
        let r14 = s.dispatch(now: Self.t0.addingTimeInterval(1))
        #expect(r14.attempts.count == 1)
        let r15 = s.dispatch(now: Self.t0.addingTimeInterval(2))
        #expect(r15.attempts.count == 1)
        #expect(s.paced.isEmpty)
    }

    @Test("outside its send window a message waits for the opening, with no attempt")
    func sendWindow() throws {
        // 2026-01-15 (a Thursday) at midnight UTC; the window opens at 09:00 Paris = 08:00 UTC.
        let window = try SendWindow(start: "09:00", end: "18:00", timeZone: "Europe/Paris")
        let night = Date(timeIntervalSince1970: 1_768_435_200)  // 2026-01-15T00:00:00Z
        var s = DeliveryScheduler(config: Self.config())
        let env = Self.envelope(["r@window.test"], arrival: night, sendPolicy: SendPolicy(window: window))
        s.add(env, now: night)
        let r16 = s.dispatch(now: night)
        #expect(r16.attempts.isEmpty)
        let opening = night.addingTimeInterval(8 * 3600)
        #expect(s.waiting[env.id] == opening)
        s.releaseDue(now: opening.addingTimeInterval(-60))
        let r17 = s.dispatch(now: opening.addingTimeInterval(-60))
        #expect(r17.attempts.isEmpty)
        s.releaseDue(now: opening)
        let r18 = s.dispatch(now: opening)
        #expect(r18.attempts.count == 1)
    }

    @Test("a held campaign's mail is not attempted, wherever it waits; release resumes its pace in arrival order")
    func heldCampaign() throws {
        let policy = SendPolicy(rate: Rate("1/s"), rateKey: "campaign:7")
        var s = DeliveryScheduler(config: Self.config { $0.initialWindow = 10 })
        // Campaign 7: paced, one message per second. Campaign 8: unpaced, one queued for a.test.
        var seven: [Envelope] = []
        for n in 0..<4 {
            let e = Self.envelope(["r\(n)@a.test"], arrival: Self.t0.addingTimeInterval(Double(n)), campaign: "7",
                                  sendPolicy: policy)
            seven.append(e)
            s.add(e, now: Self.t0)
        }
        let first = s.dispatch(now: Self.t0).attempts
        #expect(first.map(\.id) == [seven[0].id], "one slot at t0")
        #expect(s.paced["policy:campaign:7"]?.todo.count == 3)

        // Held: the three waiting in the paced queue leave it without taking slots, even
        // long after their slots would have come; other mail goes on.
        s.setHeldCampaigns(["7"], now: Self.t0)
        let other = Self.envelope(["x@a.test"], campaign: "8")
        s.add(other, now: Self.t0)
        let meanwhile = s.dispatch(now: Self.t0.addingTimeInterval(30)).attempts
        #expect(meanwhile.map(\.id) == [other.id])
        #expect(s.paced["policy:campaign:7"] == nil)
        // A held message arriving now (a chunk committed after the pause) is not queued either.
        let late = Self.envelope(["r9@b.test"], arrival: Self.t0.addingTimeInterval(9), campaign: "7")
        s.add(late, now: Self.t0.addingTimeInterval(30))
        let r1 = s.dispatch(now: Self.t0.addingTimeInterval(31)).attempts
        #expect(r1.isEmpty)
        #expect(s.byCampaign["7"]?.count == 5)

        // Released at t+60: the paced ones come back one per second, oldest first.
        s.setHeldCampaigns([], now: Self.t0.addingTimeInterval(60))
        var order: [QueueID] = []
        for second in 60..<64 {
            order += s.dispatch(now: Self.t0.addingTimeInterval(Double(second))).attempts.filter { $0.envelope.campaign == "7" }
                .map(\.id)
        }
        #expect(order.contains(late.id), "the unpaced late one goes at once")
        #expect(order.filter { $0 != late.id } == [seven[1].id, seven[2].id, seven[3].id])
    }

    @Test("a message queued for its destination when its campaign is held leaves the queue without an attempt")
    func heldWhileQueued() {
        var s = DeliveryScheduler(config: Self.config { $0.initialWindow = 1 })
        let blocker = Self.envelope(["a@one.test"])
        let held = Self.envelope(["b@one.test"], campaign: "7")
        s.add(blocker, now: Self.t0)
        s.add(held, now: Self.t0)
        let running = s.dispatch(now: Self.t0).attempts
        #expect(running.map(\.id) == [blocker.id], "window 1: the campaign's message waits in the queue")
        s.setHeldCampaigns(["7"], now: Self.t0)
        _ = s.completed(running[0], result: Self.result([.delivered(Self.ok)]), began: Self.t0, now: Self.t0)
        let r1 = s.dispatch(now: Self.t0).attempts
        #expect(r1.isEmpty)
        #expect(s.queues["one.test"]?.isEmpty ?? true)
        s.setHeldCampaigns([], now: Self.t0)
        let r2 = s.dispatch(now: Self.t0).attempts
        #expect(r2.map(\.id) == [held.id])
    }

    @Test("removing a cancelled campaign takes its idle messages; one in flight stays until it is idle")
    func removeCampaign() {
        var s = DeliveryScheduler(config: Self.config { $0.initialWindow = 1 })
        let a = Self.envelope(["a@one.test"], campaign: "7")
        let b = Self.envelope(["b@one.test"], arrival: Self.t0.addingTimeInterval(1), campaign: "7")
        let c = Self.envelope(["c@two.test"], campaign: "8")
        for e in [a, b, c] { s.add(e, now: Self.t0) }
        let running = s.dispatch(now: Self.t0).attempts
        #expect(Set(running.map(\.id)) == [a.id, c.id])
        let removed = s.removeCampaign("7")
        #expect(removed.map(\.id) == [b.id])
        #expect(s.entries[b.id] == nil && s.entries[a.id] != nil && s.entries[c.id] != nil)
        #expect(s.byCampaign["7"] == [a.id])
        let done = s.completed(running.first { $0.id == a.id }!, result: Self.result([.deferred(Self.later)]),
                               began: Self.t0, now: Self.t0)
        #expect(done != nil)
        // Idle again once its envelope write finished: the next removal takes it.
        let writing = s.beginWrite(a.id)
        #expect(writing)
        _ = s.nextWrite(a.id)
        _ = s.wrote(a.id, removed: false, done: false, stamp: { 1 }, now: Self.t0)
        let second = s.removeCampaign("7")
        #expect(second.map(\.id) == [a.id])
        #expect(s.byCampaign["7"] == nil)
    }
}
