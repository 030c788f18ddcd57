import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Start-up recovery: puts the spool back into the state the invariants describe after a
/// crash, a power cut, or an interrupted postmaster command.
///
/// Rules (the `.env`'s location is the truth):
/// 1. tmp/: every file is garbage unless it belongs to another process that is still
///    running and is younger than ``Spool/temporaryGracePeriod`` (a `herald queue`
///    command writing an update right now). Garbage is removed.
/// 2. A `.msg` with no `.env` in queue/ or hold/ was never acknowledged: removed (unless
///    an `<id>.env` sits in corrupt/, then the `.msg` joins it there).
/// 3. A `.msg` whose `.env` is in the other live queue (hold vs queue) is moved to follow
///    its `.env` (an interrupted hold/release): `messagesRejoined`.
/// 4. An `.env` that does not decode, names another id or an unknown version, or whose
///    `.msg` is missing or has a different size than `messageFile.size`, is moved to
///    corrupt/ with its `.msg` if present: `movedToCorrupt`. Nothing is deleted.
/// 5. Files in the wrong shard directory are moved to the right one; duplicate copies
///    (which only manual copying can produce) are moved to corrupt/, preferring to keep
///    the one in hold/ (a postmaster's hold wins over delivery).
/// Unknown file names inside queue/ and hold/ are logged and left alone.
///
/// Checksums are not verified here (that would read the whole spool); `loadMessage`
/// verifies them before each delivery. Directory entries changed by recovery are fsynced
/// once per directory at the end.
extension Spool {
    /// How long a tmp/ file of another live process is left alone by `recover()`.
    public static let temporaryGracePeriod: TimeInterval = 600

    /// Run at start-up, before serving. See the rules above.
    ///
    /// `queued` is called, in queue id order, with every healthy message of `queue/` as
    /// recovery decoded it and its envelope's ``envelopeStamp(_:in:)`` taken before the
    /// read, so that the server can index the queue without reading every envelope a
    /// second time (a later change to the file shows as a different stamp). A caller
    /// that needs the count found first, or the check in steps, uses ``beginRecovery(chunk:)``.
    public func recover(queued: (Envelope, Int64) -> Void = { _, _ in }) throws -> RecoveryReport {
        let pass = try beginRecovery()
        while try pass.checkNext(queued: queued) {}
        return try pass.finish()
    }

    /// The first part of ``recover(queued:)``: tmp/ cleared (rule 1) and queue/ and
    /// hold/ listed. The returned pass checks the messages it found, oldest first, a
    /// chunk at a time; the server delivers the oldest while the pass checks the rest.
    public func beginRecovery(chunk: Int = Spool.recoveryChunk) throws -> RecoveryPass {
        var report = RecoveryReport()
        report.tmpRemoved = try removeTemporaryGarbage()

        let clock = ContinuousClock()
        let began = clock.now
        var found: [QueueID: FoundFiles] = [:]
        for queue in [SpoolQueue.queue, .hold] {
            let top = directory(of: queue)
            for shard in try FileIO.list(top) {
                let shardPath = top + "/" + shard
                guard Spool.isShardName(shard), FileIO.isDirectory(shardPath) else {
                    logger.warning("recovery: unexpected entry left alone", metadata: ["path": "\(shardPath)"])
                    continue
                }
                for (name, isRegularFile) in try FileIO.listEntries(shardPath) {
                    let file = shardPath + "/" + name
                    guard let (id, kind) = Spool.parseFileName(name), isRegularFile else {
                        logger.warning("recovery: unexpected entry left alone", metadata: ["path": "\(file)"])
                        continue
                    }
                    found[id, default: FoundFiles()].add(queue: queue, kind: kind, shard: shard, id: id, path: file,
                                                         directory: shardPath)
                }
            }
        }
        let messages = found.sorted { $0.key < $1.key }
        found = [:]
        return RecoveryPass(spool: self, messages: messages, chunk: max(1, chunk), report: report, began: began,
                            listed: clock.now)
    }

