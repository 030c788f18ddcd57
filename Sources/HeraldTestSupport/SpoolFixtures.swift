import Foundation
import Logging
import Spool

/// Helpers for tests that need a spool: throwaway directories and ready-made envelopes.
public enum SpoolFixtures {
    /// A new, empty directory under the system temporary directory.
    public static func makeTemporaryDirectory(prefix: String = "herald-test") throws -> String {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// Runs `body` with a spool in a fresh temporary directory, removed afterwards.
    public static func withTemporarySpool<T>(
        committerThreads: Int = 8, _ body: (Spool, String) async throws -> T
    ) async throws -> T {
        let directory = try makeTemporaryDirectory(prefix: "herald-spool")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "herald.spool.test")
        logger.logLevel = .critical
        let spool = try Spool(
            path: directory, configuration: Spool.Configuration(committerThreads: committerThreads), logger: logger)
        return try await body(spool, directory)
    }

    public static let origin = EnvelopeOrigin(
        listener: "127.0.0.1:2525", clientAddress: "127.0.0.1:53422", authenticatedUser: nil,
        helo: "client.example", tls: false)

    /// An envelope with a fresh id and the given (or two default) recipients.
    public static func envelope(
        id: QueueID = .generate(), arrival: Date = Date(), sender: String = "sender@example.com",
        recipients: [String] = ["one@example.net", "two@example.org"]
    ) -> Envelope {
        Envelope(
            id: id, arrival: arrival, sender: sender, origin: origin,
            recipients: recipients.map { EnvelopeRecipient(address: $0) })
    }

    /// A CRLF message of roughly `size` octets whose body names `tag`, so that messages differ.
    public static func message(tag: String = "test", size: Int = 1024) -> [UInt8] {
        var text = "From: sender@example.com\r\nTo: one@example.net\r\nSubject: \(tag)\r\n\r\n"
        let line = "\(tag) 0123456789abcdefghijklmnopqrstuvwxyz\r\n"
        while text.utf8.count + line.utf8.count <= size {
            text += line
        }
        return Array(text.utf8)
    }
}

extension SpoolFixtures {
    /// Fills `spool`'s queue/ with `count` committed messages of `size` octets, each to
    /// `recipients`, in the spool's own file format but without fsyncs: a large backlog in
    /// seconds, for tests of what Herald does with one (recovery, the CLI, restart).
    /// The envelope is encoded once and only its id is substituted, so every file is
    /// exactly what `store` would have written for that id. Returns the ids, sorted.
    @discardableResult
    public static func fillQueue(
        _ spool: Spool, count: Int, size: Int = 200, sender: String = "s@b.local",
        recipients: [String] = ["r@example.com"]
    ) throws -> [QueueID] {
        let message = self.message(tag: "backlog", size: size)
        var template = envelope(sender: sender, recipients: recipients)
        template.size = message.count
        template.messageFile = MessageFileInfo(size: message.count, checksum: CRC32C.envelopeString(message))
        let templateBytes = try EnvelopeCoding.encode(template)
        let templateID = Array(template.id.rawValue.utf8)
        let idOffsets = offsets(of: templateID, in: templateBytes)
        precondition(!idOffsets.isEmpty, "the encoded envelope does not contain its id")

        let ids = (0..<count).map { _ in QueueID.generate() }
        // Shard directories first, then the files from a few threads at once (file
        // creation is most of the time, and each shard has its own directory lock).
        for directory in Set(ids.map { spool.directory(of: $0, in: .queue) }) {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let workers = 4
        let failures = NSLock()
        nonisolated(unsafe) var failure: (any Error)?
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var envelopeBytes = templateBytes
            for index in stride(from: worker, to: ids.count, by: workers) {
                let id = ids[index]
                let idBytes = Array(id.rawValue.utf8)
                for offset in idOffsets {
                    envelopeBytes.replaceSubrange(offset..<(offset + idBytes.count), with: idBytes)
                }
                do {
                    try writeFile(spool.messagePath(id, in: .queue), message)
                    try writeFile(spool.envelopePath(id, in: .queue), envelopeBytes)
                } catch {
                    failures.withLock { failure = failure ?? error }
                    return
                }
            }
        }
        if let failure { throw failure }
        return ids
    }

    private static func offsets(of needle: [UInt8], in haystack: [UInt8]) -> [Int] {
        guard needle.count <= haystack.count else { return [] }
        return (0...(haystack.count - needle.count)).filter { start in
            haystack[start..<(start + needle.count)].elementsEqual(needle)
        }
    }

    private static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SubprocessError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw SubprocessError("short write to \(path)") }
    }
}
