import Foundation
import HeraldTestSupport
import Logging
import Spool
import Testing

/// A backlog of 200,000 queued messages: Herald stops, the postmaster reads the spool
/// with the CLI, and Herald starts again on it and delivers. Directory listings this
/// large once crashed recovery (a `dirent` copied past the end of `readdir`'s buffer).
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(10)))
    struct LargeSpool {
        static let backlog = 200_000

        @Test("Herald restarts on a 200,000-message spool, the CLI reads it, delivery starts")
        func restartOnLargeSpool() async throws {
            let sink = try await PostfixSink()
            defer { Task { await sink.stop() } }
            var options = DeliveryIT.options(
                toml: [DeliveryIT.route("example.com", port: sink.port)], enabled: false)
            options.startTimeout = 300
            // 400,000 files: on a tmpfs they are made and removed in seconds (removing them
            // from this machine's ext4 alone takes 45 s). Directory listing, recovery and
            // the CLI run the same code on either.
            options.directoryBase = ProcessInfo.processInfo.environment["HERALD_LARGE_SPOOL_BASE"]
                ?? (FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : nil)
            let begin = Date()
            let herald = try await HeraldProcess.start(options)
            defer { herald.cleanup() }
            #expect(await herald.stop()?.succeeded == true)
            print("large spool: first start and stop in \(seconds(since: begin))")

            // The backlog, written in the spool's own format while Herald is down.
            let filled = Date()
            var logger = Logger(label: "large-spool-test")
            logger.logLevel = .critical
            let ids = try SpoolFixtures.fillQueue(
                try Spool(path: herald.spoolPath, configuration: .init(committerThreads: 1), logger: logger),
                count: Self.backlog)
            print("large spool: wrote \(ids.count) messages in \(seconds(since: filled))")

            // The postmaster's view of the stopped spool: every message, nothing corrupt.
            var started = Date()
            let counts = try await herald.queueStats(timeout: 300)
            #expect(counts.messages["queue"] == Self.backlog)
            #expect(counts.messages["corrupt"] == 0)
            #expect(counts.recipients["pending"] == Self.backlog)
            print("large spool: herald queue stats in \(seconds(since: started))")

            started = Date()
            let list = try await herald.cli(["queue", "list"], timeout: 300)
            try #require(list.termination.succeeded, "\(list.termination) \(list.stderrText)")
            let listed = list.stdoutText.split(separator: "\n").filter { $0.hasSuffix("<s@b.local>") }
            #expect(listed.count == Self.backlog)
            #expect(list.stdoutText.contains("-- \(Self.backlog) message(s)"))
            #expect(listed.first?.hasPrefix(ids[0].rawValue) == true, "oldest first")
            print("large spool: herald queue list in \(seconds(since: started))")

            // Start again with delivery on: recovery, listening, first delivery.
            var delivering = options
            delivering.deliveryEnabled = true
            started = Date()
            try await herald.restart(with: delivering)
            let listening = Date()
            let pid = try #require(herald.pid)
            let rssAtListen = ProcessMemory.residentBytes(pid) ?? 0

            let delivered = await DeliveryIT.waitUntil(timeout: 240) {
                (try? FileManager.default.attributesOfItem(atPath: herald.deliveryLogPath)[.size] as? Int ?? 0) ?? 0 > 0
            }
            let firstDelivery = Date()
            try #require(delivered, "no delivery within 240 s\n\(herald.diagnostics())")
            let rssAtFirst = ProcessMemory.residentBytes(pid) ?? 0
            // Delivery started with the oldest messages while recovery checked the rest
            // beside it: kill it now, most likely while that check still runs.
            let handover = herald.log.split(separator: "\n").first { $0.contains("the rest are checked beside it") }
            #expect(handover?.contains("found=\(Self.backlog)") == true, "\(herald.log.suffix(2000))")
            let recoveredBeforeKill = recoveries(herald).count
            #expect(await herald.kill()?.signaled == true)
            print("""
                large spool: restart with \(Self.backlog) queued: listening after \(seconds(listening, since: started)), \
                first delivery after \(seconds(firstDelivery, since: started)); RSS at listen \
                \(ProcessMemory.mebibytes(rssAtListen)), at first delivery \(ProcessMemory.mebibytes(rssAtFirst)) \
                (\(rssAtFirst / Self.backlog) bytes per queued message); killed \
                \(recoveredBeforeKill == 2 ? "after" : "before") recovery had checked the rest
                """)

            // Nothing lost and nothing set aside by delivery and recovery working side by
            // side: every message was delivered or is still queued, and the restart's
            // recovery (now beside delivery again) checks them all sound.
            started = Date()
            try await herald.restart()
            let recoveredAgain = await DeliveryIT.waitUntil(timeout: 240) { recoveries(herald).count == recoveredBeforeKill + 1 }
            try #require(recoveredAgain, "\(herald.diagnostics())")
            // The spool first: delivery goes on, and a message gone from queue/ had its
            // delivery-log line written before it was removed.
            let queued = Set(herald.spoolIDs())
            let deliveredIDs = Set(DeliveryIT.logLines(herald, result: "delivered").compactMap { $0["queue_id"] as? String })
            let missing = ids.filter { !deliveredIDs.contains($0.rawValue) && !queued.contains($0.rawValue) }
            #expect(missing.isEmpty, "lost: \(missing.prefix(10))")
            #expect(recoveries(herald).last?.contains("moved_to_corrupt=0") == true, "\(recoveries(herald))")
            #expect(herald.spoolFiles("corrupt").isEmpty)
            // Deliveries go on.
            let flowing = await DeliveryIT.waitUntil(timeout: 120) {
                DeliveryIT.logLines(herald, result: "delivered").count >= deliveredIDs.count + 50
            }
            #expect(flowing, "\(DeliveryIT.deliveryLog(herald).suffix(3))")
            print("large spool: after the kill, \(deliveredIDs.count) delivered, \(queued.count) queued; "
                  + "recovered in \(seconds(since: started)), 50 more deliveries")
            started = Date()
            #expect(await herald.stop(timeout: 60)?.succeeded == true, "\(herald.diagnostics())")
            print("large spool: stopped in \(seconds(since: started))")
            // rm(1) removes 400,000 files much faster than FileManager in cleanup().
            started = Date()
            _ = try await Command.run("rm", ["-rf", herald.spoolPath], timeout: 120)
            print("large spool: removed in \(seconds(since: started))")
        }

        /// The "spool recovered" lines of the log, one per start that finished recovery.
        private func recoveries(_ herald: HeraldProcess) -> [Substring] {
            herald.log.split(separator: "\n").filter { $0.contains("spool recovered") }
        }

        private func seconds(_ end: Date = Date(), since start: Date) -> String {
            String(format: "%.1f s", end.timeIntervalSince(start))
        }
    }
}
