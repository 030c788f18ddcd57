import Foundation
import HeraldTestSupport
import Logging
import Testing

@testable import Spool

/// The spool journal (Journal.swift): commits through one flushed log, retirement, and
/// the replay that puts right what a reboot lost from the page cache.
@Suite("Spool journal")
struct JournalTests {
    static func spool(_ directory: String, boot: String?, rotate: Double = 0.2, retire: Double = 0.2) throws -> Spool {
        var logger = Logger(label: "herald.spool.test")
        logger.logLevel = .critical
        let journal = boot.map { JournalSettings(rotateAge: rotate, retireDelay: retire, bootID: $0) }
        return try Spool(path: directory, configuration: .init(committerThreads: 16, journal: journal), logger: logger)
    }

    static func segments(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory + "/journal")) ?? [])
            .filter { $0.hasSuffix(".jnl") }.sorted()
    }

    /// The M and D frames of every segment: (ids of M frames, ids of D frames).
    static func frames(_ directory: String) throws -> (messages: [QueueID], done: [QueueID]) {
        var messages: [QueueID] = []
        var done: [QueueID] = []
        for name in segments(directory) {
            let bytes = try readFile(directory + "/journal/" + name)
            for frame in JournalFrame.parse(bytes) {
                switch frame.kind {
                case .message: messages.append(try EnvelopeCoding.decode(Array(bytes[frame.a])).id)
                case .done: done.append(QueueID(String(decoding: bytes[frame.a], as: UTF8.self))!)
                case .header: break
                }
            }
        }
        return (messages, done)
    }

    @Test("stores commit through the journal, their files are sound in queue/, and segments retire")
    func commitAndRetire() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try Self.spool(directory, boot: "boot-A")
        #expect(try spool.startJournal() == JournalReplayReport())
        let stored = try await withThrowingTaskGroup(of: (Envelope, [UInt8]).self) { group in
            for index in 0..<200 {
                group.addTask {
                    let message = SpoolFixtures.message(tag: "journal \(index)", size: 500 + index * 7)
                    return (try await spool.store(message: message, envelope: SpoolFixtures.envelope()), message)
                }
            }
            var all: [(Envelope, [UInt8])] = []
            for try await item in group { all.append(item) }
            return all
        }
        #expect(try spool.enumerate(.queue) == stored.map(\.0.id).sorted())
        for (envelope, message) in stored {
            #expect(try spool.loadMessage(envelope.id, in: .queue) == message)
            #expect(try spool.loadEnvelope(envelope.id, in: .queue) == envelope)
        }
        // Every acknowledged store is an M frame already (the segments are not retired yet).
        let written = try Self.frames(directory)
        #expect(Set(written.messages) == Set(stored.map(\.0.id)))
        // Delivered messages leave D frames while their segment is unretired.
        let removed = stored.prefix(50).map(\.0.id)
        for id in removed { try spool.remove(id, from: .queue, durable: false) }
        #expect(Set(try Self.frames(directory).done) == Set(removed))
        // Within a few retire periods only the (empty) current segment is left.
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let left = try Self.frames(directory)
            if left.messages.isEmpty && left.done.isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try Self.frames(directory).messages.isEmpty)
        #expect(Self.segments(directory).count == 1)
        spool.stopJournal()
        #expect(Self.segments(directory).isEmpty)
        #expect(try spool.recover() == RecoveryReport(queued: 150))
        #expect(filesUnder(directory + "/tmp").isEmpty)
    }

    @Test("after a reboot, files the page cache lost are put back from the journal; removals stay removed")
    func replayAfterReboot() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Long rotation and retirement: everything stays in the journal until the "crash".
        let running = try Self.spool(directory, boot: "boot-A", rotate: 600, retire: 600)
        try running.startJournal()
        var messages: [(id: QueueID, bytes: [UInt8])] = []
        for index in 0..<12 {
            let message = SpoolFixtures.message(tag: "reboot \(index)", size: 700 + index)
            let envelope = try await running.store(message: message, envelope: SpoolFixtures.envelope())
            messages.append((envelope.id, message))
        }
        let id = messages.map(\.id)
        // The server delivered two; a postmaster (another process, no journal) deleted
        // one, held one, and the server recorded an attempt on another.
        try running.remove(id[0], from: .queue, durable: false)
        try running.remove(id[1], from: .queue, durable: true)
        let postmaster = try Self.spool(directory, boot: nil)
        try postmaster.remove(id[2], from: .queue)
        #expect(fileExists(directory + "/journal/removed/" + id[2].rawValue))
        try postmaster.move(id[6], from: .queue, to: .hold)
        var attempted = try running.loadEnvelope(id[7], in: .queue)
        attempted.recipients[0].attempts = 3
        try running.update(attempted, in: .queue)

        // The disk as a power cut leaves it: a copy taken while the journal runs, with
        // what the kernel had not written yet missing or torn.
        let crashed = directory + "-crashed"
        try FileManager.default.copyItem(atPath: directory, toPath: crashed)
        defer { try? FileManager.default.removeItem(atPath: crashed) }
        let sameBoot = directory + "-same-boot"
        try FileManager.default.copyItem(atPath: directory, toPath: sameBoot)
        defer { try? FileManager.default.removeItem(atPath: sameBoot) }
        running.stopJournal()
        func path(_ base: String, _ n: Int, _ queue: String, _ suffix: String) -> String {
            base + "/" + queue + "/" + id[n].shard + "/" + id[n].rawValue + suffix
        }
        for base in [crashed, sameBoot] {
            try FileManager.default.removeItem(atPath: path(base, 3, "queue", ".msg"))
            try FileManager.default.removeItem(atPath: path(base, 3, "queue", ".env"))
            try writeFile(path(base, 4, "queue", ".msg"), [])
            try writeFile(path(base, 5, "queue", ".env"), Array("{\"vers".utf8))
            try FileManager.default.removeItem(atPath: path(base, 6, "hold", ".msg"))
        }

        // Another boot: the journal is the truth for what the files lost.
        let rebooted = try Self.spool(crashed, boot: "boot-B")
        let report = try rebooted.startJournal()
        #expect(report == JournalReplayReport(segments: 1, live: 9, rewritten: 3, restored: 1))
        for n in [3, 4, 5, 8, 9, 10, 11] {
            #expect(try rebooted.loadMessage(id[n], in: .queue) == messages[n].bytes)
        }
        #expect(try rebooted.loadMessage(id[6], in: .hold) == messages[6].bytes)
        #expect(try rebooted.loadEnvelope(id[7], in: .queue).recipients[0].attempts == 3)
        for n in [0, 1, 2] { #expect(rebooted.locate(id[n]) == nil) }
        #expect(!fileExists(crashed + "/journal/removed/" + id[2].rawValue))
        #expect(Self.segments(crashed).count == 1)   // the new run's own, empty
        rebooted.stopJournal()
        #expect(try rebooted.recover() == RecoveryReport(queued: 8, held: 1))

        // The same boot: the kernel kept every page, so missing files were removed on
        // purpose and nothing is rewritten (the damage made above is then recovery's).
        let restarted = try Self.spool(sameBoot, boot: "boot-A")
        let same = try restarted.startJournal()
        #expect(same.rewritten == 0 && same.restored == 0 && same.segments == 1)
        #expect(restarted.locate(id[3]) == nil)
        restarted.stopJournal()
    }

    @Test("a frame cut short or damaged ends the segment; the frames before it are read")
    func tornTail() throws {
        let one = JournalFrame.make(.message, Array("envelope".utf8), Array("message".utf8))
        let two = JournalFrame.make(.done, Array("id".utf8))
        #expect(JournalFrame.parse(one + two).count == 2)
        #expect(JournalFrame.parse(one + two.dropLast()).count == 1)
        var damaged = one + two + one
        damaged[one.count + 17] ^= 0x01
        let parsed = JournalFrame.parse(damaged)
        #expect(parsed.count == 1)
        #expect(parsed.first.map { Array(damaged[$0.b]) } == Array("message".utf8))
        #expect(JournalFrame.parse(Array(repeating: 0, count: 64)).isEmpty)
    }

    @Test("segments left by a killed process with the journal off in the configuration are still replayed")
    func replayWithJournalOff() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let running = try Self.spool(directory, boot: "boot-A", rotate: 600, retire: 600)
        try running.startJournal()
        let message = SpoolFixtures.message(tag: "off", size: 900)
        let envelope = try await running.store(message: message, envelope: SpoolFixtures.envelope())
        let crashed = directory + "-crashed"
        try FileManager.default.copyItem(atPath: directory, toPath: crashed)
        defer { try? FileManager.default.removeItem(atPath: crashed) }
        running.stopJournal()
        try FileManager.default.removeItem(atPath: crashed + "/queue/" + envelope.id.shard + "/" + envelope.id.rawValue + ".msg")
        var logger = Logger(label: "herald.spool.test")
        logger.logLevel = .critical
        var settings = JournalSettings()
        settings.bootID = "boot-B"
        let off = try Spool(path: crashed, configuration: .init(journal: settings), logger: logger)
        let report = try off.startJournal(replayOnly: true)
        #expect(report.rewritten == 1)
        #expect(Self.segments(crashed).isEmpty)
        #expect(try off.loadMessage(envelope.id, in: .queue) == message)
        // Stores of this process commit file by file.
        _ = try await off.store(message: message, envelope: SpoolFixtures.envelope())
        #expect(Self.segments(crashed).isEmpty)
    }
}
