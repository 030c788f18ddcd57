/*
 SpoolJournal — group commit for the spool (`[spool] journal = true`, issue #13).

 WHY
   Each `store` used to cost three flushes (the `.msg`, the `.env`, the shard directory):
   on this kind of disk that caps the spool at 1,400–3,400 commits/s however many run at
   once. Appending every message to one log file and flushing that file once for all the
   commits that arrived meanwhile makes the same guarantee with one flush per batch
   (docs/benchmarks.md "Flushes per message": 15,000–17,000 messages/s).

 WHAT IS ON DISK
   <spool>/journal/<seq>.jnl      segments; <seq> = 16 hex digits, increasing
   <spool>/journal/removed/<id>   tombstones: a postmaster deletion made while segments
                                  existed (the deleting process cannot append to them)

   A segment is a sequence of frames:
     kind (1 octet: H, M or D) · 3 zero octets · length A (u32 LE) · length B (u32 LE)
     · CRC-32C (u32 LE) of the 12 octets before it and both parts · part A · part B
   H (first frame): A = the kernel's boot id when the segment was made.
   M: A = the envelope exactly as written to `<id>.env`, B = the message (`<id>.msg`).
   D: A = a queue id whose message left the queue while its M frame was unretired.
   A frame that is short or fails its CRC ends the segment (a write cut by a crash).

 HOW A STORE COMMITS (Spool.storeJournaled)
   The M frame is appended and the store returns once a flush of the segment covered it.
   No file is made: the message is *pending*, and the spool's reads (`loadEnvelope`,
   `loadMessage`, `enumerate`, `locate`, `envelopeStamp`) serve it from its segment.
   It stops being pending when it is
   - removed (delivered or bounced): a D frame, and it never had a file;
   - updated (an attempt deferred it) or moved (held): written out as durable files
     first (each fsynced, then the directory), with the new envelope for an update;
   - in a segment that retires (below): written out the same way.
   So mail delivered within seconds costs one shared flush and no file at all.

 RETIREMENT
   A segment is closed after `rotateAge` (or `rotateBytes`). `retireDelay` after that,
   its pending messages are written out and the files of its other messages still in
   the spool are fsynced, each directory they are in is fsynced, and the segment is
   unlinked. A graceful stop retires every segment.

 RECOVERY (Spool.startJournal, before the ordinary recovery, in `herald serve` only)
   Segments left by a process that died are read. A message of an M frame is skipped if
   a D frame or a tombstone names it, if it is in corrupt/, or (campaign messages) if it
   is marked finished. One with no file anywhere was pending: it is written out into
   queue/. One with files:
   - same boot id as now: the kernel kept every page the dead process wrote, so the
     files are what it left; they are fsynced;
   - another boot id (power loss or reboot): a `.msg` or `.env` that does not match is
     rewritten from the frame (in hold/ if the message is there), then fsynced.
   Then the segments and tombstones are removed, and recovery sees only files.

 WHAT IS NOT PROMISED
   - D frames are flushed with the next batch, not waited for: after a power loss, a
     message delivered in the last moments before it can be delivered again (never lost).
   - Another process (`herald queue …`) lists and shows a pending message from the
     segments (Spool.includeJournalSegments) but can change it only once it is written
     out (deferred, held, or its segment retired: within `rotateAge + retireDelay`).
*/

import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Frames of a journal segment (see the file comment).
enum JournalFrame {
    static let headerSize = 16

    enum Kind: UInt8 {
        case header = 0x48  // H
        case message = 0x4D  // M
        case done = 0x44  // D
    }

    static func make(_ kind: Kind, _ a: [UInt8], _ b: [UInt8] = []) -> [UInt8] {
        var frame: [UInt8] = []
        frame.reserveCapacity(headerSize + a.count + b.count)
        frame += [kind.rawValue, 0, 0, 0]
        appendLittleEndian(&frame, UInt32(a.count))
        appendLittleEndian(&frame, UInt32(b.count))
        var crc = CRC32C()
        crc.update(frame)
        crc.update(a)
        crc.update(b)
        appendLittleEndian(&frame, crc.value)
        frame += a
        frame += b
        return frame
    }

    struct Parsed {
        var kind: Kind
        var a: Range<Int>
        var b: Range<Int>
    }

