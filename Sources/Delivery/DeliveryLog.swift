import Foundation
import MailFormat
import Metrics
import NIOConcurrencyHelpers

/// The metric counterparts of the delivery log (swift-metrics; exported by whatever
/// backend the process bootstraps, `/metrics` under `herald serve`):
/// - `herald_delivery_attempts_total{result, class}`: one per delivery-log line, that is
///   per recipient outcome (`delivered`, `deferred`, `failed`, `expired`, `cancelled`,
///   `deleted`, `held`, `released`; `bounced` = a DSN queued). `class` is the RFC 3463
///   class and subject of the reply's enhanced status code (`2.0`, `4.2`, `5.1`; the
///   detail is left out to keep the label's values few), `X.0` from the basic code when
///   the reply had no enhanced code (RFC 3463 §3: X.0.0 is "other undefined status"),
///   and `none` for outcomes without a reply (cancelled, deleted, held, released, bounced).
/// - `herald_delivery_duration_seconds{result}`: attempt durations.
/// - `herald_delivery_latency_seconds{result}`: from the message's arrival to each
///   recipient's final outcome (`delivered`, `failed`, `expired`), buckets
///   ``latencyBuckets`` (one second to five days: retries run for days).
public enum DeliveryMetrics {
    public static let attemptsLabel = "herald_delivery_attempts_total"
    public static let durationLabel = "herald_delivery_duration_seconds"
    public static let latencyLabel = "herald_delivery_latency_seconds"
    /// The latency histogram's buckets: seconds for mail that goes at once, hours and
    /// days for mail that waited for retries (the default lifetime is five days).
    public static let latencyBuckets: [Duration] = [
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(1800), .seconds(3600),
        .seconds(7200), .seconds(14_400), .seconds(43_200), .seconds(86_400), .seconds(172_800), .seconds(432_000),
    ]

    static func record(_ entry: DeliveryLog.Entry) {
        Counter(label: attemptsLabel, dimensions: [("result", entry.result), ("class", codeClass(entry))]).increment()
        if let ms = entry.durationMs {
            Metrics.Timer(label: durationLabel, dimensions: [("result", entry.result)])
                .recordNanoseconds(Int64(ms) * 1_000_000)
        }
    }

    /// The `class` label of an entry (see above).
    static func codeClass(_ entry: DeliveryLog.Entry) -> String {
        if let enhanced = entry.enhanced {
            let parts = enhanced.split(separator: ".", omittingEmptySubsequences: false)
            if parts.count == 3, ["2", "4", "5"].contains(parts[0]), let subject = Int(parts[1]), (0...999).contains(subject) {
                return "\(parts[0]).\(subject)"
            }
        }
        if let code = entry.code, (200..<600).contains(code) { return "\(code / 100).0" }
        return "none"
    }

    /// Records the time from `arrival` to a recipient's final outcome; other results
    /// (deferred, cancelled, …) are not deliveries and are left out.
    static func recordLatency(_ entry: DeliveryLog.Entry, arrival: Date) {
        guard ["delivered", "failed", "expired"].contains(entry.result) else { return }
        let nanoseconds = max(0, entry.time.timeIntervalSince(arrival)) * 1e9
        Metrics.Timer(label: latencyLabel, dimensions: [("result", entry.result)])
            .recordNanoseconds(Int64(nanoseconds.rounded()))
    }
}

/// One JSON object per line for every attempt outcome, in `<dir>/delivery.jsonl`,
/// rotated to `delivery.jsonl.1` (… `.5`) when it passes `maxBytes`.
public final class DeliveryLog: Sendable {
    public struct Entry: Codable, Sendable {
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

    public init(path: String?, maxBytes: Int) {
        self.path = path
        self.maxBytes = maxBytes
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

    /// Times as the log writes them: ISO 8601, UTC, milliseconds.
    static func iso(_ date: Date) -> String { MailDate.iso8601(date, fractionDigits: 3) }

    public func write(_ entry: Entry) {
        DeliveryMetrics.record(entry)
        guard let path else { return }
        var line = entry.jsonLine()
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
            try? s.handle?.write(contentsOf: line)
            s.size += line.count
        }
    }

    // MARK: - Reading back