    /// The files of one id. A million queued messages are found before any is looked
    /// at, so the usual case, a file in its own shard directory, costs a bit, not a path.
    fileprivate struct FoundFiles {
        struct Location {
            var queue: SpoolQueue
            var path: String
            var directory: String
        }
        /// Files in their own shard directory of queue/ or hold/: bit 0 queue/ `.env`,
        /// 1 queue/ `.msg`, 2 hold/ `.env`, 3 hold/ `.msg`.
        private var inPlace: UInt8 = 0
        /// Files in another shard directory (moved by hand), with their paths.
        private var misplaced: [(location: Location, kind: Spool.FileKind)] = []

        mutating func add(queue: SpoolQueue, kind: Spool.FileKind, shard: String, id: QueueID, path: String,
                          directory: String) {
            if shard == id.shard {
                inPlace |= Self.bit(queue, kind)
            } else {
                misplaced.append((Location(queue: queue, path: path, directory: directory), kind))
            }
        }

        private static func bit(_ queue: SpoolQueue, _ kind: Spool.FileKind) -> UInt8 {
            1 << ((queue == .hold ? 2 : 0) + (kind == .envelope ? 0 : 1))
        }

        /// The live queue whose `.env` and `.msg` are both in place, when the id has just
        /// those two files (the usual case, which recovery reads ahead).
        var simpleQueue: SpoolQueue? {
            guard misplaced.isEmpty else { return nil }
            switch inPlace {
            case Self.bit(.queue, .envelope) | Self.bit(.queue, .message): return .queue
            case Self.bit(.hold, .envelope) | Self.bit(.hold, .message): return .hold
            default: return nil
            }
        }

        /// The files of `id` as they lie now: those in place that exist, and those listed
        /// elsewhere that are still there (another process may have moved some since the
        /// listing: `herald queue hold`, the postmaster API).
        func refreshed(_ id: QueueID, in spool: Spool) -> FoundFiles {
            var now = FoundFiles()
            for queue in [SpoolQueue.queue, .hold] {
                if FileIO.exists(spool.envelopePath(id, in: queue)) { now.inPlace |= Self.bit(queue, .envelope) }
                if FileIO.exists(spool.messagePath(id, in: queue)) { now.inPlace |= Self.bit(queue, .message) }
            }
            now.misplaced = misplaced.filter { FileIO.exists($0.location.path) }
            return now
        }

        /// The files of one kind, those in place first (queue/, then hold/).
        func locations(_ kind: Spool.FileKind, of id: QueueID, in spool: Spool) -> [Location] {
            var found: [Location] = []
            for queue in [SpoolQueue.queue, .hold] where inPlace & Self.bit(queue, kind) != 0 {
                found.append(Location(queue: queue,
                                      path: kind == .envelope ? spool.envelopePath(id, in: queue)
                                                              : spool.messagePath(id, in: queue),
                                      directory: spool.directory(of: id, in: queue)))
            }
            return found + misplaced.filter { $0.kind == kind }.map(\.location)
        }
    }

    /// A duration as seconds with three decimals, for the log.
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.3f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// Messages read ahead at a time: enough to keep every core busy, few enough that
    /// their decoded envelopes take little memory.
    public static let recoveryChunk = 2048

    /// What rule 4 reads of a message: its envelope (decoded and checked, or what is wrong
    /// with it), the envelope's stamp, and the message file's size (nil: missing).
    fileprivate struct Reading {
        var envelope: Envelope?
        var problem: String?
        var stamp: Int64 = 0
        var messageSize: Int?
    }

