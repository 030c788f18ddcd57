import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The running journal of this spool, if `startJournal` was called (the server only).
final class JournalHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var value: SpoolJournal?

    var journal: SpoolJournal? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func set(_ journal: SpoolJournal?) {
        lock.lock()
        value = journal
        lock.unlock()
    }
}

/// What `includeJournalSegments` read, loaded at the first use.
final class JournalSnapshotHolder: @unchecked Sendable {
    private let lock = NSLock()
    private var load: (@Sendable () -> [QueueID: (envelope: [UInt8], message: [UInt8], segment: String)])?
    private var loaded: [QueueID: (envelope: [UInt8], message: [UInt8], segment: String)]?

    func enable(_ load: @escaping @Sendable () -> [QueueID: (envelope: [UInt8], message: [UInt8], segment: String)]) {
        lock.lock()
        self.load = load
        loaded = nil
        lock.unlock()
    }

    var messages: [QueueID: (envelope: [UInt8], message: [UInt8], segment: String)]? {
        lock.lock()
        defer { lock.unlock() }
        if loaded == nil, let load { loaded = load() }
        return loaded
    }
}

extension Spool {
    /// `<spool>/journal`.
    public var journalDirectory: String { path + "/journal" }

    var tombstoneDirectory: String { journalDirectory + "/removed" }

    /// `journal/write-out/<id>`: empty files by which another process (`herald queue hold`
    /// and the like) asks the running server to write those pending messages out now
    /// rather than when their segment retires. The server removes each once done.
    var writeOutRequestDirectory: String { journalDirectory + "/write-out" }

    /// Replays what an earlier process left in the journal (see SpoolJournal), then
    /// starts this process's journal: from now on `store` commits through it. Call once,
    /// at start-up, before `beginRecovery` and before anything is stored; without
    /// `Configuration.journal` (or with `replayOnly`) it only replays.
    @discardableResult
    public func startJournal(replayOnly: Bool = false) throws -> JournalReplayReport {
        precondition(journalHolder.journal == nil, "Internal inconsistency: the spool journal started twice")
        if try FileIO.makeDirectory(journalDirectory, owner: owner) {
            try FileIO.syncDirectory(path)
        }
        let settings = configuration.journal ?? JournalSettings()
        let bootID = settings.bootID ?? JournalSettings.currentBootID()
        let (report, lastSequence) = try replayJournal(bootID: bootID)
        if report.segments > 0 {
            logger.notice("spool journal replayed", metadata: [
                "segments": "\(report.segments)", "live": "\(report.live)",
                "rewritten": "\(report.rewritten)", "restored": "\(report.restored)",
            ])
        }
        guard configuration.journal != nil, !replayOnly else { return report }
        var started = settings
        started.bootID = bootID
        let journal = try SpoolJournal(spool: self, settings: started, firstSequence: lastSequence + 1, logger: logger)
        journal.start()
        journalHolder.set(journal)
        return report
    }

    /// Flushes and retires every segment, then stops the journal's threads; later stores
    /// commit file by file. Called at a graceful stop.
    public func stopJournal() {
        guard let journal = journalHolder.journal else { return }
        journal.stop()
        journalHolder.set(nil)
    }

    /// The store path with the journal: the M frame appended, and the return only once a
    /// flush covered it. No file is made: the message is pending in the journal until it
    /// is removed (delivered), or written out (updated, moved, or its segment retired).
    func storeJournaled(_ journal: SpoolJournal, message: [UInt8], envelope: Envelope,
                        envelopeBytes: [UInt8]) throws -> Envelope {
        let position = try appendJournaled(journal, message: message, envelope: envelope, envelopeBytes: envelopeBytes)
        do {
            try journal.waitDurable(position)
        } catch {
            // Not known to be durable, so not acknowledged: take it back out.
            journal.noteRemoved(envelope.id)
            throw error
        }
        return envelope
    }

    /// Refuses an id already queued (or finished), then appends the M frame; returns the
    /// position a flush must cover before the message may be acknowledged.
    func appendJournaled(_ journal: SpoolJournal, message: [UInt8], envelope: Envelope,
                         envelopeBytes: [UInt8]) throws -> UInt64 {
        let id = envelope.id
        if FileIO.exists(envelopePath(id, in: .queue)) || FileIO.exists(envelopePath(id, in: .hold))
            || (envelope.campaign != nil && FileIO.exists(finishedPath(id)))
        {
            throw SpoolError.alreadyExists(id)
        }
        return try journal.appendMessage(id, envelope: envelopeBytes, message: message)
    }

