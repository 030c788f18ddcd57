/// Strict CRLF framing of the SMTP command channel.
///
/// The framer owns the bytes received but not yet consumed. The session asks for one
/// line at a time, so that on STARTTLS it can see (and discard) whatever plaintext was
/// pipelined behind the command, and on DATA it can hand the remaining bytes to the
/// `DataReader` instead of framing them as commands.
public struct SMTPInputBuffer: Sendable {
    public enum LineResult: Equatable, Sendable {
        /// A complete line, without its CRLF.
        case line([UInt8])
        /// No complete line yet.
        case needMoreData
        /// A line longer than the limit; its bytes up to and including the CRLF were dropped.
        case tooLong
        /// A line ended by a bare LF (with what follows up to the next CRLF), or holding a
        /// bare CR; it was dropped.
        case bareLineEnding
    }

    private var bytes: [UInt8] = []
    private var start = 0
    /// True while the tail of an over-long line is being skipped.
    private var discarding = false
    /// True after a bare LF, until the CRLF that ends the refused line.
    private var skippingBareLine = false

    public init() {}

    public var isEmpty: Bool { start == bytes.count }
    public var count: Int { bytes.count - start }

    public mutating func append(_ data: some Sequence<UInt8>) {
        compactIfUseful()
        bytes.append(contentsOf: data)
    }

    /// Removes and returns every buffered byte.
    public mutating func takeAll() -> ArraySlice<UInt8> {
        let rest = bytes[start...]
        bytes.removeAll(keepingCapacity: true)
        start = 0
        return rest
    }

    /// Drops every buffered byte; returns how many there were.
    @discardableResult
    public mutating func discardAll() -> Int {
        let n = count
        bytes.removeAll(keepingCapacity: true)
        start = 0
        discarding = false
        skippingBareLine = false
        return n
    }

    /// Consumes `n` bytes from the front (used by the DATA reader).
    public mutating func consume(_ n: Int) {
        precondition(n <= count, "consuming more than is buffered")
        start += n
    }

    /// The unconsumed bytes.
    public var readable: ArraySlice<UInt8> { bytes[start...] }

    /// Frames the next command line; `maxLength` counts the CRLF, as RFC 5321 §4.5.3.1.4 does.
    ///
    /// Only CRLF ends a line. A bare LF is reported at once (`.bareLineEnding`), and
    /// what follows it up to the next CRLF belongs to the same refused line: the session
    /// is never re-synchronised on a bare LF (as Postfix refuses them), so
    /// `MAIL FROM:<a@b>\nRCPT TO:<c@d>\r\n` executes neither command.
    public mutating func nextLine(maxLength: Int) -> LineResult {
        while true {
            guard let lf = bytes[start...].firstIndex(of: 0x0A) else {
                if skippingBareLine || count > maxLength {
                    // Keep only the last byte (it may be the CR of the CRLF we wait for).
                    if !skippingBareLine { discarding = true }
                    if count > 0 {
                        start = bytes.count - 1
                        if bytes[start] != 0x0D { start = bytes.count }
                    }
                }
                return .needMoreData
            }
            let lineStart = start
            start = lf + 1
            let endsWithCRLF = lf > lineStart && bytes[lf - 1] == 0x0D
            if skippingBareLine {
                // The rest of a line that had a bare LF: dropped, already reported.
                if endsWithCRLF { skippingBareLine = false }
                continue
            }
            if discarding {
                discarding = false
                if !endsWithCRLF { skippingBareLine = true }
                return .tooLong
            }
            guard endsWithCRLF else {
                skippingBareLine = true
                return .bareLineEnding
            }
            let content = bytes[lineStart..<(lf - 1)]
            if content.count + 2 > maxLength { return .tooLong }
            if content.contains(0x0D) { return .bareLineEnding }
            return .line(Array(content))
        }
    }

    private mutating func compactIfUseful() {
        if start > 0 && (start == bytes.count || start > 4096) {
            bytes.removeSubrange(0..<start)
            start = 0
        }
    }
}
