import Foundation
import Glibc
import HeraldTestSupport
import Testing

@testable import Spool

@Suite("Spool recovery")
struct RecoveryTests {
    /// A pid that no process has right now.
    static func deadPID() -> pid_t {
        var pid: pid_t = 3_999_999
        while kill(pid, 0) == 0 || errno == EPERM { pid -= 1 }
        return pid
    }

    @Test("a clean spool: nothing to do, counts by queue")
    func clean() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            #expect(try spool.recover() == RecoveryReport())
            for index in 0..<3 { try await storeSample(spool, tag: "q\(index)") }
            let (held, _, _) = try await storeSample(spool, tag: "held")
            try spool.move(held, from: .queue, to: .hold)
            #expect(try spool.recover() == RecoveryReport(queued: 3, held: 1))
        }
    }

    @Test("tmp/ garbage is removed, a running writer's fresh files are not")
    func temporaryGarbage() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let tmp = directory + "/tmp/"
            let id = QueueID.generate()
            try writeFile(tmp + "junk", [1, 2, 3])
            try FileManager.default.createDirectory(atPath: tmp + "junkdir/sub", withIntermediateDirectories: true)
            try writeFile(tmp + "junkdir/sub/file", [1])
            try writeFile(tmp + "\(id).\(RecoveryTests.deadPID())-1f.msg", [1])  // writer died
            try writeFile(tmp + "\(id).\(getpid())-2e.env", [1])  // our own pid: a previous life
            let live = tmp + "\(id).1-3d.msg"  // pid 1 is running: a CLI mid-update, say
            try writeFile(live, [1])
            let pid1Running = kill(1, 0) == 0 || errno == EPERM

            let report = try spool.recover()
            #expect(report.tmpRemoved == (pid1Running ? 4 : 5))
            #expect(filesUnder(tmp) == (pid1Running ? ["\(id).1-3d.msg"] : []))
            #expect(report.queued == 0)
        }
    }

    @Test("a .msg without .env was never acknowledged: removed")
    func orphanMessage() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, _, _) = try await storeSample(spool)
            let (kept, _, _) = try await storeSample(spool, tag: "kept")
            try FileManager.default.removeItem(atPath: spool.envelopePath(id, in: .queue))
            // And one in hold/ whose .env never arrived either.
            let (heldOrphan, _, _) = try await storeSample(spool, tag: "held orphan")
            try spool.move(heldOrphan, from: .queue, to: .hold)
            try FileManager.default.removeItem(atPath: spool.envelopePath(heldOrphan, in: .hold))

            // A .msg whose .env a postmaster moved to corrupt/ by hand is kept, next to it.
            let (setAside, _, setAsideBytes) = try await storeSample(spool, tag: "set aside")
            try rename(spool.envelopePath(setAside, in: .queue), spool.envelopePath(setAside, in: .corrupt))

            #expect(try spool.recover() == RecoveryReport(orphanMessagesRemoved: 2, movedToCorrupt: 1, queued: 1))
            #expect(!fileExists(spool.messagePath(id, in: .queue)))
            #expect(!fileExists(spool.messagePath(heldOrphan, in: .hold)))
            #expect(spool.locate(kept) == .queue)
            #expect(filesUnder(directory + "/corrupt") == ["\(setAside).1.msg", "\(setAside).env"])
            #expect(try readFile(directory + "/corrupt/\(setAside).1.msg") == setAsideBytes)
        }
    }

    @Test("an .env whose .msg is missing everywhere goes to corrupt/")
    func envelopeWithoutMessage() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, stored, _) = try await storeSample(spool)
            try FileManager.default.removeItem(atPath: spool.messagePath(id, in: .queue))
            #expect(try spool.recover() == RecoveryReport(movedToCorrupt: 1))
            #expect(filesUnder(directory + "/corrupt") == ["\(id).env"])
            #expect(try spool.loadEnvelope(id, in: .corrupt) == stored)
            #expect(filesUnder(directory + "/queue").isEmpty)
        }
    }

    @Test("an .env that does not decode goes to corrupt/ with its .msg")
    func undecodableEnvelope() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, _, message) = try await storeSample(spool)
            try writeFile(spool.envelopePath(id, in: .queue), Array("not json".utf8))
            let (wrongID, _, _) = try await storeSample(spool, tag: "wrong id")
            // An envelope that decodes but names another message is just as unusable.
            let (otherID, otherEnvelope, _) = try await storeSample(spool, tag: "other")
            try writeFile(spool.envelopePath(wrongID, in: .queue), EnvelopeCoding.encode(otherEnvelope))

            #expect(try spool.recover() == RecoveryReport(movedToCorrupt: 2, queued: 1))
            #expect(
                filesUnder(directory + "/corrupt")
                    == ["\(id).env", "\(id).msg", "\(wrongID).env", "\(wrongID).msg"]
                    .sorted())
            #expect(try readFile(directory + "/corrupt/\(id).msg") == message)
            #expect(try spool.enumerate(.queue) == [otherID])
        }
    }

    @Test("a .msg whose size differs from the envelope goes to corrupt/")
    func sizeMismatch() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, _, message) = try await storeSample(spool)
            try writeFile(spool.messagePath(id, in: .queue), message + Array("appended".utf8))
            #expect(try spool.recover() == RecoveryReport(movedToCorrupt: 1))
            #expect(filesUnder(directory + "/corrupt") == ["\(id).env", "\(id).msg"])
        }
    }

    @Test("a half-moved message (hold or release interrupted) rejoins its .env")
    func halfMoved() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            // Holding: .msg already in hold/, .env still in queue/ → back to queue/.
            let (holding, _, holdingBytes) = try await storeSample(spool, tag: "holding")
            try rename(spool.messagePath(holding, in: .queue), spool.messagePath(holding, in: .hold))
            // Releasing: .msg already in queue/, .env still in hold/ → back to hold/.
            let (releasing, _, releasingBytes) = try await storeSample(spool, tag: "releasing")
            try spool.move(releasing, from: .queue, to: .hold)
            try rename(spool.messagePath(releasing, in: .hold), spool.messagePath(releasing, in: .queue))

            #expect(try spool.recover() == RecoveryReport(messagesRejoined: 2, queued: 1, held: 1))
            #expect(try spool.loadMessage(holding, in: .queue) == holdingBytes)
            #expect(try spool.loadMessage(releasing, in: .hold) == releasingBytes)
            #expect(
                filesUnder(directory).filter { $0.hasSuffix(".msg") }.sorted()
                    == [
                        "hold/\(releasing.shard)/\(releasing).msg", "queue/\(holding.shard)/\(holding).msg",
                    ].sorted())
        }
    }

    @Test("files in the wrong shard directory are put in the right one; strangers are left alone")
    func wrongShard() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, _, message) = try await storeSample(spool)
            let wrong = id.shard == "00" ? "01" : "00"
            try rename(spool.messagePath(id, in: .queue), directory + "/queue/\(wrong)/\(id).msg")
            try rename(spool.envelopePath(id, in: .queue), directory + "/queue/\(wrong)/\(id).env")
            try writeFile(directory + "/queue/\(wrong)/notes.txt", [1])
            #expect(try spool.recover() == RecoveryReport(queued: 1))
            #expect(try spool.loadMessage(id, in: .queue) == message)
            #expect(fileExists(directory + "/queue/\(wrong)/notes.txt"))
        }
    }

    @Test("everything at once, then a second run finds nothing to fix (checked in chunks of 1, 3, 2048)",
          arguments: [1, 3, Spool.recoveryChunk])
    func combined(chunk: Int) async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            var healthy: [QueueID: [UInt8]] = [:]
            for index in 0..<5 {
                let (id, _, bytes) = try await storeSample(spool, tag: "healthy \(index)")
                healthy[id] = bytes
            }
            let (held, _, heldBytes) = try await storeSample(spool, tag: "held")
            try spool.move(held, from: .queue, to: .hold)
            try writeFile(directory + "/tmp/leftover", [0])
            let (orphan, _, _) = try await storeSample(spool, tag: "orphan")
            try FileManager.default.removeItem(atPath: spool.envelopePath(orphan, in: .queue))
            let (noMessage, _, _) = try await storeSample(spool, tag: "no message")
            try FileManager.default.removeItem(atPath: spool.messagePath(noMessage, in: .queue))
            let (half, _, halfBytes) = try await storeSample(spool, tag: "half")
            try rename(spool.messagePath(half, in: .queue), spool.messagePath(half, in: .hold))
            healthy[half] = halfBytes

            var handed: [QueueID: (Envelope, Int64)] = [:]
            let pass = try spool.beginRecovery(chunk: chunk)
            #expect(pass.found == 9)
            var chunks = 0
            while try pass.checkNext(queued: { handed[$0.id] = ($0, $1) }) { chunks += 1 }
            #expect(chunks == (9 + chunk - 1) / chunk && pass.isDone)
            #expect(try pass.checkNext(queued: { _, _ in Issue.record("handed twice") }) == false)
            let first = try pass.finish()
            // The healthy queued messages, as they now are on disk, with their stamps;
            // nothing held, corrupt or removed.
            #expect(Set(handed.keys) == Set(healthy.keys))
            for (id, (envelope, stamp)) in handed {
                #expect(envelope == (try spool.loadEnvelope(id, in: .queue)))
                #expect(stamp == spool.envelopeStamp(id, in: .queue) && stamp > 0)
            }
            #expect(
                first
                    == RecoveryReport(
                        tmpRemoved: 1, orphanMessagesRemoved: 1, movedToCorrupt: 1, messagesRejoined: 1, queued: 6,
                        held: 1))
            let second = try spool.recover()
            #expect(second == RecoveryReport(queued: 6, held: 1))
            #expect(Set(try spool.enumerate(.queue)) == Set(healthy.keys))
            for (id, bytes) in healthy {
                #expect(try spool.loadMessage(id, in: .queue) == bytes)
            }
            #expect(try spool.loadMessage(held, in: .hold) == heldBytes)
            #expect(try spool.enumerate(.corrupt) == [noMessage])
        }
    }

    @Test("beside the server: messages held, deleted or half moved after the listing are not set aside")
    func besideServer() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            var ids: [QueueID] = []
            for index in 0..<12 { ids.append(try await storeSample(spool, tag: "m\(index)").0) }
            // Broken before the listing, last in the order: still set aside.
            try FileManager.default.removeItem(atPath: spool.messagePath(ids[11], in: .queue))
            let pass = try spool.beginRecovery(chunk: 4)
            var handed: [QueueID] = []
            #expect(try pass.checkNext(queued: { envelope, _ in handed.append(envelope.id) }, besideServer: true))
            #expect(handed == Array(ids[0..<4]))

            // Meanwhile the server and the postmaster work on the part not yet read (the
            // third chunk: the second is being read already): one message put on hold,
            // one deleted, one half moved to hold (`Spool.move` moves the envelope first).
            try spool.move(ids[8], from: .queue, to: .hold)
            try spool.remove(ids[9], from: .queue)
            try spool.ensureDirectory(for: ids[10], in: .hold)
            try FileIO.rename(spool.envelopePath(ids[10], in: .queue), spool.envelopePath(ids[10], in: .hold))
            while try pass.checkNext(queued: { envelope, _ in handed.append(envelope.id) }, besideServer: true) {}
            let report = try pass.finish()

            #expect(handed == Array(ids[0..<8]))
            #expect(report == RecoveryReport(movedToCorrupt: 1, messagesRejoined: 1, queued: 8, held: 2))
            #expect(try spool.enumerate(.corrupt) == [ids[11]])
            #expect(Set(try spool.enumerate(.hold)) == [ids[8], ids[10]])
            for id in [ids[8], ids[10]] { #expect(throws: Never.self) { try spool.loadMessage(id, in: .hold) } }
            #expect(spool.locate(ids[9]) == nil)
            #expect(try spool.recover() == RecoveryReport(queued: 8, held: 2))
        }
    }
}