    /// Reads the envelope and the message file's size of `id` in `queue`, as they lie:
    /// through `directory`, its shard directory opened, when given. Touches nothing: safe
    /// on any thread.
    fileprivate func read(_ id: QueueID, in queue: SpoolQueue, directory: Int32? = nil) throws -> Reading {
        var reading = Reading()
        let file: (bytes: [UInt8], modified: Int64)?
        if let directory {
            file = try id.withFileName(".env") { name in
                try FileIO.readFileStamped(in: directory, name, path: envelopePath(id, in: queue))
            }
        } else {
            file = try FileIO.readFileStamped(envelopePath(id, in: queue))
        }
        if let (bytes, stamp) = file {
            reading.stamp = stamp
            do {
                let decoded = try EnvelopeCoding.decode(bytes)
                reading.problem = Spool.problem(with: decoded, expected: id)
                reading.envelope = decoded
            } catch {
                reading.problem = "envelope does not decode: \(error)"
            }
        } else {
            reading.problem = "envelope vanished during recovery"
        }
        guard reading.problem == nil else { return reading }
        if let directory {
            reading.messageSize = try id.withFileName(".msg") { name in
                try FileIO.fileSize(in: directory, name, path: messagePath(id, in: queue))
            }
        } else {
            reading.messageSize = try FileIO.fileSize(messagePath(id, in: queue))
        }
        return reading
    }

    /// ``read(_:in:)`` for the messages of `chunk` whose two files are in place, on every
    /// core; nil for the others (recovery reads them itself once it has moved their files).
    fileprivate func readAhead(_ chunk: ArraySlice<(key: QueueID, value: FoundFiles)>, _ shards: ShardDirectories)
        -> [Result<Reading, any Error>?] {
        let work = chunk.map { id, files in files.simpleQueue.map { (id, $0) } }
        let results = ResultSlots<Reading>(count: work.count)
        let stripes = min(max(ProcessInfo.processInfo.activeProcessorCount, 1), 8, max(work.count, 1))
        DispatchQueue.concurrentPerform(iterations: stripes) { stripe in
            for index in stride(from: stripe, to: work.count, by: stripes) {
                guard let (id, queue) = work[index] else { continue }
                results.set(index, Result { try read(id, in: queue, directory: shards.descriptor(of: id, in: queue)) })
            }
        }
        return results.take()
    }