    /// The pending message `id` (nil if it is not pending).
    func pendingMessage(_ id: QueueID) -> (envelope: [UInt8], message: [UInt8])? {
        if let journal = journalHolder.journal { return journal.read(id) }
        return journalOnly(id)
    }

    /// Whether this server's journal holds `id` with no files yet: removing it is only a D
    /// frame appended (no flush), cheap enough to do on the caller's thread.
    public func isPendingInJournal(_ id: QueueID) -> Bool {
        journalHolder.journal?.isPending(id) ?? false
    }

    func isPending(_ id: QueueID) -> Bool {
        if let journal = journalHolder.journal { return journal.isPending(id) }
        return journalOnly(id) != nil
    }

    /// Writes a pending message out as files in queue/, with `envelope` instead of the
    /// journal's when given: `durable`, each file is fsynced, then the directory; without,
    /// the caller makes them durable (a retiring segment: one syncfs for all its messages,
    /// before the segment that still holds them goes). The caller holds the message's
    /// lock. Returns false if it was not pending.
    @discardableResult
    func writeOutLocked(_ id: QueueID, envelope replacement: [UInt8]? = nil, durable: Bool = true) throws -> Bool {
        guard let journal = journalHolder.journal, let (envelope, message) = journal.read(id) else { return false }
        let directory = directory(of: id, in: .queue)
        try ensureShardDirectory(directory, in: .queue)
        let base = temporaryName(for: id)
        try FileIO.writeNewFile(base + ".msg", message, sync: durable, owner: owner)
        do {
            try FileIO.writeNewFile(base + ".env", replacement ?? envelope, sync: durable, owner: owner)
        } catch {
            FileIO.unlinkQuietly(base + ".msg")
            throw error
        }
        do {
            try renameIntoShard(base + ".msg", messagePath(id, in: .queue), directory: directory, queue: .queue)
            try FileIO.rename(base + ".env", envelopePath(id, in: .queue))
        } catch {
            FileIO.unlinkQuietly(base + ".msg")
            FileIO.unlinkQuietly(base + ".env")
            FileIO.unlinkQuietly(messagePath(id, in: .queue))
            throw error
        }
        if durable { try FileIO.syncDirectory(directory) }
        journal.forget(id)
        return true
    }

