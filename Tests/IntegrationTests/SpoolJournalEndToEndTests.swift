import Foundation
import HeraldTestSupport
import Testing

/// `[spool] journal = true` with the real binary: delivered mail never gets files,
/// deferred mail is written out and seen by `herald queue`, a segment's pending mail is
/// written out when it retires, and a graceful stop leaves no segment behind. (Kills
/// with the journal on: Durability, DeliveryCrash and scripts/crash-loop --spool-journal.)
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct SpoolJournalEndToEnd {
        static func segments(_ herald: HeraldProcess) -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: herald.spoolPath + "/journal")) ?? [])
                .filter { $0.hasSuffix(".jnl") }
        }

        @Test("delivered mail never gets files; deferred mail is written out and listed")
        func deliveredAndDeferred() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            var options = DeliveryIT.options(delivery: ["minimal_backoff = \"60s\"", "maximal_backoff = \"60s\""],
                                             toml: [DeliveryIT.route("*.test", port: sink.port)])
            options.spoolJournal = true
            try await HeraldProcess.with(options) { herald in
                let delivered = (0..<3).map { DeliveryIT.mail("journal-ok-\($0)", to: ["ok\($0)@fast.test"]) }
                let deferred = (0..<2).map { DeliveryIT.mail("journal-later-\($0)", to: ["tempfail@slow.test"]) }
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), delivered + deferred)
                #expect(ids.count == 5)
                #expect(await DeliveryIT.waitUntil(timeout: 15) {
                    DeliveryIT.logLines(herald, result: "delivered").count == 3
                        && DeliveryIT.logLines(herald, result: "deferred").count == 2
                }, "\(DeliveryIT.deliveryLog(herald))")
                #expect(sink.index().count == 3)
                // The deferral wrote the two out (with their attempt); the delivered three
                // had no file at any time, and none is left.
                #expect(await DeliveryIT.waitUntil(timeout: 5) { herald.spoolIDs().count == 2 })
                let list = try await herald.queueList()
                #expect(Set(list.map(\.id)) == Set(ids.suffix(2)))
                #expect(list.allSatisfy { $0.recipients.allSatisfy { $0.attempts == 1 && $0.state == "deferred" } })
                #expect(!(try await herald.queueList()).contains { ids.prefix(3).contains($0.id) })
                let stopped = await herald.stop(timeout: 30)
                #expect(stopped?.succeeded == true)
                #expect(Self.segments(herald).isEmpty, "a graceful stop retires every segment")
            }
        }

        @Test("mail left queued is written out when its segment retires, and at a graceful stop")
        func retireAndStop() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.spoolJournal = true
            try await HeraldProcess.with(options) { herald in
                let first = (0..<4).map { DeliveryIT.mail("journal-queued-\($0)", to: ["someone\($0)@later.test"]) }
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), first)
                #expect(ids.count == 4)
                // At once (before their segment retires): `herald queue` lists and shows
                // them from the journal; changing one waits until it is written out.
                #expect(Set(try await herald.queueList().map(\.id)) == Set(ids))
                let show = try await herald.cli(["queue", "show", ids[0]])
                #expect(show.termination.succeeded && String(decoding: show.stdout, as: UTF8.self).contains("journal-queued-0"),
                        "\(show)")
                // Changing one waits until the server wrote it out, then acts on its files.
                let hold = try await herald.cli(["queue", "hold", ids[1]])
                #expect(hold.termination.succeeded, "\(hold)")
                #expect(String(decoding: hold.stderr, as: UTF8.self).contains("waiting for it to write them out"), "\(hold)")
                #expect(herald.spoolIDs("hold") == [ids[1]])
                let release = try await herald.cli(["queue", "release", ids[1]])
                #expect(release.termination.succeeded, "\(release)")
                // Delivery is off: nothing removes them, so their segment retires (2 s + 3 s).
                #expect(await DeliveryIT.waitUntil(timeout: 20) { Set(herald.spoolIDs()) == Set(ids) },
                        "\(herald.spoolIDs())\n\(herald.diagnostics())")
                #expect(Set(try await herald.queueList().map(\.id)) == Set(ids))
                let second = (0..<3).map { DeliveryIT.mail("journal-late-\($0)", to: ["other\($0)@later.test"]) }
                let more = try await DeliveryIT.submitAccepted(port: herald.port(), second)
                let stopped = await herald.stop(timeout: 30)
                #expect(stopped?.succeeded == true)
                #expect(Set(herald.spoolIDs()) == Set(ids + more))
                #expect(Self.segments(herald).isEmpty)
                for id in ids + more {
                    #expect(herald.storedMessage(id)?.isEmpty == false)
                }
            }
        }
    
        @Test("a bulk hold right after the 250s takes the mail still in the journal; a dead server's journal makes the CLI give up, clearly")
        func bulkHoldAndDeadServer() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.spoolJournal = true
            try await HeraldProcess.with(options) { herald in
                let mails = (0..<6).map { DeliveryIT.mail("journal-bulk-\($0)", to: ["r\($0)@bulk-hold.test"]) }
                    + [DeliveryIT.mail("journal-other", to: ["r@elsewhere.test"])]
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                #expect(ids.count == 7)
                #expect(herald.spoolIDs().isEmpty, "accepted moments ago: only in the journal")
                let hold = try await herald.cli(["queue", "hold", "--domain", "bulk-hold.test"])
                #expect(hold.termination.succeeded, "\(hold)")
                #expect(String(decoding: hold.stdout, as: UTF8.self).contains("6 message(s) held"), "\(hold)")
                #expect(Set(herald.spoolIDs("hold")) == Set(ids.prefix(6)))
                #expect(!herald.spoolIDs("hold").contains(ids[6]))

                // A segment that has closed but not yet retired, beside the idle current
                // one (which holds no message and is never retired): the command waits for
                // the first only.
                let next = try await DeliveryIT.submitAccepted(port: herald.port(), [DeliveryIT.mail("journal-closed", to: ["c@closed.test"])])
                #expect(next.count == 1)
                let closed = await DeliveryIT.waitUntil(timeout: 10) {
                    Self.segments(herald).count >= 2 && !herald.spoolIDs().contains(next[0])
                }
                #expect(closed, "the segment of \(next[0]) closed (2 s) before it retired (3 s later): \(Self.segments(herald))")
                let holdClosed = try await herald.cli(["queue", "hold", next[0], "--journal-wait", "20"])
                #expect(holdClosed.termination.succeeded, "\(holdClosed)")
                #expect(herald.spoolIDs("hold").contains(next[0]))

                // Killed: its segments stay until the next start, so nothing writes the
                // new ones out and the CLI says why instead of waiting for ever.
                let late = try await DeliveryIT.submitAccepted(port: herald.port(), [DeliveryIT.mail("journal-dead", to: ["x@dead.test"])])
                #expect(late.count == 1)
                _ = await herald.kill()
                #expect(!Self.segments(herald).isEmpty)
                let stuck = try await herald.cli(["queue", "delete", late[0], "--journal-wait", "1"])
                #expect(stuck.termination.status == 1, "\(stuck)")
                #expect(String(decoding: stuck.stderr, as: UTF8.self).contains("still only in herald serve's journal after 1 s"), "\(stuck)")
                // The next start writes it out, and then it can be deleted.
                try await herald.restart()
                #expect(herald.spoolIDs().contains(late[0]))
                let delete = try await herald.cli(["queue", "delete", late[0]])
                #expect(delete.termination.succeeded, "\(delete)")
                #expect(!herald.spoolIDs().contains(late[0]))
            }
        }
    }
}
