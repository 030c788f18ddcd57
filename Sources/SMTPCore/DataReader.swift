/// Reads a DATA section (RFC 5321 §4.1.1.4): undoes dot-stuffing, stops only at
/// `CRLF.CRLF`, and notes every violation instead of reacting to it at once, because
/// the server can answer only after the end of data.
///
/// A bare CR or a bare LF never starts or ends a line here: `LF.LF`, `CR.CR`, `LF.CRLF`
/// and friends are message content (and make the message rejected), so nothing behind
/// them can be read as a new SMTP command (CVE-2023-51764).
public struct DataReader: Sendable {
    public enum Violation: Equatable, Sendable {
        case bareLineEnding
        case lineTooLong
        case tooLarge
        case nulCharacter
    }

    private enum ScanState: Sendable {
        case lineStart          // just after CRLF (or at the very start)
        case inLine
        case sawCR              // inside a line, the previous byte was CR
        case dotAtLineStart     // a line began with "."
        case dotCR              // a line is "." then CR
    }

    public let maxMessageSize: Int
    public let maxLineLength: Int
    public private(set) var message: [UInt8] = []
    /// The first violation seen, if any (later ones do not change the reply).
    public private(set) var violation: Violation?
    /// Octets received on the wire for this DATA section.
    public private(set) var wireOctets = 0
    public private(set) var sawEightBit = false
    private var state = ScanState.lineStart
    private var lineLength = 0

    /// `maxLineLength` counts the CRLF, so 1000 allows 998 octets of text.
    public init(maxMessageSize: Int, maxLineLength: Int = 1000) {
        self.maxMessageSize = maxMessageSize
        self.maxLineLength = maxLineLength
        message.reserveCapacity(min(maxMessageSize, 16 * 1024))
    }

    /// Scans `input`; returns how many bytes belong to this DATA section and whether its
    /// end (`CRLF.CRLF`) was among them. Bytes after the end are not consumed.
    public mutating func consume(_ input: ArraySlice<UInt8>) -> (consumed: Int, finished: Bool) {
        var index = input.startIndex
        while index < input.endIndex {
            let byte = input[index]
            index += 1
            if byte == 0 { note(.nulCharacter) }
            if byte >= 0x80 { sawEightBit = true }
            switch state {
            case .lineStart:
                if byte == UInt8(ascii: ".") {
                    state = .dotAtLineStart
                    lineLength = 1
                } else {
                    lineLength = 0
                    content(byte)
                }
            case .dotAtLineStart:
                if byte == 0x0D {
                    state = .dotCR
                } else {
                    // The stuffed dot is dropped; the byte is ordinary content.
                    content(byte)
                }
            case .dotCR:
                if byte == 0x0A {
                    wireOctets += index - input.startIndex
                    state = .lineStart
                    return (index - input.startIndex, true)
                }
                // "." CR x: a bare CR after a stuffed dot.
                note(.bareLineEnding)
                append(0x0D)
                state = .inLine
                content(byte)
            case .inLine:
                content(byte)
            case .sawCR:
                if byte == 0x0A {
                    append(0x0D)
                    append(0x0A)
                    state = .lineStart
                    lineLength = 0
                } else {
                    note(.bareLineEnding)
                    append(0x0D)
                    state = .inLine
                    content(byte)
                }
            }
        }
        wireOctets += input.count
        return (input.count, false)
    }

    /// An ordinary byte inside a line (never the LF of a CRLF).
    private mutating func content(_ byte: UInt8) {
        if byte == 0x0D {
            state = .sawCR
            lineLength += 1
            return
        }
        if byte == 0x0A {
            // A bare LF: content, not a line ending.
            note(.bareLineEnding)
        }
        state = .inLine
        lineLength += 1
        // The octets of the line so far plus the CRLF that must still end it.
        if lineLength + 2 > maxLineLength { note(.lineTooLong) }
        append(byte)
    }

    private mutating func append(_ byte: UInt8) {
        if message.count >= maxMessageSize {
            note(.tooLarge)
            return
        }
        message.append(byte)
    }

    private mutating func note(_ v: Violation) {
        if violation == nil { violation = v }
    }

    /// The reply owed for a violation, as the server sends it after the end of data.
    public static func reply(for violation: Violation) -> SMTPReply {
        switch violation {
        case .bareLineEnding:
            return SMTPReply(550, EnhancedStatusCode(5, 6, 0),
                             "Message contains bare CR or LF; lines must end with CRLF")
        case .lineTooLong:
            return SMTPReply(500, EnhancedStatusCode(5, 5, 2),
                             "Message contains a line longer than 1000 octets")
        case .tooLarge:
            return SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Message size exceeds fixed limit")
        case .nulCharacter:
            return SMTPReply(550, EnhancedStatusCode(5, 6, 0), "Message contains NUL characters")
        }
    }
}

/// Dot-stuffs a message for sending in DATA (RFC 5321 §4.5.2) and appends `CRLF.CRLF`.
/// The input must already use CRLF line endings.
public func dotStuffed(_ message: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(message.count + 64)
    // Runs between the dots that start a line are copied whole; a line starts at the
    // beginning and after each CRLF.
    message.withUnsafeBufferPointer { m in
        var runStart = 0
        var i = 0
        while i < m.count {
            if m[i] == UInt8(ascii: "."), i == 0 || (i >= 2 && m[i - 1] == 0x0A && m[i - 2] == 0x0D) {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: m[runStart..<i]))
                out.append(UInt8(ascii: "."))
                runStart = i
            }
            i += 1
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: m[runStart..<m.count]))
    }
    if !(out.count >= 2 && out[out.count - 2] == 0x0D && out[out.count - 1] == 0x0A) && !out.isEmpty {
        out.append(contentsOf: [0x0D, 0x0A])
    }
    out.append(contentsOf: [UInt8(ascii: "."), 0x0D, 0x0A])
    return out
}
