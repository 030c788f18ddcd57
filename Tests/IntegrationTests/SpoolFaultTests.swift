import Foundation
import Glibc
import HeraldTestSupport
import Testing

/// The spool's file system turned read-only under a running Herald (as after an I/O
/// error, when ext4 remounts itself read-only): nothing more is acknowledged, nothing
/// already acknowledged is lost, the postmaster can still read the queue, and once the
/// file system is writable again Herald accepts and delivers everything.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct SpoolFaults {
        static let canMount: Bool = {
            guard getuid() == 0, let dir = try? TemporaryDirectory.make(prefix: "herald-mount-probe") else { return false }
            defer { rmdir(dir) }
            guard mount(dir, dir, nil, UInt(MS_BIND), nil) == 0 else { return false }
            umount2(dir, 0)
            return true
        }()

        @Test("the spool's file system read-only: 452 4.3.1 at the door, nothing lost, all delivered once writable again",
              .enabled(if: SpoolFaults.canMount, "a bind mount needs root"))
        func readOnlySpool() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(toml: [DeliveryIT.route("*.ro.test", port: sink.port)], enabled: false)
            try await HeraldProcess.with(options) { herald in
                // The spool directory over itself (a bind mount), which can then be made
                // read-only on its own: Herald's log and config stay writable.
                let spool = herald.spoolPath
                guard mount(spool, spool, nil, UInt(MS_BIND), nil) == 0 else {
                    Issue.record("bind mount failed: \(String(cString: strerror(errno)))")
                    return
                }
                defer { umount2(spool, Int32(MNT_DETACH)) }
                func remount(readOnly: Bool) -> Bool {
                    let flags = UInt(MS_BIND) | UInt(MS_REMOUNT) | (readOnly ? UInt(MS_RDONLY) : 0)
                    return mount(spool, spool, nil, flags, nil) == 0
                }
                let before = (0..<5).map { DeliveryIT.mail("before-\($0)", to: ["r\($0)@d.ro.test"], bodyLines: 3) }
                let acknowledged = try await DeliveryIT.submitAccepted(port: herald.port(), before)
                #expect(acknowledged.count == 5)

                #expect(remount(readOnly: true), "remount read-only: \(String(cString: strerror(errno)))")
                let refused = try await DeliveryIT.submit(port: herald.port(), [DeliveryIT.mail("refused", to: ["x@d.ro.test"])])
                // With the spool journal, the segment was opened before the remount and
                // its descriptor still writes to the (writable) file system underneath: the
                // message is committed there, flushed, and so rightly acknowledged.
                let committedInJournal = herald.usesSpoolJournal && refused.first?.status.hasPrefix("250") == true
                if !committedInJournal {
                    #expect(refused.first?.status == "452 4.3.1", "\(refused)")
                }
                // The postmaster still sees the queue.
                let list = try await herald.queueList()
                #expect(list.count == (committedInJournal ? 6 : 5), "\(list.count)")
                // The server keeps serving.
                let c = try SMTPTestClient(port: herald.port())
                try c.greetAndEhlo()
                #expect(try c.command("NOOP").code == 250)
                c.close()

                #expect(remount(readOnly: false), "remount read-write: \(String(cString: strerror(errno)))")
                let after = try await DeliveryIT.submitAccepted(port: herald.port(),
                                                                [DeliveryIT.mail("after", to: ["a@d.ro.test"], bodyLines: 3)])
                #expect(after.count == 1)
                // Delivery on: every acknowledged message arrives, once; the refused one never.
                try await herald.restart(with: DeliveryIT.options(toml: [DeliveryIT.route("*.ro.test", port: sink.port)]))
                let expected = ["a@d.ro.test"] + (0..<5).map { "r\($0)@d.ro.test" } + (committedInJournal ? ["x@d.ro.test"] : [])
                #expect(await sink.waitForMessages(expected.count, timeout: 30) == expected.count)
                let recipients = sink.index().flatMap(\.rcpts).sorted()
                #expect(recipients == expected.sorted(), "\(recipients)")
            }
        }
        /// A queued message whose file cannot be read at its next attempt (here: its
        /// `.msg` replaced by a directory, so read() fails with EISDIR; an I/O error on a
        /// failing disk looks the same): it stays queued, untouched, and is tried again
        /// after a back-off instead of at once; the other messages are delivered; once
        /// the file is back it is delivered, once.
        @Test("a message file unreadable at its attempt: kept, retried after a back-off, delivered once it reads again")
        func unreadableMessageFile() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(toml: [DeliveryIT.route("*.unread.test", port: sink.port)])
            try await HeraldProcess.with(options) { herald in
                // failonce-: a 450 first, so the message is in the queue, waiting, when its
                // file goes bad.
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(),
                                                              [DeliveryIT.mail("unread", to: ["failonce-u@a.unread.test"])])
                let id = try #require(ids.first)
                let deferred = await DeliveryIT.waitUntil(timeout: 10) {
                    DeliveryIT.deliveryLog(herald).contains { $0["result"] as? String == "deferred" }
                }
                #expect(deferred, "no deferral\n\(herald.diagnostics())")
                let path = try #require(herald.messagePath(id))
                let saved = path + ".saved"
                #expect(rename(path, saved) == 0)
                #expect(mkdir(path, 0o700) == 0)
                let faultAt = herald.log.utf8.count

                // The next attempts fail to read it. Meanwhile other mail goes out.
                try await DeliveryIT.submitAccepted(port: herald.port(),
                                                    [DeliveryIT.mail("other", to: ["other@b.unread.test"])])
                #expect(await sink.waitForMessages(1, timeout: 10) == 1)
                try await Task.sleep(for: .seconds(5))
                let during = String(herald.log.utf8.dropFirst(faultAt)) ?? ""
                let unreadable = during.split(separator: "\n").filter { $0.contains("cannot read message") }
                // Back-off 1 s to 2 s: a handful of attempts in 5 s, not a loop.
                #expect(unreadable.count >= 1 && unreadable.count <= 6, "\(unreadable.count) read failures in 5 s")
                #expect(herald.spoolIDs().contains(id), "the message left the queue")
                #expect(herald.spoolIDs("corrupt").isEmpty, "an unreadable file is not corrupt: \(herald.spoolIDs("corrupt"))")
                #expect(sink.index().filter { $0.rcpts.contains("failonce-u@a.unread.test") }.isEmpty)

                // The file reads again: delivered, once.
                #expect(rmdir(path) == 0)
                #expect(rename(saved, path) == 0)
                #expect(await sink.waitForMessages(2, timeout: 15) == 2, "\(herald.diagnostics())")
                #expect(await DeliveryIT.waitForEmptySpool(herald, timeout: 10), "left: \(herald.spoolIDs())")
                #expect(sink.index().filter { $0.rcpts.contains("failonce-u@a.unread.test") }.count == 1)
            }
        }
    }
}
