import Foundation
import Metrics
import NIOConcurrencyHelpers

/// The metric counterparts of the delivery log (swift-metrics; exported by whatever
/// backend the process bootstraps):
/// - `herald_delivery_attempts_total{result}`: one per recipient outcome
///   (`delivered`, `deferred`, `failed`, `expired`, `bounced` = DSNs queued)
/// - `herald_delivery_duration_seconds{result}`: attempt durations
public enum DeliveryMetrics {
    public static let attemptsLabel = "herald_delivery_attempts_total"
    public static let durationLabel = "herald_delivery_duration_seconds"

    static func record(_ entry: DeliveryLog.Entry) {
        Counter(label: attemptsLabel, dimensions: [("result", entry.result)]).increment()
        if let ms = entry.durationMs {
            Metrics.Timer(label: durationLabel, dimensions: [("result", entry.result)])
                .recordNanoseconds(Int64(ms) * 1_000_000)
        }
    }
}

/// One JSON object per line for every attempt outcome, in `<dir>/delivery.jsonl`,
/// rotated to `delivery.jsonl.1` (… `.5`) when it passes `maxBytes`.
public final class DeliveryLog: Sendable {
    public struct Entry: Encodable, Sendable {
        public var time: Date
        public var queueId: String
        public var recipient: String
        public var domain: String
        public var mxHost: String?
        public var ip: String?
        public var tls: Bool
        public var result: String          // delivered | deferred | failed | bounced | expired | cancelled | deleted
        public var code: Int?
        public var enhanced: String?
        public var reply: String?
        public var attempt: Int
        public var nextAttempt: Date?
        public var tenant: String?
        public var campaign: String?
        public var durationMs: Int?
    }

    private let path: String?
    private let maxBytes: Int
    private let state: NIOLockedValueBox<(handle: FileHandle?, size: Int)>
    private let encoder: JSONEncoder

    public init(path: String?, maxBytes: Int) {
        self.path = path
        self.maxBytes = maxBytes
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, enc in
            var c = enc.singleValueContainer()
            try c.encode(DeliveryLog.iso(date))
        }
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.encoder = encoder
        state = NIOLockedValueBox((nil, 0))
        if let path {
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
            state.withLockedValue { $0 = DeliveryLog.open(path) }
        }
    }

    static func open(_ path: String) -> (FileHandle?, Int) {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forWritingAtPath: path) else { return (nil, 0) }
        let size = (try? h.seekToEnd()).map(Int.init) ?? 0
        return (h, size)
    }

    static func iso(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: date)
    }

    public func write(_ entry: Entry) {
        DeliveryMetrics.record(entry)
        guard let path, var line = try? encoder.encode(entry) else { return }
        line.append(0x0A)
        state.withLockedValue { s in
            if s.size + line.count > maxBytes && s.size > 0 {
                try? s.handle?.close()
                for i in stride(from: 4, through: 1, by: -1) {
                    _ = try? FileManager.default.removeItem(atPath: "\(path).\(i + 1)")
                    _ = try? FileManager.default.moveItem(atPath: "\(path).\(i)", toPath: "\(path).\(i + 1)")
                }
                _ = try? FileManager.default.removeItem(atPath: "\(path).1")
                _ = try? FileManager.default.moveItem(atPath: path, toPath: "\(path).1")
                s = DeliveryLog.open(path)
            }
            s.handle?.write(line)
            s.size += line.count
        }
    }
}