    /// Checks one message and puts it right. `relist`: the server runs beside the check
    /// (see ``RecoveryPass``), so anything but the usual case is looked at again as it
    /// lies now, not as the listing found it.
    fileprivate func recoverMessage(
        _ id: QueueID, _ listed: FoundFiles, reading listedReading: Result<Reading, any Error>?, relist: Bool,
        report: inout RecoveryReport, touched: inout Set<String>, queued: (Envelope, Int64) -> Void
    ) throws {
        // The usual case: the two files in place, read ahead, sound. Nothing to put right.
        if let queue = listed.simpleQueue, case .success(let read)? = listedReading, read.problem == nil,
           let envelope = read.envelope, read.messageSize == envelope.messageFile.size {
            recovered(envelope, stamp: read.stamp, in: queue, report: &report, queued: queued)
            return
        }
        let files = relist ? listed.refreshed(id, in: self) : listed
        let reading = relist ? nil : listedReading
        let envelopes = files.locations(.envelope, of: id, in: self)
        // Rule 2: never acknowledged.
        if envelopes.isEmpty {
            // Nothing left at all: gone since the listing (delivered, deleted).
            guard !files.locations(.message, of: id, in: self).isEmpty else { return }
            if FileIO.exists(envelopePath(id, in: .corrupt)) {
                // Its envelope was put aside (e.g. by hand): keep the pair together there.
                for message in files.locations(.message, of: id, in: self) {
                    try moveAside(
                        id, envelope: nil, message: message, reason: "envelope is in corrupt/", touched: &touched)
                    report.movedToCorrupt += 1
                }
                return
            }
            for message in files.locations(.message, of: id, in: self) {
                if try FileIO.unlinkIfPresent(message.path) {
                    touched.insert(message.directory)
                }
            }
            report.orphanMessagesRemoved += 1
            logger.warning("recovery: removed unacknowledged message", metadata: ["queue_id": "\(id)"])
            return
        }

        // Rule 5: one envelope wins (hold before queue, canonical path first).
        let ranked = envelopes.sorted { a, b in
            let aRank = (a.queue == .hold ? 0 : 2) + (a.path == envelopePath(id, in: a.queue) ? 0 : 1)
            let bRank = (b.queue == .hold ? 0 : 2) + (b.path == envelopePath(id, in: b.queue) ? 0 : 1)
            return aRank < bRank
        }
        let queue = ranked[0].queue
        for extra in ranked.dropFirst() {
            try moveAside(id, envelope: extra, message: nil, reason: "duplicate envelope", touched: &touched)
            report.movedToCorrupt += 1
        }
        let envelopeFile = envelopePath(id, in: queue)
        let envelopeLocation = FoundFiles.Location(
            queue: queue, path: envelopeFile, directory: directory(of: id, in: queue))
        if ranked[0].path != envelopeFile {
            try ensureDirectory(for: id, in: queue)
            try FileIO.rename(ranked[0].path, envelopeFile)
            touched.insert(ranked[0].directory)
            touched.insert(envelopeLocation.directory)
        }

        // Pick the message copy to keep: the one next to the envelope, else one elsewhere.
        let messageFile = messagePath(id, in: queue)
        var messages = files.locations(.message, of: id, in: self)
        let keptIndex =
            messages.firstIndex { $0.path == messageFile }
            ?? messages.firstIndex { $0.queue == queue }
            ?? messages.indices.first
        let kept = keptIndex.map { messages.remove(at: $0) }
        for extra in messages {
            try moveAside(id, envelope: nil, message: extra, reason: "duplicate message file", touched: &touched)
            report.movedToCorrupt += 1
        }

        // Rule 4: the envelope must decode and be for this id. Read ahead when its files
        // lay in place (nothing above moved them), else now.
        var read = try reading?.get() ?? self.read(id, in: queue)
        var reason = read.problem
        if reason == nil && kept == nil {
            reason = "message file missing"
        }
        if let reason {
            try moveAside(id, envelope: envelopeLocation, message: kept, reason: reason, touched: &touched)
            report.movedToCorrupt += 1
            return
        }

        // Rule 3: the message follows its envelope.
        if let kept, kept.path != messageFile {
            try FileIO.rename(kept.path, messageFile)
            read.messageSize = try FileIO.fileSize(messageFile)
            touched.insert(kept.directory)
            touched.insert(envelopeLocation.directory)
            if kept.queue != queue {
                report.messagesRejoined += 1
                logger.notice(
                    "recovery: message file rejoined its envelope",
                    metadata: ["queue_id": "\(id)", "from": "\(kept.queue)", "to": "\(queue)"])
            }
        }

        // Rule 4: size check (checksums are left to loadMessage).
        let envelope = read.envelope!
        let expected = envelope.messageFile.size
        let actual = read.messageSize
        if actual != expected {
            let message = FoundFiles.Location(queue: queue, path: messageFile, directory: envelopeLocation.directory)
            try moveAside(
                id, envelope: envelopeLocation, message: actual == nil ? nil : message,
                reason: "message file has \(actual.map(String.init) ?? "no") octets, envelope says \(expected)",
                touched: &touched)
            report.movedToCorrupt += 1
            return
        }

        recovered(envelope, stamp: read.stamp, in: queue, report: &report, queued: queued)
    }

    /// Counts a sound message, and hands a queued one on.
    private func recovered(_ envelope: Envelope, stamp: Int64, in queue: SpoolQueue, report: inout RecoveryReport,
                           queued: (Envelope, Int64) -> Void) {
        switch queue {
        case .queue:
            report.queued += 1
            queued(envelope, stamp)
        case .hold: report.held += 1
        case .corrupt: preconditionFailure("Internal inconsistency: recovery scanned corrupt/")
        }
    }

    /// Renames the given files into corrupt/ under fresh names.
    private func moveAside(
        _ id: QueueID, envelope: FoundFiles.Location?, message: FoundFiles.Location?, reason: String,
        touched: inout Set<String>
    ) throws {
        try ensureDirectory(for: id, in: .corrupt)
        let destination = corruptDestination(for: id)
        if let message {
            try FileIO.rename(message.path, destination.message)
            touched.insert(message.directory)
        }
        if let envelope {
            try FileIO.rename(envelope.path, destination.envelope)
            touched.insert(envelope.directory)
        }
        touched.insert(directory(of: .corrupt))
        logger.error(
            "recovery: moved to corrupt/",
            metadata: ["queue_id": "\(id)", "reason": "\(reason)", "path": "\(destination.envelope)"])
    }

