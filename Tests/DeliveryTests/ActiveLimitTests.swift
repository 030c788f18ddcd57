import Foundation
import SMTPClient
import SMTPCore
import Spool
import Testing

@testable import Delivery

/// The active limit: beyond it messages are parked (no envelope in memory) and read in
/// as room frees up. The test plays the queue manager's part: it keeps the "disk" (the
/// envelopes by id) and hands back what `takeLoadable` asks for.
@Suite struct ActiveLimitTests {
    typealias T = DeliverySchedulerTests
    let t0 = DeliverySchedulerTests.t0

    /// Reads in what the scheduler hands out, from `disk`.
    func refill(_ s: inout DeliveryScheduler, _ disk: [QueueID: Envelope], now: Date, max: Int = 512) -> [QueueID] {
        let ids = s.takeLoadable(now: now, max: max)
        for id in ids { s.load(disk[id]!, stamp: 1, now: now) }
        return ids
    }

    /// Finishes an attempt as the queue manager does: outcome, envelope write, and the
    /// new state on "disk".
    func finish(_ s: inout DeliveryScheduler, _ disk: inout [QueueID: Envelope], _ attempt: DeliveryScheduler.Attempt,
                _ outcome: RecipientOutcome, now: Date) {
        let completion = s.completed(attempt, result: T.result([outcome]), began: now, now: now)!
        let began = s.beginWrite(attempt.id)
        #expect(began)
        let (envelope, done) = s.nextWrite(attempt.id)!
        if done { disk[attempt.id] = nil } else { disk[attempt.id] = completion.envelope }
        let again = s.wrote(attempt.id, removed: done, done: done, stamp: { 2 }, now: now)
        #expect(!again)
        #expect(envelope == completion.envelope)
    }

    @Test("beyond the limit messages are parked and read in oldest first as room frees up; later mail queues behind them")
    func parksBeyondTheLimit() {
        var s = DeliveryScheduler(config: T.config {
            $0.activeLimit = 3
            $0.initialWindow = 10
        })
        var disk: [QueueID: Envelope] = [:]
        var sent: [QueueID] = []
        let envelopes = (0..<8).map { T.envelope(["r\($0)@a.test"], arrival: t0.addingTimeInterval(Double($0))) }
        for e in envelopes {
            disk[e.id] = e
            let added = s.add(e, now: t0)
            #expect(added)
        }
        let twice = s.add(envelopes[5], now: t0)
        #expect(!twice, "a parked message is known")
        #expect(s.entries.count == 3)
        #expect(s.parked.count == 5)
        let none = s.takeLoadable(now: t0, max: 10)
        #expect(none.isEmpty, "no room while three are held")
        while true {
            _ = refill(&s, disk, now: t0)
            let attempts = s.dispatch(now: t0).attempts
            if attempts.isEmpty { break }
            #expect(s.entries.count <= 3)
            for a in attempts {
                sent.append(a.id)
                finish(&s, &disk, a, .delivered(T.ok), now: t0)
            }
            if sent.count == 3 {
                // Arriving now, with messages still parked: it waits behind them.
                let late = T.envelope(["late@a.test"], arrival: t0.addingTimeInterval(100))
                disk[late.id] = late
                s.add(late, now: t0)
                #expect(s.parked[late.id]?.place == .ready)
            }
        }
        #expect(sent.count == 9)
        #expect(Array(sent.prefix(8)) == envelopes.map(\.id), "arrival order")
        #expect(s.entries.isEmpty && s.parked.isEmpty && disk.isEmpty)
    }

    @Test("when crowded, a deferred message gives up its place until its retry is due, then is read in again")
    func deferredMessagesPark() {
        var s = DeliveryScheduler(config: T.config {
            $0.activeLimit = 2
            $0.initialWindow = 10
        })
        var disk: [QueueID: Envelope] = [:]
        let envelopes = (0..<4).map { T.envelope(["r\($0)@down.test"], arrival: t0.addingTimeInterval(Double($0))) }
        for e in envelopes {
            disk[e.id] = e
            s.add(e, now: t0)
        }
        // Every attempt defers: each message parks for its retry and the next is read in,
        // until all four have had their first attempt.
        var attempted: [QueueID] = []
        for _ in 0..<10 {
            _ = refill(&s, disk, now: t0)
            let attempts = s.dispatch(now: t0).attempts
            for a in attempts {
                attempted.append(a.id)
                finish(&s, &disk, a, .deferred(T.later), now: t0)
            }
        }
        #expect(attempted == envelopes.map(\.id))
        #expect(s.entries.isEmpty)
        #expect(s.parked.count == 4)
        #expect(s.parked.values.allSatisfy { $0.place == .retry && $0.due == t0.addingTimeInterval(300).timeIntervalSince1970 })
        let nextDue = s.nextParkedDue()
        #expect(nextDue == t0.addingTimeInterval(300))
        let early = s.takeLoadable(now: t0.addingTimeInterval(299), max: 10)
        #expect(early.isEmpty, "not before the retry")
        let due = t0.addingTimeInterval(300)
        let back = refill(&s, disk, now: due)
        #expect(back.count == 2, "as many as the limit allows")
        let retried = s.dispatch(now: due).attempts
        #expect(retried.count == 2)
        #expect(retried.allSatisfy { disk[$0.id]!.recipients[0].attempts == 1 }, "read back with its first attempt")
        for a in retried { finish(&s, &disk, a, .delivered(T.ok), now: due) }
        let rest = refill(&s, disk, now: due)
        #expect(rest.count == 2)
        for a in s.dispatch(now: due).attempts { finish(&s, &disk, a, .delivered(T.ok), now: due) }
        #expect(disk.isEmpty && s.entries.isEmpty && s.parked.isEmpty)
    }

