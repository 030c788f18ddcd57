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