    /// Rule 1. Returns the number of entries removed.
    private func removeTemporaryGarbage() throws -> Int {
        let directory = temporaryDirectory
        let me = getpid()
        let now = Date().timeIntervalSince1970
        var removed = 0
        var entries: [String] = []
        for name in try FileIO.list(directory) {
            if Spool.isShardName(name) && FileIO.isDirectory(directory + "/" + name) {
                entries += try FileIO.list(directory + "/" + name).map { name + "/" + $0 }
            } else {
                entries.append(name)
            }
        }
        for entry in entries {
            let file = directory + "/" + entry
            let name = String(entry.split(separator: "/").last ?? Substring(entry))
            if let writer = Spool.temporaryWriter(name), writer != me, Spool.isRunning(writer) {
                var info = stat()
                if lstat(file, &info) == 0 && now - Double(info.st_mtim.tv_sec) < Spool.temporaryGracePeriod {
                    logger.debug("recovery: tmp file of a running process left alone", metadata: ["path": "\(file)"])
                    continue
                }
            }
            try FileIO.removeTree(file)
            removed += 1
        }
        if removed > 0 {
            try FileIO.syncDirectory(directory)
            logger.notice("recovery: removed garbage from tmp/", metadata: ["count": "\(removed)"])
        }
        return removed
    }

    /// The writer's pid from `<id>.<pid>-<random>.(msg|env)`, or nil for any other name.
    static func temporaryWriter(_ name: String) -> pid_t? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, QueueID(String(parts[0])) != nil, parts[2] == "msg" || parts[2] == "env" else {
            return nil
        }
        let writer = parts[1].split(separator: "-")
        guard writer.count == 2, let pid = pid_t(writer[0]), pid > 0 else { return nil }
        return pid
    }

    static func isRunning(_ pid: pid_t) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}

/// Start-up recovery under way (``Spool/beginRecovery(chunk:)``): the messages found in
/// queue/ and hold/, checked and put right a chunk at a time in queue id order (oldest
/// first), each chunk's files read on every core while the previous one is checked.
///
/// One thread at a time uses a pass. A server hands the first chunks' messages to
/// delivery and checks the rest on another thread (``checkNext(queued:besideServer:)``
/// with `besideServer`); messages that arrive meanwhile are not in the listing and are
/// never touched.
public final class RecoveryPass: @unchecked Sendable {
    /// Messages found in queue/ and hold/.
    public let found: Int
    private let spool: Spool
    private let chunks: [ArraySlice<(key: QueueID, value: Spool.FoundFiles)>]
    private var number = 0
    private var next: ReadAhead<[Result<Spool.Reading, any Error>?]>?
    private let shards: ShardDirectories
    private var report: RecoveryReport
    private var touched = Set<String>()
    /// Messages left as they were after an error while the server ran beside the check.
    private var skipped = 0
    private let began: ContinuousClock.Instant
    private let listed: ContinuousClock.Instant

    fileprivate init(spool: Spool, messages: [(key: QueueID, value: Spool.FoundFiles)], chunk: Int,
                     report: RecoveryReport, began: ContinuousClock.Instant, listed: ContinuousClock.Instant) {
        self.spool = spool
        self.found = messages.count
        self.chunks = stride(from: 0, to: messages.count, by: chunk).map {
            messages[$0..<min($0 + chunk, messages.count)]
        }
        self.report = report
        self.began = began
        self.listed = listed
        let shards = ShardDirectories(spool)
        self.shards = shards
        next = chunks.first.map { chunk in ReadAhead { spool.readAhead(chunk, shards) } }
    }

    /// Whether every message found has been checked.
    public var isDone: Bool { number >= chunks.count }

    /// Messages of queue/ handed on so far.
    public var queued: Int { report.queued }