    /// For a retiring segment: writes out those of `ids` still pending, on several threads,
    /// without flushing them (see `writeOutLocked`). One that could not be stays pending.
    func writeOut(_ ids: [QueueID]) {
        forEachConcurrently(ids) { [self] id in
            do {
                _ = try MessageLock.withLock(lockPath, slot: id.lockSlot) {
                    try writeOutLocked(id, durable: false)
                }
            } catch {
                logger.error("spool journal: cannot write out a message", metadata: ["queue_id": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// In the server: writes out (durably) each pending message another process asked for
    /// in `journal/write-out/`, then removes the request; a request for a message not
    /// pending (written out or removed meanwhile) is just removed.
    func serveWriteOutRequests() {
        guard let names = try? FileIO.list(writeOutRequestDirectory), !names.isEmpty else { return }
        for name in names {
            if let id = QueueID(name) {
                do {
                    _ = try MessageLock.withLock(lockPath, slot: id.lockSlot) { try writeOutLocked(id) }
                } catch {
                    logger.error("spool journal: cannot write out a message on request", metadata: ["queue_id": "\(id)", "error": "\(error)"])
                    continue   // asked again at the next look
                }
            }
            FileIO.unlinkQuietly(writeOutRequestDirectory + "/" + name)
        }
    }

    /// After `remove`'s unlinks: a D frame when the journal vouches for the message (so a
    /// replay after a reboot does not put it back), or, in a process without the journal
    /// (the CLI) while segments exist, a tombstone for a durable removal.
    func noteRemovedFromJournal(_ id: QueueID, durable: Bool) throws {
        if let journal = journalHolder.journal {
            if let position = journal.noteRemoved(id), durable {
                try journal.waitDurable(position)
            }
            return
        }
        guard durable, hasJournalSegments() else { return }
        if try FileIO.makeDirectory(tombstoneDirectory, owner: owner) {
            try FileIO.syncDirectory(journalDirectory)
        }
        let tombstone = tombstoneDirectory + "/" + id.rawValue
        FileIO.unlinkQuietly(tombstone)
        try FileIO.writeNewFile(tombstone, [], owner: owner)
        try FileIO.syncDirectory(tombstoneDirectory)
    }

    /// Whether `journal/` holds segments (a server with `[spool] journal = true` runs, or
    /// one died): its pending messages are invisible to other processes until written out.
    public func hasJournalSegments() -> Bool {
        ((try? FileIO.list(journalDirectory)) ?? []).contains { $0.hasSuffix(".jnl") }
    }

    /// Runs `body` for every id on up to 16 threads.
    private func forEachConcurrently(_ ids: [QueueID], _ body: @escaping @Sendable (QueueID) -> Void) {
        guard !ids.isEmpty else { return }
        let workers = min(16, ids.count)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var index = worker
            while index < ids.count {
                body(ids[index])
                index += workers
            }
        }
    }

    /// What the segments in `journal/` hold, oldest first.
    struct SegmentReading {
        struct Found {
            var id: QueueID
            var envelope: [UInt8]
            var message: [UInt8]
            var sameBoot: Bool
            var campaign: Bool
            /// The segment's file name.
            var segment: String
        }
        var names: [String] = []
        var segments = 0
        var lastSequence: UInt64 = 0
        var found: [Found] = []
        var done = Set<QueueID>()
        var tombstones = Set<QueueID>()
    }

    func readSegments(bootID: String) throws -> SegmentReading {
        var reading = SegmentReading()
        reading.names = try FileIO.list(journalDirectory).filter { $0.hasSuffix(".jnl") && $0.count == 20 }.sorted()
        for name in (try? FileIO.list(tombstoneDirectory)) ?? [] {
            if let id = QueueID(name) { reading.tombstones.insert(id) }
        }
        for name in reading.names {
            if let sequence = UInt64(name.prefix(16), radix: 16) { reading.lastSequence = max(reading.lastSequence, sequence) }
            guard let bytes = try FileIO.readFile(journalDirectory + "/" + name) else { continue }
            reading.segments += 1
            let frames = JournalFrame.parse(bytes)
            guard let header = frames.first, header.kind == .header else {
                logger.warning("spool journal: a segment without its header is ignored", metadata: ["segment": "\(name)"])
                continue
            }
            let sameBoot = String(decoding: bytes[header.a], as: UTF8.self) == bootID
            for frame in frames.dropFirst() {
                switch frame.kind {
                case .message:
                    let envelopeBytes = Array(bytes[frame.a])
                    guard let envelope = try? EnvelopeCoding.decode(envelopeBytes) else {
                        logger.error("spool journal: an envelope that does not decode is skipped", metadata: ["segment": "\(name)"])
                        continue
                    }
                    reading.found.append(SegmentReading.Found(
                        id: envelope.id, envelope: envelopeBytes, message: Array(bytes[frame.b]),
                        sameBoot: sameBoot, campaign: envelope.campaign != nil, segment: name))
                case .done:
                    if let id = QueueID(String(decoding: bytes[frame.a], as: UTF8.self)) { reading.done.insert(id) }
                case .header:
                    break
                }
            }
        }
        return reading
    }

    /// Lets this process (`herald queue …`) see the messages that a running server holds
    /// only in its journal: `enumerate(.queue)`, `locate`, `loadEnvelope` and
    /// `loadMessage` in queue/ then show them as the segments are at the first read.
    /// They cannot be changed from here (hold, delete and retry find no files) until the
    /// server writes them out.
    public func includeJournalSegments() {
        journalSnapshot.enable { [self] in
            guard let reading = try? readSegments(bootID: "") else { return [:] }
            var messages: [QueueID: (envelope: [UInt8], message: [UInt8], segment: String)] = [:]
            for item in reading.found where !reading.done.contains(item.id) && !reading.tombstones.contains(item.id) {
                messages[item.id] = (item.envelope, item.message, item.segment)
            }
            return messages
        }
    }

    /// Whether `id` is, for this process (which included the segments), a message that a
    /// running server holds only in its journal: listed and shown, not changeable here.
    public func isOnlyInJournal(_ id: QueueID) -> Bool {
        journalOnly(id) != nil
    }

    /// Waits until the segments that hold `ids` now are gone: the server retired them, so
    /// each of those messages has files or is gone (delivered). (Only those: the current
    /// segment of an idle server holds no message and is not retired.) Then reads the
    /// segments afresh (see `includeJournalSegments`). Returns false if some were still
    /// there after `timeout` seconds (no server running to retire them, or a full disk).
    ///
    /// It first asks the server to write them out at once (`journal/write-out/`), which a
    /// running server does within about a quarter of a second; the wait also ends when
    /// every request has been served.
    public func waitForJournalWriteOut(of ids: [QueueID], timeout: TimeInterval) -> Bool {
        let wanted = Set(ids)
        let names = Set(wanted.compactMap { journalSnapshot.messages?[$0]?.segment })
        var requests: [String] = []
        if (try? FileIO.makeDirectory(writeOutRequestDirectory, owner: owner)) != nil {
            for id in wanted {
                let request = writeOutRequestDirectory + "/" + id.rawValue
                if FileIO.exists(request) || (try? FileIO.writeNewFile(request, [], sync: false, owner: owner)) != nil {
                    requests.append(request)
                }
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        var left = Array(names)
        while !left.isEmpty {
            left = left.filter { FileIO.exists(journalDirectory + "/" + $0) }
            if left.isEmpty || (requests.count == wanted.count && !requests.contains(where: FileIO.exists)) { break }
            if Date() >= deadline {
                for request in requests { FileIO.unlinkQuietly(request) }
                return false
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        includeJournalSegments()
        return true
    }

    /// A message only in the journal's segments, for a process that included them (files,
    /// once written out, win).
    func journalOnly(_ id: QueueID) -> (envelope: [UInt8], message: [UInt8])? {
        guard let found = journalSnapshot.messages?[id] else { return nil }
        if FileIO.exists(envelopePath(id, in: .queue)) || FileIO.exists(envelopePath(id, in: .hold))
            || FileIO.exists(envelopePath(id, in: .corrupt)) { return nil }
        return (found.envelope, found.message)
    }

    /// Reads the segments an earlier process left (oldest first), puts right what a
    /// reboot may have lost, makes the files durable and removes the segments and
    /// tombstones. Returns the report and the highest segment sequence seen.
    func replayJournal(bootID: String) throws -> (JournalReplayReport, UInt64) {
        var report = JournalReplayReport()
        let reading = try readSegments(bootID: bootID)
        let (names, found, done, tombstones) = (reading.names, reading.found, reading.done, reading.tombstones)
        report.segments = reading.segments
        let lastSequence = reading.lastSequence
        for item in found {
            let id = item.id
            if done.contains(id) || tombstones.contains(id) { continue }
            if item.campaign && isFinished(id) { continue }
            let place = locate(id)
            if place == .corrupt { continue }
            // Missing everywhere: pending when the process died (a removal leaves a D
            // frame or a tombstone), so it is written out. Present after a reboot: what
            // the page cache lost is rewritten.
            if place == nil || !item.sameBoot {
                if try repairFromJournal(id, in: place ?? .queue, envelope: item.envelope, message: item.message,
                                         whole: place == nil) {
                    if place == nil { report.restored += 1 } else { report.rewritten += 1 }
                }
            }
            report.live += 1
        }
        // What the dead process wrote (and what was repaired) is made durable in one go
        // before the segments that vouch for it are removed.
        if report.live > 0 { try FileIO.syncFileSystem(path) }
        for name in names {
            FileIO.unlinkQuietly(journalDirectory + "/" + name)
        }
        if !tombstones.isEmpty {
            for id in tombstones { FileIO.unlinkQuietly(tombstoneDirectory + "/" + id.rawValue) }
        }
        if !names.isEmpty || !tombstones.isEmpty { try FileIO.syncDirectory(journalDirectory) }
        return (report, lastSequence)
    }

    /// Rewrites from a journal frame what is missing or does not match in `queue`
    /// (`whole`: both files are missing). Returns whether it wrote anything.
    private func repairFromJournal(_ id: QueueID, in queue: SpoolQueue, envelope: [UInt8], message: [UInt8],
                                   whole: Bool) throws -> Bool {
        try ensureShardDirectory(directory(of: id, in: queue), in: queue)
        var wrote = false
        let messageFile = messagePath(id, in: queue)
        if whole || (try? FileIO.readFile(messageFile)) != message {
            try replaceFile(messageFile, id: id, bytes: message, suffix: ".msg")
            wrote = true
        }
        let envelopeFile = envelopePath(id, in: queue)
        let current = (try? FileIO.readFile(envelopeFile)) ?? nil
        let sound = current.flatMap { try? EnvelopeCoding.decode($0) }.map { $0.id == id } ?? false
        if whole || !sound {
            try replaceFile(envelopeFile, id: id, bytes: envelope, suffix: ".env")
            wrote = true
        }
        return wrote
    }
}