    /// The sound frames at the start of `bytes`, up to the first short or damaged one.
    static func parse(_ bytes: [UInt8]) -> [Parsed] {
        var frames: [Parsed] = []
        var offset = 0
        while bytes.count - offset >= headerSize {
            guard let kind = Kind(rawValue: bytes[offset]),
                  bytes[offset + 1] == 0, bytes[offset + 2] == 0, bytes[offset + 3] == 0 else { break }
            let a = Int(readLittleEndian(bytes, offset + 4))
            let b = Int(readLittleEndian(bytes, offset + 8))
            let stored = readLittleEndian(bytes, offset + 12)
            let start = offset + headerSize
            guard a <= bytes.count - start, b <= bytes.count - start - a else { break }
            var crc = CRC32C()
            bytes.withUnsafeBytes { raw in
                crc.update(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + 12)]))
                crc.update(UnsafeRawBufferPointer(rebasing: raw[start..<(start + a + b)]))
            }
            guard crc.value == stored else { break }
            frames.append(Parsed(kind: kind, a: start..<(start + a), b: (start + a)..<(start + a + b)))
            offset = start + a + b
        }
        return frames
    }

    static func appendLittleEndian(_ out: inout [UInt8], _ value: UInt32) {
        out += [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
    }

    static func readLittleEndian(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

/// The journal's settings (`[spool] journal*` in the configuration).
public struct JournalSettings: Sendable {
    /// A segment is closed when it is this old (seconds) …
    public var rotateAge: Double
    /// … or this large (octets).
    public var rotateBytes: Int
    /// Seconds after closing before a segment's remaining messages are fsynced and it
    /// is removed.
    public var retireDelay: Double
    /// The kernel's boot id; nil = read `/proc/sys/kernel/random/boot_id` (tests set it
    /// to play a reboot).
    public var bootID: String?

    public init(rotateAge: Double = 2, rotateBytes: Int = 64 << 20, retireDelay: Double = 3, bootID: String? = nil) {
        self.rotateAge = rotateAge
        self.rotateBytes = rotateBytes
        self.retireDelay = retireDelay
        self.bootID = bootID
    }

    static func currentBootID() -> String {
        let text = (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)) ?? ""
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// What ``Spool/startJournal()`` found in the segments of an earlier process.
public struct JournalReplayReport: Sendable, Equatable {
    public var segments = 0
    /// M frames whose message was still in the spool (or was written out now).
    public var live = 0
    /// Messages with a file rewritten from the journal (after a reboot).
    public var rewritten = 0
    /// Messages that were only in the journal, written out into queue/.
    public var restored = 0
}

/// The running journal of one `herald serve`: appends, the flusher thread that makes
/// them durable in batches, and the thread that closes and retires segments.
final class SpoolJournal: @unchecked Sendable {
    struct Segment {
        var sequence: UInt64
        var path: String
        var ids: [QueueID] = []
        /// The journal position of its last octet.
        var end: UInt64 = 0
        var opened: Double
        var closed: Double?
    }

    let directory: String
    let settings: JournalSettings
    let bootID: String
    /// Weak: the spool owns its journal (a spool dropped without `stopJournal` leaves
    /// the threads nothing to write out to).
    private weak var spool: Spool?
    private let logger: Logger

    /// Guards the state below; waiters for durability wait on it, and are woken once per
    /// flush (not at every append: twenty committers woken for each of twenty appends
    /// was most of the journal's cost in thread switches).
    private let condition = NSCondition()
    /// Wakes the flusher: signalled at every append (spare signals make it look once more).
    private let flusherWake = DispatchSemaphore(value: 0)
    private var descriptor: Int32 = -1
    private var current: Segment
    private var currentSize = 0
    private var closedSegments: [Segment] = []
    /// Octets appended since start, and how many of them a flush has covered.
    private var written: UInt64 = 0
    private var durable: UInt64 = 0
    /// The highest position somebody needs flushed: an M frame, or a waiter. D frames of
    /// delivered mail do not ask for a flush of their own (see `noteRemoved`).
    private var requested: UInt64 = 0
    private var dirty: [Int32] = []
    private var closeAfterFlush: [Int32] = []
    private var directoryNeedsFlush = false
    private var broken: SpoolError?
    private var stopping = false
    private var threadsRunning = 0
    /// Where a message not yet written out as files lies in its segment.
    struct Location {
        var sequence: UInt64
        var offset: Int
        var envelopeCount: Int
        var messageCount: Int
    }
    /// Messages whose M frame is in an unretired segment and which are still in the
    /// spool: id → segment sequence.
    private var inSegment: [QueueID: UInt64] = [:]
    /// Of those, the ones that exist only in the journal (no files yet).
    private var pending: [QueueID: Location] = [:]
    /// A descriptor open for reading on each unretired segment.
    private var readers: [UInt64: Int32] = [:]
    /// Callers of `durable(_:)` waiting for a flush to reach their position.
    private var asyncWaiters: [(position: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    /// Offset in `current` of the frame the last `appendLocked` wrote.
    private var frameStart = 0

    init(spool: Spool, settings: JournalSettings, firstSequence: UInt64, logger: Logger) throws {
        self.spool = spool
        self.settings = settings
        self.directory = spool.journalDirectory
        self.bootID = settings.bootID ?? JournalSettings.currentBootID()
        self.logger = logger
        current = Segment(sequence: firstSequence, path: "", opened: 0)
        condition.lock()
        defer { condition.unlock() }
        try openSegmentLocked(sequence: firstSequence)
    }

    func start() {
        condition.lock()
        threadsRunning = 2
        condition.unlock()
        let flusher = Thread { [self] in flushLoop() }
        flusher.name = "spool-journal"
        flusher.start()
        let retirer = Thread { [self] in retireLoop() }
        retirer.name = "spool-retire"
        retirer.start()
    }

    static func segmentName(_ sequence: UInt64) -> String {
        let hex = String(sequence, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ".jnl"
    }

    /// Opens a new segment (the caller holds the lock) and writes its H frame.
    private func openSegmentLocked(sequence: UInt64) throws {
        let path = directory + "/" + SpoolJournal.segmentName(sequence)
        let fd = try FileIO.openFile(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, FileIO.fileMode, "create")
        if let owner = spool?.owner { _ = fchown(fd, owner.uid, owner.gid) }
        let header = JournalFrame.make(.header, Array(bootID.utf8))
        do {
            try FileIO.writeAll(fd, header, path)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        let reader = open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else {
            let code = Glibc.errno
            close(fd)
            unlink(path)
            throw SpoolError.system("open", path, code)
        }
        readers[sequence] = reader
        if descriptor >= 0 {
            current.closed = Date().timeIntervalSince1970
            closedSegments.append(current)
            closeAfterFlush.append(descriptor)
        }
        descriptor = fd
        current = Segment(sequence: sequence, path: path, opened: Date().timeIntervalSince1970)
        currentSize = header.count
        written += UInt64(header.count)
        current.end = written
        dirty.append(fd)
        directoryNeedsFlush = true
        flusherWake.signal()
    }

    /// Appends `frame`; returns the position a flush must reach for it to be durable.
    /// The frame starts at `currentSize` of `current` as it was before the call returned
    /// (a rotation happens before the write).
    @discardableResult
    private func appendLocked(_ frame: [UInt8], urgent: Bool = true) throws -> UInt64 {
        if let broken { throw broken }
        if stopping { throw SpoolError.system("append", directory, ESHUTDOWN) }
        if currentSize + frame.count > settings.rotateBytes && currentSize > JournalFrame.headerSize + 64 {
            try openSegmentLocked(sequence: current.sequence + 1)
        }
        frameStart = currentSize
        do {
            try FileIO.writeAll(descriptor, frame, current.path)
        } catch {
            // Cut the partial frame off, so that later frames stay readable; failing
            // that, go on in a new segment.
            if ftruncate(descriptor, off_t(currentSize)) != 0 {
                try? openSegmentLocked(sequence: current.sequence + 1)
            }
            throw error
        }
        currentSize += frame.count
        written += UInt64(frame.count)
        current.end = written
        if dirty.last != descriptor { dirty.append(descriptor) }
        if urgent { requestFlushLocked(written) }
        return written
    }

    /// Appends the M frame of a message that exists nowhere else yet; it is pending
    /// until written out as files.
    func appendMessage(_ id: QueueID, envelope: [UInt8], message: [UInt8]) throws -> UInt64 {
        let frame = JournalFrame.make(.message, envelope, message)
        condition.lock()
        defer { condition.unlock() }
        guard inSegment[id] == nil else { throw SpoolError.alreadyExists(id) }
        let position = try appendLocked(frame)
        inSegment[id] = current.sequence
        pending[id] = Location(sequence: current.sequence, offset: frameStart + JournalFrame.headerSize,
                               envelopeCount: envelope.count, messageCount: message.count)
        current.ids.append(id)
        return position
    }

    /// The envelope and message of a pending message (nil if it is not pending).
    func read(_ id: QueueID) -> (envelope: [UInt8], message: [UInt8])? {
        condition.lock()
        defer { condition.unlock() }
        guard let location = pending[id], let fd = readers[location.sequence] else { return nil }
        let count = location.envelopeCount + location.messageCount
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { raw in
                pread(fd, raw.baseAddress! + done, count - done, off_t(location.offset + done))
            }
            if n < 0 && Glibc.errno == EINTR { continue }
            guard n > 0 else {
                logger.error("spool journal: cannot read a pending message", metadata: ["queue_id": "\(id)"])
                return nil
            }
            done += n
        }
        return (Array(bytes[..<location.envelopeCount]), Array(bytes[location.envelopeCount...]))
    }

    func isPending(_ id: QueueID) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return pending[id] != nil
    }

    func pendingIDs() -> [QueueID] {
        condition.lock()
        defer { condition.unlock() }
        return Array(pending.keys)
    }

    /// A pending message now has durable files of its own.
    func forget(_ id: QueueID) {
        condition.lock()
        pending.removeValue(forKey: id)
        condition.unlock()
    }

    /// Notes that `id` left the spool: a D frame if its M frame is unretired. Returns the
    /// position to wait for (nil when the journal does not know the id).
    @discardableResult
    func noteRemoved(_ id: QueueID) -> UInt64? {
        condition.lock()
        defer { condition.unlock() }
        pending.removeValue(forKey: id)
        guard inSegment.removeValue(forKey: id) != nil else { return nil }
        // Not urgent: it rides along with the next flush somebody needs (a caller that
        // wants the removal durable asks for it in `waitDurable`).
        return try? appendLocked(JournalFrame.make(.done, Array(id.rawValue.utf8)), urgent: false)
    }

    /// Returns once a flush covered `position` (throws if the flush failed), without
    /// holding a thread meanwhile: the flusher resumes the task.
    func durable(_ position: UInt64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            condition.lock()
            if durable >= position {
                condition.unlock()
                continuation.resume()
            } else if let broken {
                condition.unlock()
                continuation.resume(throwing: broken)
            } else {
                asyncWaiters.append((position, continuation))
                requestFlushLocked(position)
                condition.unlock()
            }
        }
    }

    /// Resumes the `durable(_:)` callers that the last flush covered, or every one after a
    /// failed flush. The caller holds `condition`.
    private func resumeAsyncWaitersLocked() {
        guard !asyncWaiters.isEmpty else { return }
        var kept: [(position: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
        for waiter in asyncWaiters {
            if let broken {
                waiter.continuation.resume(throwing: broken)
            } else if waiter.position <= durable {
                waiter.continuation.resume()
            } else {
                kept.append(waiter)
            }
        }
        asyncWaiters = kept
    }

    /// Makes the flusher flush (everything written) until at least `position`. The caller
    /// holds `condition`.
    private func requestFlushLocked(_ position: UInt64) {
        guard position > requested else { return }
        requested = position
        flusherWake.signal()
    }

    /// Blocks until a flush covered `position`; throws if the flush failed.
    func waitDurable(_ position: UInt64) throws {
        condition.lock()
        defer { condition.unlock() }
        if durable < position { requestFlushLocked(position) }
        while durable < position && broken == nil {
            condition.wait()
        }
        if durable < position, let broken { throw broken }
    }

    private func flushLoop() {
        condition.lock()
        while true {
            while requested <= durable && !directoryNeedsFlush && closeAfterFlush.isEmpty && !stopping {
                condition.unlock()
                flusherWake.wait()
                condition.lock()
            }
            if stopping && written == durable && !directoryNeedsFlush && closeAfterFlush.isEmpty { break }
            let target = written
            let descriptors = dirty
            dirty = []
            let closing = closeAfterFlush
            closeAfterFlush = []
            let syncDirectory = directoryNeedsFlush
            directoryNeedsFlush = false
            condition.unlock()
            var failure: SpoolError?
            do {
                if syncDirectory { try FileIO.syncDirectory(directory) }
                for fd in descriptors {
                    while fdatasync(fd) != 0 {
                        let code = Glibc.errno
                        if code == EINTR { continue }
                        throw SpoolError.system("fdatasync", directory, code)
                    }
                }
            } catch let error as SpoolError {
                failure = error
            } catch {
                failure = SpoolError.system("fdatasync", directory, EIO)
            }
            for fd in closing { close(fd) }
            condition.lock()
            if let failure {
                // After a failed flush nothing written before it can be trusted to be on
                // disk (the kernel may have dropped the pages): refuse from now on.
                logger.critical("spool journal: flush failed; new messages are refused until a restart",
                                metadata: ["error": "\(failure)"])
                broken = failure
            } else {
                durable = target
            }
            condition.broadcast()
            resumeAsyncWaitersLocked()
        }
        threadsRunning -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func retireLoop() {
        condition.lock()
        while !stopping {
            condition.unlock()
            Thread.sleep(forTimeInterval: 0.25)
            spool?.serveWriteOutRequests()
            condition.lock()
            if stopping { break }
            let now = Date().timeIntervalSince1970
            if now - current.opened >= settings.rotateAge && current.end > 0 && !current.ids.isEmpty {
                do {
                    try openSegmentLocked(sequence: current.sequence + 1)
                } catch {
                    logger.error("spool journal: cannot open a new segment", metadata: ["error": "\(error)"])
                }
            }
            if let first = closedSegments.first, let closed = first.closed, now - closed >= settings.retireDelay,
               durable < first.end
            {
                // Its last frames may be D frames nobody asked to flush.
                requestFlushLocked(first.end)
            }
            while let first = closedSegments.first, let closed = first.closed,
                  now - closed >= settings.retireDelay, durable >= first.end, !stopping
            {
                condition.unlock()
                let retired = retire(first)
                condition.lock()
                closedSegments.removeFirst()
                if !retired {
                    // Tried again after another delay (a full disk may have room by then).
                    var again = first
                    again.closed = now
                    closedSegments.append(again)
                    break
                }
            }
        }
        threadsRunning -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Writes out the pending messages of `segment`, makes the spool durable (one syncfs:
    /// those files, and those of its other messages, which an update or a move wrote out
    /// earlier), then unlinks it. Returns false, keeping the segment (and its messages
    /// readable from it), when any of that failed.
    @discardableResult
    private func retire(_ segment: Segment) -> Bool {
        condition.lock()
        let ids = segment.ids.filter { inSegment[$0] == segment.sequence }
        condition.unlock()
        guard let spool else { return false }
        spool.writeOut(ids)
        condition.lock()
        let unwritten = ids.filter { pending[$0]?.sequence == segment.sequence }.count
        condition.unlock()
        var ok = unwritten == 0
        if !ok {
            logger.error("spool journal: messages could not be written out; their segment is kept",
                         metadata: ["segment": "\(segment.path)", "messages": "\(unwritten)"])
        }
        do { if !ids.isEmpty { try FileIO.syncFileSystem(spool.path) } } catch {
            ok = false
            logger.error("spool journal: the spool could not be flushed; the segment is kept", metadata: ["error": "\(error)"])
        }
        // A segment whose files could not all be made durable is kept: tried again later,
        // and replayed at the next start if it is still there.
        if ok { unlink(segment.path) }
        condition.lock()
        if ok {
            for id in ids where inSegment[id] == segment.sequence {
                inSegment.removeValue(forKey: id)
            }
            if let reader = readers.removeValue(forKey: segment.sequence) { close(reader) }
        }
        condition.unlock()
        return ok
    }

    /// Stops the threads after a last flush and retires every segment (graceful stop).
    func stop() {
        condition.lock()
        guard !stopping else {
            condition.unlock()
            return
        }
        stopping = true
        flusherWake.signal()
        while threadsRunning > 0 { condition.wait() }
        current.closed = Date().timeIntervalSince1970
        var segments = closedSegments
        segments.append(current)
        closedSegments = []
        let fd = descriptor
        descriptor = -1
        let everythingDurable = durable == written && broken == nil
        condition.unlock()
        if fd >= 0 {
            _ = fdatasync(fd)
            close(fd)
        }
        guard everythingDurable else { return }
        for segment in segments { retire(segment) }
        try? FileIO.syncDirectory(directory)
    }
}
