/// One CSV record: its fields (raw bytes) and the line it starts on.
///
/// The fields sit one after the other in one buffer, which the reader reuses from
/// record to record: no array per field, no allocation per record once it has grown.
struct CSVRecord {
    /// 1-based physical line where the record starts (a quoted field may span lines).
    var line: Int
    /// The fields' bytes, concatenated.
    var bytes: [UInt8]
    /// Where each field ends in `bytes` (it starts where the one before ends).
    var ends: [Int]
    /// Why the record cannot be used (too long, unterminated quote, stray quote), if so.
    var problem: String?

    var count: Int { ends.count }

    subscript(field: Int) -> ArraySlice<UInt8> {
        bytes[(field == 0 ? 0 : ends[field - 1])..<ends[field]]
    }

    var fields: [ArraySlice<UInt8>] { (0..<count).map { self[$0] } }
}

/// An incremental RFC 4180 reader: bytes go in as they arrive, in chunks of any size
/// (a record may straddle chunks), and complete records come out, so a file of any
/// length is read in constant memory.
///
/// Accepts CRLF or LF line ends, a UTF-8 byte-order mark, quoted fields with `""`
/// escapes and line breaks. Blank lines are skipped. A record longer than
/// `maxRecordBytes` (e.g. a quote that is never closed) is reported with a problem and
/// the reader resynchronizes at the next line end.
struct CSVReader {
    private enum State {
        case fieldStart, unquoted, quoted, quoteInQuoted, skippingLine
    }

    let maxRecordBytes: Int
    private var state = State.fieldStart
    /// The record being read: the bytes of its fields and where each field ends.
    private var bytes: [UInt8] = []
    private var ends: [Int] = []
    private var line = 1
    private var recordLine = 1
    private var recordBytes = 0
    private var problem: String?
    private var sawQuote = false
    private var bomChecked = false
    private var bomBytes: [UInt8] = []

    init(maxRecordBytes: Int = 65_536) {
        self.maxRecordBytes = maxRecordBytes
    }

    /// Reads `bytes`, calling `emit` for each record completed.
    mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, _ emit: (CSVRecord) throws -> Void) rethrows {
        for byte in bytes {
            if bomChecked {
                try consume(byte, emit)
            } else {
                try checkBOM(byte, emit)
            }
        }
    }

    /// The end of the input: emits the last record if it has no line end.
    mutating func finish(_ emit: (CSVRecord) throws -> Void) rethrows {
        if !bomChecked { try flushBOM(emit) }
        switch state {
        case .quoted:
            problem = problem ?? "a quoted field is not closed before the end of the file"
            ends.append(bytes.count)
            try endRecord(emit)
        case .skippingLine:
            try endRecord(emit)
        case .fieldStart:
            if !ends.isEmpty || sawQuote {
                ends.append(bytes.count)
                try endRecord(emit)
            }
        case .unquoted, .quoteInQuoted:
            ends.append(bytes.count)
            try endRecord(emit)
        }
    }

    /// A UTF-8 byte-order mark (EF BB BF) at the very start is dropped; the bytes are
    /// held until it is clear whether they are one (a mark may straddle chunks).
    private mutating func checkBOM(_ byte: UInt8, _ emit: (CSVRecord) throws -> Void) rethrows {
        let mark: [UInt8] = [0xEF, 0xBB, 0xBF]
        bomBytes.append(byte)
        if bomBytes == Array(mark.prefix(bomBytes.count)) {
            if bomBytes.count == mark.count {
                bomChecked = true
                bomBytes = []
            }
            return
        }
        try flushBOM(emit)
    }

    private mutating func flushBOM(_ emit: (CSVRecord) throws -> Void) rethrows {
        bomChecked = true
        let pending = bomBytes
        bomBytes = []
        for byte in pending { try consume(byte, emit) }
    }

    private mutating func consume(_ byte: UInt8, _ emit: (CSVRecord) throws -> Void) rethrows {
        recordBytes += 1
        if recordBytes > maxRecordBytes, state != .skippingLine {
            problem = "the record is longer than \(maxRecordBytes) bytes"
            bytes.removeAll(keepingCapacity: true)
            ends.removeAll(keepingCapacity: true)
            state = .skippingLine
        }
        switch state {
        case .skippingLine:
            if byte == 0x0A {
                line += 1
                try endRecord(emit)
            }
        case .quoted:
            if byte == 0x22 {
                state = .quoteInQuoted
            } else {
                if byte == 0x0A { line += 1 }
                bytes.append(byte)
            }
        case .fieldStart, .unquoted, .quoteInQuoted:
            // Outside quotes (or just after a closing one) a comma ends the field, LF the
            // record, and CR is dropped; a quote opens a field only at its start, and
            // doubled inside a quoted field it stands for itself.
            switch byte {
            case 0x2C:
                ends.append(bytes.count)
                state = .fieldStart
            case 0x0A:
                ends.append(bytes.count)
                line += 1
                try endRecord(emit)
            case 0x0D:
                break
            case 0x22 where state == .fieldStart:
                sawQuote = true
                state = .quoted
            case 0x22 where state == .quoteInQuoted:
                bytes.append(0x22)
                state = .quoted
            default:
                if state == .quoteInQuoted { problem = problem ?? "a character follows a closing quote" }
                bytes.append(byte)
                state = .unquoted
            }
        }
    }

    private mutating func endRecord(_ emit: (CSVRecord) throws -> Void) rethrows {
        let blank = problem == nil && !sawQuote && ends.count == 1 && ends[0] == 0
        if !blank {
            try emit(CSVRecord(line: recordLine, bytes: bytes, ends: ends, problem: problem))
        }
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        problem = nil
        sawQuote = false
        recordBytes = 0
        recordLine = line
        state = .fieldStart
    }
}
