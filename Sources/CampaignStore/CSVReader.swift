/// One CSV record: its fields (raw bytes) and the line it starts on.
struct CSVRecord {
    /// 1-based physical line where the record starts (a quoted field may span lines).
    var line: Int
    var fields: [[UInt8]]
    /// Why the record cannot be used (too long, unterminated quote, stray quote), if so.
    var problem: String?
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
    private var field: [UInt8] = []
    private var fields: [[UInt8]] = []
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
            fields.append(field)
            try endRecord(emit)
        case .skippingLine:
            try endRecord(emit)
        case .fieldStart:
            if !fields.isEmpty || sawQuote {
                fields.append(field)
                try endRecord(emit)
            }
        case .unquoted, .quoteInQuoted:
            fields.append(field)
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
            fields = []
            field = []
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
                field.append(byte)
            }
        case .fieldStart, .unquoted, .quoteInQuoted:
            // Outside quotes (or just after a closing one) a comma ends the field, LF the
            // record, and CR is dropped; a quote opens a field only at its start, and
            // doubled inside a quoted field it stands for itself.
            switch byte {
            case 0x2C:
                fields.append(field)
                field = []
                state = .fieldStart
            case 0x0A:
                fields.append(field)
                line += 1
                try endRecord(emit)
            case 0x0D:
                break
            case 0x22 where state == .fieldStart:
                sawQuote = true
                state = .quoted
            case 0x22 where state == .quoteInQuoted:
                field.append(0x22)
                state = .quoted
            default:
                if state == .quoteInQuoted { problem = problem ?? "a character follows a closing quote" }
                field.append(byte)
                state = .unquoted
            }
        }
    }

    private mutating func endRecord(_ emit: (CSVRecord) throws -> Void) rethrows {
        let blank = problem == nil && !sawQuote && fields.count == 1 && fields[0].isEmpty
        if !blank {
            try emit(CSVRecord(line: recordLine, fields: fields, problem: problem))
        }
        fields = []
        field = []
        problem = nil
        sawQuote = false
        recordBytes = 0
        recordLine = line
        state = .fieldStart
    }
}
