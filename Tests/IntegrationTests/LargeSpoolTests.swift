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
            #expect(herald.log.contains("queued=\(Self.backlog)"), "recovery counts every message")

            let delivered = await DeliveryIT.waitUntil(timeout: 240) {
                (try? FileManager.default.attributesOfItem(atPath: herald.deliveryLogPath)[.size] as? Int ?? 0) ?? 0 > 0
            }
            let firstDelivery = Date()
            try #require(delivered, "no delivery within 240 s\n\(herald.diagnostics())")
            let rssAtFirst = ProcessMemory.residentBytes(pid) ?? 0
            // Deliveries go on.
            let flowing = await DeliveryIT.waitUntil(timeout: 120) {
                DeliveryIT.logLines(herald, result: "delivered").count >= 50
            }
            #expect(flowing, "\(DeliveryIT.deliveryLog(herald).prefix(3))")
            print("""
                large spool: restart with \(Self.backlog) queued: listening after \(seconds(listening, since: started)), \
                first delivery after \(seconds(firstDelivery, since: started)); RSS at listen \
                \(ProcessMemory.mebibytes(rssAtListen)), at first delivery \(ProcessMemory.mebibytes(rssAtFirst)) \
                (\(rssAtFirst / Self.backlog) bytes per queued message)
                """)
            started = Date()
            #expect(await herald.stop(timeout: 60)?.succeeded == true, "\(herald.diagnostics())")
            print("large spool: 50 deliveries after \(seconds(started, since: firstDelivery)), stopped in \(seconds(since: started))")
            // rm(1) removes 400,000 files much faster than FileManager in cleanup().
            started = Date()
            _ = try await Command.run("rm", ["-rf", herald.spoolPath], timeout: 120)
            print("large spool: removed in \(seconds(since: started))")
        }

        private func seconds(_ end: Date = Date(), since start: Date) -> String {
            String(format: "%.1f s", end.timeIntervalSince(start))
        }
    }
}