    @Test("a paused campaign's mail parks when crowded, is released into the line, and cancel finds parked messages")
    func campaignsWhileParked() {
        var s = DeliveryScheduler(config: T.config {
            $0.activeLimit = 2
            $0.initialWindow = 10
        })
        var disk: [QueueID: Envelope] = [:]
        s.setHeldCampaigns(["7"], now: t0)
        let seven = (0..<3).map { T.envelope(["r\($0)@a.test"], arrival: t0.addingTimeInterval(Double($0)), campaign: "7") }
        let eight = (0..<3).map { T.envelope(["s\($0)@b.test"], arrival: t0.addingTimeInterval(Double(10 + $0)), campaign: "8") }
        for e in seven + eight {
            disk[e.id] = e
            s.add(e, now: t0)
        }
        // The first held one stays while the index has room, the second parks once it is crowded.
        _ = refill(&s, disk, now: t0)
        var sent: [QueueID] = []
        for _ in 0..<6 {
            _ = refill(&s, disk, now: t0)
            for a in s.dispatch(now: t0).attempts {
                sent.append(a.id)
                finish(&s, &disk, a, .delivered(T.ok), now: t0)
            }
        }
        #expect(sent == eight.map(\.id), "the other campaign's mail goes by the held one")
        #expect(s.parked.values.filter { $0.place == .held }.count + s.entries.count == 3)
        #expect(s.parkedCampaigns.contains("7"))

        // Cancel while parked: the scheduler hands the parked ids over, sorted.
        var cancelled = s.removeParked(campaign: "7")
        cancelled += s.removeCampaign("7").map(\.id)
        #expect(Set(cancelled) == Set(seven.map(\.id)))
        #expect(s.parked.isEmpty && s.entries.isEmpty)
        #expect(!s.parkedCampaigns.contains("7"))
    }

    @Test("releasing a campaign sends its parked mail, oldest first")
    func releaseParkedCampaign() {
        var s = DeliveryScheduler(config: T.config {
            $0.activeLimit = 1
            $0.initialWindow = 10
        })
        var disk: [QueueID: Envelope] = [:]
        s.setHeldCampaigns(["7"], now: t0)
        let blocker = T.envelope(["x@slow.test"], arrival: t0)
        disk[blocker.id] = blocker
        s.add(blocker, now: t0)
        let running = s.dispatch(now: t0).attempts
        #expect(running.map(\.id) == [blocker.id])
        let seven = (0..<3).map { T.envelope(["r\($0)@a.test"], arrival: t0.addingTimeInterval(Double(1 + $0)), campaign: "7") }
        for e in seven.reversed() {
            disk[e.id] = e
            s.add(e, now: t0)
        }
        #expect(s.parked.values.allSatisfy { $0.place == .held })
        s.setHeldCampaigns([], now: t0)
        #expect(s.parked.values.allSatisfy { $0.place == .ready })
        finish(&s, &disk, running[0], .delivered(T.ok), now: t0)
        var sent: [QueueID] = []
        for _ in 0..<5 {
            _ = refill(&s, disk, now: t0)
            for a in s.dispatch(now: t0).attempts {
                sent.append(a.id)
                finish(&s, &disk, a, .delivered(T.ok), now: t0)
            }
        }
        #expect(sent == seven.map(\.id))
    }

    @Test("a parked retry changed on disk (herald queue retry) is read in now; parked messages gone from queue/ are forgotten")
    func rescanOfParkedMessages() {
        var s = DeliveryScheduler(config: T.config {
            $0.activeLimit = 1
            $0.initialWindow = 10
        })
        var disk: [QueueID: Envelope] = [:]
        let a = T.envelope(["a@down.test"], arrival: t0), b = T.envelope(["b@down.test"], arrival: t0.addingTimeInterval(1))
        for e in [a, b] {
            disk[e.id] = e
            s.add(e, now: t0)
        }
        for _ in 0..<3 {
            _ = refill(&s, disk, now: t0)
            for attempt in s.dispatch(now: t0).attempts { finish(&s, &disk, attempt, .deferred(T.later), now: t0) }
        }
        #expect(s.parked[a.id]?.place == .retry && s.parked[b.id]?.place == .retry)
        s.parkedChanged(a.id, stamp: 2)
        #expect(s.parked[a.id]?.place == .retry, "the same stamp: our own write")
        s.parkedChanged(a.id, stamp: 99)
        #expect(s.parked[a.id]?.place == .ready)
        disk[a.id]!.recipients[0].nextAttempt = nil
        let readIn = refill(&s, disk, now: t0)
        #expect(readIn == [a.id], "read in before its old retry time")
        let attempts = s.dispatch(now: t0).attempts
        #expect(attempts.map(\.id) == [a.id])
        let forgotten = s.forgetParked(notIn: [a.id])
        #expect(forgotten == [b.id])
        #expect(s.parked.isEmpty)
    }

    @Test("the postmaster's hold or delete through the queue manager forgets a parked message's record")
    func postmasterForgetsParked() {
        var s = DeliveryScheduler(config: T.config { $0.activeLimit = 1 })
        let a = T.envelope(["a@one.test"]), b = T.envelope(["b@one.test"], arrival: t0.addingTimeInterval(1))
        s.add(a, now: t0)
        s.add(b, now: t0)
        #expect(s.parked[b.id] != nil)
        let forgotten = s.forgetIfIdle(b.id)
        #expect(forgotten == nil, "no envelope in memory")
        #expect(s.parked.isEmpty)
        let gone = s.forgetParked(notIn: [a.id])
        #expect(gone.isEmpty, "not reported a second time by the rescan")
    }
}
