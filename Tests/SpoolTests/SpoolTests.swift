import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

@Suite("Spool")
struct SpoolTests {
    @Test("init creates the layout; a relative path is made absolute")
    func layout() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            #expect(spool.path == directory)
            for name in ["tmp", "queue", "hold", "corrupt"] {
                var isDirectory: ObjCBool = false
                #expect(FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory))
                #expect(isDirectory.boolValue)
            }
            #expect(fileExists(directory + "/spool.lock"))
            // Opening an existing spool again is fine.
            let again = try Spool(path: directory + "/")
            #expect(again.path == directory)
        }
    }

    @Test("init fails with an I/O error when the path cannot be a directory")
    func initFailure() throws {
        let directory = try SpoolFixtures.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeFile(directory + "/file", [1])
        #expect {
            try Spool(path: directory + "/file/spool")
        } throws: { error in
            (error as? SpoolError)?.isIOFailure == true
        }
    }

    @Test("store then load: bytes exact, envelope equal, files where the contract says")
    func commitAndLoad() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let message = SpoolFixtures.message(tag: "round trip", size: 10_000) + [0, 0xFF, 0x80, 13, 10]
            var envelope = SpoolFixtures.envelope(arrival: Date(timeIntervalSinceReferenceDate: 770_000_000.1234567))
            envelope.dsnRet = "FULL"
            envelope.recipients[0].notify = ["NEVER"]
            let stored = try await spool.store(message: message, envelope: envelope)
            let id = stored.id
            #expect(stored.size == message.count)
            #expect(
                stored.messageFile == MessageFileInfo(size: message.count, checksum: CRC32C.envelopeString(message)))
            #expect(stored.recipients == envelope.recipients)

            #expect(try spool.loadMessage(id, in: .queue) == message)
            #expect(try spool.loadEnvelope(id, in: .queue) == stored)
            #expect(spool.locate(id) == .queue)
            #expect(try spool.enumerate(.queue) == [id])
            #expect(
                filesUnder(directory) == [
                    "queue/\(id.shard)/\(id).env", "queue/\(id.shard)/\(id).msg", "spool.lock",
                ])
            #expect(spool.messagePath(id, in: .queue) == "\(directory)/queue/\(id.shard)/\(id).msg")
            #expect(spool.envelopePath(id, in: .hold) == "\(directory)/hold/\(id.shard)/\(id).env")
            #expect(spool.envelopePath(id, in: .corrupt) == "\(directory)/corrupt/\(id).env")
            // The .msg is the message exactly; the .env is the JSON the coder writes.
            #expect(try readFile(spool.messagePath(id, in: .queue)) == message)
            #expect(try readFile(spool.envelopePath(id, in: .queue)) == EnvelopeCoding.encode(stored))
        }
    }

    @Test("an empty message and the null reverse-path are stored faithfully")
    func emptyMessage() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            let stored = try await spool.store(message: [], envelope: SpoolFixtures.envelope(sender: ""))
            #expect(try spool.loadMessage(stored.id, in: .queue) == [])
            #expect(try spool.loadEnvelope(stored.id, in: .queue).sender == "")
        }
    }

    @Test("storing an id that is already queued is refused and changes nothing")
    func duplicateID() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, stored, message) = try await storeSample(spool)
            await #expect {
                _ = try await spool.store(message: [1, 2, 3], envelope: SpoolFixtures.envelope(id: id))
            } throws: { error in
                (error as? SpoolError)?.isAlreadyExists == true
            }
            #expect(try spool.loadEnvelope(id, in: .queue) == stored)
            #expect(try spool.loadMessage(id, in: .queue) == message)
            #expect(filesUnder(directory + "/tmp").isEmpty)
        }
    }

    @Test("checksum mismatch: loadMessage throws corrupt and moves the message to corrupt/")
    func checksumMismatch() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, stored, message) = try await storeSample(spool)
            var altered = message
            altered[altered.count / 2] ^= 0x20  // same size, one bit flipped
            let path = spool.messagePath(id, in: .queue)
            try writeFile(path, altered)
            #expect {
                try spool.loadMessage(id, in: .queue)
            } throws: { error in
                guard let error = error as? SpoolError else { return false }
                return error.isCorrupt && error.queueID == id && error.description.contains("checksum")
            }
            #expect(spool.locate(id) == .corrupt)
            #expect(filesUnder(directory + "/corrupt") == ["\(id).env", "\(id).msg"])
            #expect(filesUnder(directory + "/queue").isEmpty)
            #expect(try spool.loadEnvelope(id, in: .corrupt) == stored)
            #expect(try spool.enumerate(.corrupt) == [id])
            #expect(try spool.enumerate(.queue) == [])
        }
    }

    @Test("size mismatch at load is corrupt too")
    func sizeMismatch() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            let (id, _, message) = try await storeSample(spool)
            try writeFile(spool.messagePath(id, in: .queue), Array(message.dropLast(7)))
            #expect(throws: SpoolError.self) { try spool.loadMessage(id, in: .queue) }
            #expect(spool.locate(id) == .corrupt)
        }
    }

    @Test("an envelope that does not decode: loadEnvelope throws corrupt and moves it aside")
    func undecodableEnvelope() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, _, _) = try await storeSample(spool)
            try writeFile(spool.envelopePath(id, in: .queue), Array("{\"version\": 1, \"id\": ".utf8))
            #expect {
                try spool.loadEnvelope(id, in: .queue)
            } throws: { error in
                (error as? SpoolError)?.isCorrupt == true
            }
            #expect(filesUnder(directory + "/corrupt") == ["\(id).env", "\(id).msg"])
            // A second corrupt copy of the same id does not overwrite the first.
            let again = try await spool.store(message: [1, 2, 3], envelope: SpoolFixtures.envelope(id: id))
            try writeFile(spool.messagePath(id, in: .queue), [1, 2, 4])
            #expect(throws: SpoolError.self) { try spool.loadMessage(id, in: .queue, envelope: again) }
            #expect(filesUnder(directory + "/corrupt") == ["\(id).1.env", "\(id).1.msg", "\(id).env", "\(id).msg"])
            #expect(try spool.enumerate(.corrupt) == [id])
            #expect(try readFile(directory + "/corrupt/\(id).1.msg") == [1, 2, 4])
        }
    }

    @Test("loading something that is not there is notFound")
    func notFound() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            let id = QueueID.generate()
            #expect(throws: SpoolError.self) { try spool.loadEnvelope(id, in: .queue) }
            do {
                _ = try spool.loadMessage(id, in: .hold)
                Issue.record("expected an error")
            } catch let error as SpoolError {
                #expect(error.isNotFound)
            }
            #expect(spool.locate(id) == nil)
        }
    }

    @Test("update replaces the envelope atomically and leaves no temporary file")
    func update() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, stored, message) = try await storeSample(spool)
            var changed = stored
            changed.recipients[0].state = .delivered
            changed.recipients[0].attempts = 1
            changed.recipients[0].lastReply = "250 2.0.0 Ok: queued as ABC"
            changed.recipients[1].state = .deferred
            changed.recipients[1].attempts = 1
            changed.recipients[1].nextAttempt = Date(timeIntervalSince1970: 1_800_000_000.25)
            try spool.update(changed, in: .queue)
            #expect(try spool.loadEnvelope(id, in: .queue) == changed)
            #expect(try spool.loadMessage(id, in: .queue) == message)
            #expect(filesUnder(directory + "/tmp").isEmpty)

            // Not in that queue (any more): notFound, and nothing is created.
            #expect(throws: SpoolError.self) { try spool.update(changed, in: .hold) }
            #expect(!fileExists(spool.envelopePath(id, in: .hold)))
        }
    }

    @Test("hold and release move both files; the message stays intact")
    func holdAndRelease() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, stored, message) = try await storeSample(spool)
            let (other, _, _) = try await storeSample(spool, tag: "other")

            try spool.move(id, from: .queue, to: .hold)
            #expect(spool.locate(id) == .hold)
            #expect(try spool.enumerate(.hold) == [id])
            #expect(try spool.enumerate(.queue) == [other])
            #expect(fileExists(spool.messagePath(id, in: .hold)))
            #expect(!fileExists(spool.messagePath(id, in: .queue)))
            #expect(try spool.loadMessage(id, in: .hold) == message)
            #expect(try spool.loadEnvelope(id, in: .hold) == stored)

            // Moving again from where it no longer is: notFound, nothing changes.
            #expect {
                try spool.move(id, from: .queue, to: .hold)
            } throws: { error in
                (error as? SpoolError)?.isNotFound == true
            }
            try spool.move(id, from: .hold, to: .hold)  // no-op

            try spool.move(id, from: .hold, to: .queue)
            #expect(spool.locate(id) == .queue)
            #expect(try spool.enumerate(.queue) == [id, other].sorted())
            #expect(try spool.loadMessage(id, in: .queue) == message)
            #expect(filesUnder(directory + "/hold").isEmpty)

            // A postmaster can move a message to corrupt/ and back.
            try spool.move(id, from: .queue, to: .corrupt)
            #expect(filesUnder(directory + "/corrupt") == ["\(id).env", "\(id).msg"])
            try spool.move(id, from: .corrupt, to: .queue)
            #expect(try spool.loadMessage(id, in: .queue) == message)
        }
    }

    @Test("move finishes an interrupted move and refuses one whose message is gone")
    func moveEdgeCases() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, _ in
            // .msg already in hold (a crash between the two renames): holding completes it.
            let (id, _, message) = try await storeSample(spool)
            try rename(spool.messagePath(id, in: .queue), spool.messagePath(id, in: .hold))
            try spool.move(id, from: .queue, to: .hold)
            #expect(try spool.loadMessage(id, in: .hold) == message)

            // .msg missing everywhere: not moved, reported as corrupt.
            let (lost, _, _) = try await storeSample(spool, tag: "lost")
            try FileManager.default.removeItem(atPath: spool.messagePath(lost, in: .queue))
            #expect {
                try spool.move(lost, from: .queue, to: .hold)
            } throws: { error in
                (error as? SpoolError)?.isCorrupt == true
            }
            #expect(spool.locate(lost) == .queue)
            // …but it can still be put aside.
            try spool.move(lost, from: .queue, to: .corrupt)
            #expect(spool.locate(lost) == .corrupt)
        }
    }

    @Test("remove unlinks both files; removing again is notFound")
    func remove() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let (id, _, _) = try await storeSample(spool)
            let (kept, _, _) = try await storeSample(spool, tag: "kept")
            try spool.remove(id, from: .queue)
            #expect(spool.locate(id) == nil)
            #expect(!fileExists(spool.messagePath(id, in: .queue)))
            #expect(try spool.enumerate(.queue) == [kept])
            #expect {
                try spool.remove(id, from: .queue)
            } throws: { error in
                (error as? SpoolError)?.isNotFound == true
            }
            try spool.move(kept, from: .queue, to: .hold)
            try spool.remove(kept, from: .hold)
            #expect(filesUnder(directory).filter { $0 != "spool.lock" }.isEmpty)
        }
    }

    @Test("enumerate returns ids sorted by arrival whatever the store order, and ignores strangers")
    func enumerateSorted() async throws {
        try await SpoolFixtures.withTemporarySpool { spool, directory in
            let base = Date(timeIntervalSince1970: 1_650_000_000)
            var expected: [QueueID] = []
            for offset in (0..<40).shuffled() {
                let (id, _, _) = try await storeSample(
                    spool, tag: "m\(offset)", size: 200, arrival: base + Double(offset))
                expected.append(id)
            }
            expected.sort()
            #expect(expected.map { $0.timestamp } == (0..<40).map { SpoolDate.normalized(base + Double($0)) })
            // Files that are not committed messages are not listed.
            let id = QueueID.generate()
            try FileManager.default.createDirectory(
                atPath: directory + "/queue/" + id.shard, withIntermediateDirectories: true)
            try writeFile(spool.messagePath(id, in: .queue), [1])  // .msg without .env: not committed
            try writeFile(directory + "/queue/README", [1])
            try FileManager.default.createDirectory(atPath: directory + "/queue/00", withIntermediateDirectories: true)
            try writeFile(directory + "/queue/00/not-an-id.env", [1])
            #expect(try spool.enumerate(.queue) == expected)
            #expect(try spool.enumerate(.hold) == [])
        }
    }
}
