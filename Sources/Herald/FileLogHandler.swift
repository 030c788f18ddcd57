import Foundation
import Logging

/// Log lines to a file (or stderr), one line per event:
/// `2026-11-24T00:07:37.123Z info herald: queued id=… client=…`.
public struct FileLogHandler: LogHandler {
    final class Sink: @unchecked Sendable {
        // stdio serialises each fputs with the FILE's own lock.
        let file: UnsafeMutablePointer<FILE>
        init(file: UnsafeMutablePointer<FILE>) { self.file = file }
        func write(_ line: String) {
            fputs(line, file)
            fflush(file)
        }
    }

    let label: String
    let sink: Sink
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Opens `path` for appending; falls back to stderr when it cannot.
    public static func makeFactory(path: String?) -> @Sendable (String) -> any LogHandler {
        var file: UnsafeMutablePointer<FILE> = fdopen(2, "a")
        if let path {
            try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                     withIntermediateDirectories: true)
            if let f = fopen(path, "a") { file = f }
        }
        let sink = Sink(file: file)
        return { label in FileLogHandler(label: label, sink: sink) }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        var line = Self.timestamp() + " \(event.level) \(label): \(event.message)"
        for (key, value) in all.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(value)"
        }
        sink.write(line + "\n")
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var t = tv.tv_sec
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, Int(tv.tv_usec / 1000))
    }
}
