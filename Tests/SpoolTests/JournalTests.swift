import Foundation
import Glibc
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

    @Test("stores commit through the journal, are read from it until written out, and a stop writes out the rest")
    func commitAndStop() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // No retirement during the test: what is pending stays so until the stop.
        let spool = try Self.spool(directory, boot: "boot-A", rotate: 600, retire: 600)
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
        // Acknowledged: an M frame each, and no file yet; the spool's reads serve them.
        #expect(Set(try Self.frames(directory).messages) == Set(stored.map(\.0.id)))
        #expect(filesUnder(directory + "/queue").isEmpty)
        #expect(try spool.enumerate(.queue) == stored.map(\.0.id).sorted())
        for (envelope, message) in stored {
            #expect(spool.locate(envelope.id) == .queue)
            #expect(spool.envelopeStamp(envelope.id, in: .queue) != 0)
            #expect(try spool.loadMessage(envelope.id, in: .queue) == message)
            #expect(try spool.loadEnvelope(envelope.id, in: .queue) == envelope)
        }
        // Delivered ones leave D frames and never get files.
        let removed = stored.prefix(50).map(\.0.id)
        for id in removed { try spool.remove(id, from: .queue, durable: false) }
        #expect(Set(try Self.frames(directory).done) == Set(removed))
        for id in removed { #expect(spool.locate(id) == nil) }
        // An update writes the message out at once, with the new envelope.
        var deferred = stored[60].0
        deferred.recipients[0].attempts = 1
        try spool.update(deferred, in: .queue)
        #expect(fileExists(spool.envelopePath(deferred.id, in: .queue)))
        #expect(try readFile(spool.messagePath(deferred.id, in: .queue)) == stored[60].1)
        #expect(try spool.loadEnvelope(deferred.id, in: .queue).recipients[0].attempts == 1)
        // A move writes it out too.
        try spool.move(stored[61].0.id, from: .queue, to: .hold)
        #expect(try spool.loadMessage(stored[61].0.id, in: .hold) == stored[61].1)
        #expect(filesUnder(directory + "/queue").count == 2)
        // A graceful stop writes out the rest and leaves no segment.
        spool.stopJournal()
        #expect(Self.segments(directory).isEmpty)
        for (envelope, message) in stored.dropFirst(50) where envelope.id != stored[61].0.id {
            #expect(try readFile(spool.messagePath(envelope.id, in: .queue)) == message)
        }
        #expect(try spool.recover() == RecoveryReport(queued: 149, held: 1))
        #expect(filesUnder(directory + "/tmp").isEmpty)
    }

    @Test("a segment retires by age: its pending messages are written out and it is removed")
    func retireByAge() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try Self.spool(directory, boot: "boot-A", rotate: 0.2, retire: 0.2)
        try spool.startJournal()
        defer { spool.stopJournal() }
        var stored: [(QueueID, [UInt8])] = []
        for index in 0..<20 {
            let message = SpoolFixtures.message(tag: "age \(index)", size: 800)
            stored.append((try await spool.store(message: message, envelope: SpoolFixtures.envelope()).id, message))
        }
        try spool.remove(stored[0].0, from: .queue, durable: false)
        // Within a few periods (however loaded the machine), only the current, empty
        // segment is left, and the 19 have files of their own while the journal runs.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if try Self.frames(directory).messages.isEmpty && Self.segments(directory).count == 1 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try Self.frames(directory).messages.isEmpty)
        #expect(Self.segments(directory).count == 1)
        for (id, message) in stored.dropFirst() {
            #expect(try readFile(spool.messagePath(id, in: .queue)) == message)
        }
        #expect(!fileExists(spool.envelopePath(stored[0].0, in: .queue)))
        #expect(try spool.enumerate(.queue) == stored.dropFirst().map(\.0).sorted())
    }

    @Test("a full disk during write-out keeps the segment and its messages readable; written out once there is room",
          .enabled(if: DiskFullTests.canMountTmpfs, "mounting a tmpfs needs root (mount fails with EPERM)"))
    func writeOutOnFullDisk() async throws {
        guard let mountPoint = try DiskFullTests.mountTmpfs(size: "512k", prefix: "herald-journal-full") else { return }
        defer { DiskFullTests.unmountTmpfs(mountPoint) }
        let directory = mountPoint + "/spool"
        let spool = try Self.spool(directory, boot: "boot-A", rotate: 0.2, retire: 0.2)
        try spool.startJournal()
        defer { spool.stopJournal() }
        var stored: [(QueueID, [UInt8])] = []
        for index in 0..<16 {
            let message = SpoolFixtures.message(tag: "full \(index)", size: 4000)
            stored.append((try await spool.store(message: message, envelope: SpoolFixtures.envelope()).id, message))
        }
        // Fill what is left of the disk before the segment retires, but for one page: room
        // for the next segment to open (so that this one closes) and none for files.
        let block = [UInt8](repeating: 0x55, count: 4096)
        let spare = mountPoint + "/spare"
        try writeFile(spare, block)
        let filler = mountPoint + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        #expect(fd >= 0)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress!, $0.count) }) > 0 {}
        close(fd)
        unlink(spare)
        // Several retire attempts fail meanwhile: nothing is lost, everything is readable.
        try await Task.sleep(for: .seconds(1.5))
        // (Which messages got written out depends on the pages left; those that did not
        // are still served from their kept segment.)
        for (id, message) in stored {
            #expect(try spool.loadMessage(id, in: .queue) == message)
        }
        // Room again: the next attempt writes them out and removes the segment.
        unlink(filler)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if try Self.frames(directory).messages.isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try Self.frames(directory).messages.isEmpty)
        for (id, message) in stored {
            #expect(try readFile(spool.messagePath(id, in: .queue)) == message)
        }
    }

    @Test("a restart puts back what was only in the journal; after a reboot also what the page cache lost")
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
        // The server delivered two and recorded attempts on two (written out); a
        // postmaster (another process, no journal) deleted one of those; the server held one.
        try running.remove(id[0], from: .queue, durable: false)
        try running.remove(id[1], from: .queue, durable: true)
        for n in [2, 7] {
            var attempted = try running.loadEnvelope(id[n], in: .queue)
            attempted.recipients[0].attempts = 3
            try running.update(attempted, in: .queue)
        }
        let postmaster = try Self.spool(directory, boot: nil)
        try postmaster.remove(id[2], from: .queue)
        #expect(fileExists(directory + "/journal/removed/" + id[2].rawValue))
        try running.move(id[6], from: .queue, to: .hold)

        // The disk as a crash leaves it: copies taken while the journal runs.
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
        // A power cut: pages of files written out were lost too.
        try writeFile(path(crashed, 7, "queue", ".msg"), [])
        try FileManager.default.removeItem(atPath: path(crashed, 6, "hold", ".msg"))

        let rebooted = try Self.spool(crashed, boot: "boot-B")
        let report = try rebooted.startJournal()
        #expect(report == JournalReplayReport(segments: 1, live: 9, rewritten: 2, restored: 7))
        for n in [3, 4, 5, 7, 8, 9, 10, 11] {
            #expect(try rebooted.loadMessage(id[n], in: .queue) == messages[n].bytes)
        }
        #expect(try rebooted.loadMessage(id[6], in: .hold) == messages[6].bytes)
        #expect(try rebooted.loadEnvelope(id[7], in: .queue).recipients[0].attempts == 3)
        for n in [0, 1, 2] { #expect(rebooted.locate(id[n]) == nil) }
        #expect(!fileExists(crashed + "/journal/removed/" + id[2].rawValue))
        #expect(Self.segments(crashed).count == 1)   // the new run's own, empty
        rebooted.stopJournal()
        #expect(try rebooted.recover() == RecoveryReport(queued: 8, held: 1))

        // The same boot (the process was killed): the pending ones are written out, the
        // files that exist are kept as they are.
        let restarted = try Self.spool(sameBoot, boot: "boot-A")
        let same = try restarted.startJournal()
        #expect(same == JournalReplayReport(segments: 1, live: 9, rewritten: 0, restored: 7))
        for n in [0, 1, 2] { #expect(restarted.locate(id[n]) == nil) }
        restarted.stopJournal()
        #expect(try restarted.recover() == RecoveryReport(queued: 8, held: 1))
    }

    @Test("another process that includes the segments lists and reads pending messages, and cannot change them")
    func otherProcessSeesPending() async throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory(prefix: "herald-journal")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = try Self.spool(directory, boot: "boot-A", rotate: 600, retire: 600)
        try server.startJournal()
        defer { server.stopJournal() }
        var stored: [(Envelope, [UInt8])] = []
        for index in 0..<4 {
            let message = SpoolFixtures.message(tag: "cli \(index)", size: 600)
            stored.append((try await server.store(message: message, envelope: SpoolFixtures.envelope()), message))
        }
        try server.remove(stored[0].0.id, from: .queue, durable: false)
        try server.move(stored[1].0.id, from: .queue, to: .hold)

        let cli = try Self.spool(directory, boot: nil)
        #expect(try cli.enumerate(.queue) == [])   // without the segments: nothing to see
        cli.includeJournalSegments()
        #expect(try cli.enumerate(.queue) == [stored[2].0.id, stored[3].0.id].sorted())
        #expect(try cli.enumerate(.hold) == [stored[1].0.id])
        #expect(cli.locate(stored[2].0.id) == .queue)
        #expect(cli.locate(stored[0].0.id) == nil)
        #expect(try cli.loadEnvelope(stored[2].0.id, in: .queue) == stored[2].0)
        #expect(try cli.loadMessage(stored[2].0.id, in: .queue) == stored[2].1)
        #expect(cli.hasJournalSegments())
        #expect(throws: SpoolError.self) { try cli.move(stored[2].0.id, from: .queue, to: .hold) }
        #expect(throws: SpoolError.self) { try cli.remove(stored[3].0.id, from: .queue) }
        // Still the server's to deliver.
        #expect(try server.loadMessage(stored[3].0.id, in: .queue) == stored[3].1)

        // Asked to (journal/write-out/), the server writes one out at once, long before its
        // segment retires (10 minutes here); the other stays in the journal.
        #expect(cli.waitForJournalWriteOut(of: [stored[2].0.id], timeout: 30))
        #expect(try readFile(server.messagePath(stored[2].0.id, in: .queue)) == stored[2].1)
        #expect(try EnvelopeCoding.decode(readFile(server.envelopePath(stored[2].0.id, in: .queue))) == stored[2].0)
        #expect(!fileExists(server.envelopePath(stored[3].0.id, in: .queue)))
        #expect(!cli.isOnlyInJournal(stored[2].0.id) && cli.isOnlyInJournal(stored[3].0.id))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: directory + "/journal/write-out")) ?? ["?"]).isEmpty,
                "every request served and removed")
        try cli.move(stored[2].0.id, from: .queue, to: .hold)
        #expect(try cli.enumerate(.hold) == [stored[1].0.id, stored[2].0.id].sorted())
        #expect(!server.isPendingInJournal(stored[2].0.id) && server.isPendingInJournal(stored[3].0.id))
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
        var logger = Logger(label: "herald.spool.test")
        logger.logLevel = .critical
        var settings = JournalSettings()
        settings.bootID = "boot-B"
        let off = try Spool(path: crashed, configuration: .init(journal: settings), logger: logger)
        let report = try off.startJournal(replayOnly: true)
        #expect(report.restored == 1)
        #expect(Self.segments(crashed).isEmpty)
        #expect(try off.loadMessage(envelope.id, in: .queue) == message)
        // Stores of this process commit file by file.
        _ = try await off.store(message: message, envelope: SpoolFixtures.envelope())
        #expect(Self.segments(crashed).isEmpty)
    }
}