    /// The entries of the log at `path` (and of its rotated `.1`, when the current file
    /// does not reach back far enough) whose time is at or after `since`, oldest first;
    /// with `limit`, only the newest `limit` of them. Read backwards in blocks from the
    /// end, so the cost is what is returned, not the file's size. Lines that do not decode
    /// (a torn last line after a crash) are skipped.
    public static func entries(at path: String, since: Date, limit: Int? = nil) -> [Entry] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        decoder.dateDecodingStrategy = .custom { d in
            try style.parse(try d.singleValueContainer().decode(String.self))
        }
        var result: [Entry] = []
        for file in [path, path + ".1"] {
            let (entries, reachedEnd) = tail(of: file, since: since, limit: limit.map { $0 - result.count }, decoder)
            result = entries + result
            if reachedEnd { break }
        }
        return result
    }

    /// Entries of one file at or after `since` (the newest `limit` of them); true when
    /// the file reaches back far enough (an older entry was seen, or `limit` was reached).
    private static func tail(of path: String, since: Date, limit: Int?, _ decoder: JSONDecoder) -> ([Entry], Bool) {
        if let limit, limit <= 0 { return ([], true) }
        guard let handle = FileHandle(forReadingAtPath: path) else { return ([], false) }
        defer { try? handle.close() }
        guard var end = try? handle.seekToEnd() else { return ([], false) }
        let block: UInt64 = 256 * 1024
        var carry = Data()   // the start of a line whose beginning is in an earlier block
        var found: [Entry] = []
        while end > 0 {
            let start = end > block ? end - block : 0
            try? handle.seek(toOffset: start)
            var data = (try? handle.read(upToCount: Int(end - start))) ?? Data()
            data.append(carry)
            var lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
            carry = start > 0 ? Data(lines.removeFirst()) : Data()
            var older = false
            var chunk: [Entry] = []
            for line in lines where !line.isEmpty {
                guard let entry = try? decoder.decode(Entry.self, from: Data(line)) else { continue }
                if entry.time >= since { chunk.append(entry) } else { older = true }
            }
            found = chunk + found
            if let limit, found.count >= limit { return (Array(found.suffix(limit)), true) }
            if older { return (found, true) }
            end = start
        }
        return (found, false)
    }
}

extension DeliveryLog.Entry {
    /// The entry as one line of JSON (without the newline): snake_case keys in sorted
    /// order, absent values left out, times as ``DeliveryLog/iso(_:)`` writes them, the
    /// same object `JSONEncoder` with `.convertToSnakeCase`, `.sortedKeys` and
    /// `.withoutEscapingSlashes` makes, written directly: the encoder was a tenth of the
    /// CPU a relayed message cost (`docs/benchmarks.md`).
    public func jsonLine() -> [UInt8] {
        var w = JSONLineWriter()
        w.field("attempt", attempt)
        if let campaign { w.field("campaign", campaign) }
        if let code { w.field("code", code) }
        w.field("domain", domain)
        if let durationMs { w.field("duration_ms", durationMs) }
        if let enhanced { w.field("enhanced", enhanced) }
        if let ip { w.field("ip", ip) }
        if let mxHost { w.field("mx_host", mxHost) }
        if let nextAttempt { w.field("next_attempt", DeliveryLog.iso(nextAttempt)) }
        w.field("queue_id", queueId)
        w.field("recipient", recipient)
        if let reply { w.field("reply", reply) }
        w.field("result", result)
        if let tenant { w.field("tenant", tenant) }
        w.field("time", DeliveryLog.iso(time))
        w.field("tls", tls)
        return w.finish()
    }
}

/// A JSON object written field by field into bytes (RFC 8259 string escaping: `"`,
/// `\\` and control characters; everything else, `/` and non-ASCII included, as is).
struct JSONLineWriter {
    private var out: [UInt8] = [UInt8(ascii: "{")]

    init() { out.reserveCapacity(320) }

    private mutating func key(_ name: StaticString) {
        if out.count > 1 { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func field(_ name: StaticString, _ value: String) {
        key(name)
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    mutating func field(_ name: StaticString, _ value: Int) {
        key(name)
        out.append(contentsOf: String(value).utf8)
    }

    mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        out.append(contentsOf: (value ? "true" : "false").utf8)
    }

    consuming func finish() -> [UInt8] {
        out.append(UInt8(ascii: "}"))
        return out
    }
}