    /// Checks the next chunk, handing each healthy queued message to `queued` (see
    /// ``Spool/recover(queued:)``); false when there was none left.
    ///
    /// `besideServer`: the server is running (delivering, accepting, the postmaster's
    /// commands at work), so a message that is not in the usual state is looked at again
    /// as it lies now, and one that cannot be put right (a file moved away meanwhile, an
    /// I/O error) is logged and left as it is for the server's rescans and the next
    /// start, instead of ending recovery.
    @discardableResult
    public func checkNext(queued: (Envelope, Int64) -> Void, besideServer: Bool = false) throws -> Bool {
        guard number < chunks.count, let pending = next else { return false }
        let readings = pending.wait()
        let spool = self.spool, shards = self.shards
        next = number + 1 < chunks.count
            ? ReadAhead { [chunk = chunks[number + 1]] in spool.readAhead(chunk, shards) } : nil
        for (offset, (id, files)) in chunks[number].enumerated() {
            do {
                try spool.recoverMessage(id, files, reading: readings[offset], relist: besideServer, report: &report,
                                         touched: &touched, queued: queued)
            } catch where besideServer {
                skipped += 1
                spool.logger.error("recovery: message left as it is", metadata: ["queue_id": "\(id)", "error": "\(error)"])
            }
        }
        number += 1
        return true
    }

    /// Flushes the directories recovery changed, logs the report (with the messages left
    /// unchecked, when the caller stopped early) and returns it.
    public func finish() throws -> RecoveryReport {
        for directory in touched.sorted() {
            try FileIO.syncDirectory(directory)
        }
        touched = []
        let clock = ContinuousClock()
        var metadata: Logger.Metadata = [
            "queued": "\(report.queued)", "held": "\(report.held)", "tmp_removed": "\(report.tmpRemoved)",
            "orphans_removed": "\(report.orphanMessagesRemoved)", "moved_to_corrupt": "\(report.movedToCorrupt)",
            "rejoined": "\(report.messagesRejoined)",
            "seconds_listing": "\(Spool.seconds(listed - began))", "seconds": "\(Spool.seconds(clock.now - began))",
        ]
        if skipped > 0 { metadata["left_as_is"] = "\(skipped)" }
        let unchecked = chunks[number...].reduce(0) { $0 + $1.count }
        if unchecked > 0 { metadata["unchecked"] = "\(unchecked)" }   // stopped early: the next start checks them
        spool.logger.info("spool recovered", metadata: metadata)
        return report
    }
}

/// One slot per index, each written by one thread of a `concurrentPerform` and read
/// once they have all finished.
private final class ResultSlots<Value>: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result<Value, any Error>?>

    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        slots.deinitialize()   // every slot is initialized (nil or a result)
        slots.deallocate()
    }

    func set(_ index: Int, _ value: Result<Value, any Error>) {
        slots[index] = value
    }

    func take() -> [Result<Value, any Error>?] {
        Array(slots)
    }
}

/// ``Spool/readAhead(_:)`` of one chunk, running on a dispatch thread until waited for.
private final class ReadAhead<Value>: @unchecked Sendable {
    private let done = DispatchGroup()
    private var value: Value?   // written before `done` is left, read after it is waited for

    init(_ work: @escaping @Sendable () -> Value) {
        done.enter()
        DispatchQueue.global().async {
            self.value = work()
            self.done.leave()
        }
    }

    func wait() -> Value {
        done.wait()
        return value!
    }
}

/// The shard directories of queue/ and hold/, open for recovery's reads ahead (a file
/// looked up in its directory instead of along its whole path); closed when released.
private final class ShardDirectories: Sendable {
    /// queue/'s 256 shards, then hold/'s; -1 where a directory could not be opened (the
    /// reads there go by path).
    private let descriptors: [Int32]

    init(_ spool: Spool) {
        descriptors = [SpoolQueue.queue, .hold].flatMap { queue in
            QueueID.shardNames.map { shard in
                open(spool.directory(of: queue) + "/" + shard, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
        }
    }

    deinit {
        for descriptor in descriptors where descriptor >= 0 { close(descriptor) }
    }

    func descriptor(of id: QueueID, in queue: SpoolQueue) -> Int32? {
        let base = queue == .hold ? 256 : 0
        let descriptor = descriptors[base + QueueID.shardNumber(id)]
        return descriptor >= 0 ? descriptor : nil
    }
}
