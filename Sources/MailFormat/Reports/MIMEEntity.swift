/// A MIME entity (RFC 2045, RFC 2046) read tolerantly from raw bytes: what bounce and
/// complaint intake needs from mail written by every MTA and mailbox provider there is.
///
/// The parser never throws and never traps, whatever the bytes:
/// - Lines end in CRLF or a bare LF. The header block ends at the first empty line (or a
///   line of only spaces and tabs); folded fields are unfolded by removing the line breaks
///   (RFC 5322 §2.2.3); lines that are not `name: value` (the name made of RFC 7230 `tchar`s)
///   are skipped, and so are continuation lines that follow a skipped line. Input with no
///   empty line and no header field at all is a body without headers.
/// - A multipart body is split on `--boundary` lines (transport padding allowed after the
///   boundary); the preamble and the epilogue are dropped; a missing closing `--boundary--`
///   ends the last part at the end of the body; a boundary that never appears gives no parts.
/// - `message/rfc822` (and `message/global`, RFC 6532) holds its inner message as the one
///   part. Children of `multipart/digest` default to `message/rfc822` (RFC 2046 §5.1.5).
/// - Hostile nesting is bounded: entities deeper than `maxDepth` (and every part after the
///   `maxParts`-th in the whole tree) are not parsed; their parent keeps its raw body.
public struct MIMEEntity: Sendable {
    /// The header fields in order: names as written, values unfolded and trimmed. Values
    /// are UTF-8 when valid, else read as windows-1252. Encoded words (RFC 2047) are left
    /// as they are.
    public var headers: [(name: String, value: String)]
    /// The raw bytes after the header block (for a multipart, its whole raw body).
    public var body: [UInt8]
    /// The sub-entities of a `multipart/*`, or the single inner message of a
    /// `message/rfc822` or `message/global`.
    public var parts: [MIMEEntity]
    /// The media type assumed when there is no valid Content-Type: `text/plain`
    /// (RFC 2045 §5.2), or `message/rfc822` for the children of a `multipart/digest`.
    public var defaultMediaType: String

    /// A nesting bound applied whatever `maxDepth` a caller passes, so that parsing
    /// cannot exhaust the stack.
    public static let depthLimit = 64
    /// Content-Type parameters read per field; the rest are ignored (a real one has a few).
    static let parameterLimit = 256

    public init(
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = [],
        parts: [MIMEEntity] = [],
        defaultMediaType: String = "text/plain"
    ) {
        self.headers = headers
        self.body = body
        self.parts = parts
        self.defaultMediaType = defaultMediaType
    }

    /// The value of the first field named `name` (compared case-insensitively).
    public func header(_ name: String) -> String? {
        let key = name.lowercased()
        return headers.first { $0.name.lowercased() == key }?.value
    }

    /// The values of every field named `name` (compared case-insensitively), in order.
    public func headers(named name: String) -> [String] {
        let key = name.lowercased()
        return headers.filter { $0.name.lowercased() == key }.map(\.value)
    }

    /// The lower-cased `type/subtype` of the Content-Type field, or `defaultMediaType`
    /// when there is none or it is not a valid media type.
    public var mediaType: String {
        guard let value = header("Content-Type"), let type = MIMEScan.mediaType(of: value) else {
            return defaultMediaType
        }
        return type
    }

    /// A Content-Type parameter: quoted strings unquoted, the name compared
    /// case-insensitively; RFC 2231 extended values (`name*`) and continuations
    /// (`name*0`, `name*1*`, …) are decoded and joined when there is no plain `name`.
    public func parameter(_ name: String) -> String? {
        guard let value = header("Content-Type") else { return nil }
        return MIMEScan.parameter(name, in: MIMEScan.parameters(of: value))
    }

    /// The lower-cased Content-Transfer-Encoding mechanism, if there is one.
    public var transferEncoding: String? {
        guard let value = header("Content-Transfer-Encoding") else { return nil }
        let mechanism = MIMEScan.trimmed(
            String(String.UnicodeScalarView(value.unicodeScalars.prefix { $0 != "(" && $0 != ";" }))
        ).lowercased()
        return mechanism.isEmpty ? nil : mechanism
    }

    /// The body with its Content-Transfer-Encoding undone: quoted-printable and base64
    /// are decoded, anything else (7bit, 8bit, binary, unknown) is the raw body.
    public var decodedBody: [UInt8] {
        switch transferEncoding {
        case "quoted-printable": return Self.decodeQuotedPrintable(body)
        case "base64": return Self.decodeBase64(body)
        default: return body
        }
    }

    /// The decoded body as text: windows-1252 when the charset parameter names ISO-8859-1,
    /// windows-1252 or an alias of them (as browsers read them), else UTF-8 with invalid
    /// sequences replaced by U+FFFD. Line breaks are kept as they are.
    public var text: String {
        MIMEScan.decodeText(decodedBody, charset: parameter("charset"))
    }

    /// Parses `bytes` as a MIME entity (a whole message, or one part). Never traps or
    /// throws: malformed input gives the best reading there is.
    ///
    /// - Parameters:
    ///   - maxDepth: how deep entities are parsed; the root is depth 0, and an entity at
    ///     `maxDepth` keeps its raw body with no parts. Capped at ``depthLimit``.
    ///   - maxParts: how many sub-entities the whole tree may hold; the parts after that
    ///     are dropped (their parent keeps its raw body).
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 10, maxParts: Int = 1000) -> MIMEEntity {
        var budget = max(0, maxParts)
        let limit = min(max(0, maxDepth), depthLimit)
        return parse(bytes, depth: 0, maxDepth: limit, budget: &budget, defaultMediaType: "text/plain")
    }

    private static func parse(
        _ bytes: [UInt8], depth: Int, maxDepth: Int, budget: inout Int, defaultMediaType: String
    ) -> MIMEEntity {
        let block = MIMEScan.headerBlock(bytes)
        var entity: MIMEEntity
        if !block.endedByBlankLine && block.fields.isEmpty {
            entity = MIMEEntity(body: bytes, defaultMediaType: defaultMediaType)
        } else {
            let start = min(block.end, bytes.count)
            entity = MIMEEntity(
                headers: block.fields, body: Array(bytes[start...]), defaultMediaType: defaultMediaType
            )
        }
        guard depth < maxDepth, budget > 0 else { return entity }

        let type = entity.mediaType
        if type.hasPrefix("multipart/") {
            guard let boundary = entity.parameter("boundary"), !boundary.isEmpty else { return entity }
            let content = entity.decodedBody
            let childDefault = type == "multipart/digest" ? "message/rfc822" : "text/plain"
            for range in MIMEScan.partRanges(content, boundary: Array(boundary.utf8)) {
                guard budget > 0 else { break }
                budget -= 1
                entity.parts.append(
                    parse(
                        Array(content[range]), depth: depth + 1, maxDepth: maxDepth, budget: &budget,
                        defaultMediaType: childDefault
                    )
                )
            }
        } else if type == "message/rfc822" || type == "message/global" {
            budget -= 1
            entity.parts = [
                parse(
                    entity.decodedBody, depth: depth + 1, maxDepth: maxDepth, budget: &budget,
                    defaultMediaType: "text/plain"
                )
            ]
        }
        return entity
    }

    /// Decodes quoted-printable (RFC 2045 §6.7), tolerantly: `=XX` with upper- or
    /// lower-case hex digits is the byte; `=` at the end of a line (trailing spaces and
    /// tabs allowed) is a soft line break and disappears with the line break; an `=` that
    /// starts no valid escape is kept as it is. Trailing whitespace on a line is removed;
    /// line breaks (CRLF or LF) are kept as written.
    public static func decodeQuotedPrintable(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        while i < input.count {
            let (lineEnd, next) = MIMEScan.line(input, from: i)
            var end = lineEnd
            while end > i, input[end - 1] == MIMEScan.sp || input[end - 1] == MIMEScan.ht { end -= 1 }
            var soft = false
            if end > i, input[end - 1] == MIMEScan.equals {
                soft = true
                end -= 1
            }
            var j = i
            while j < end {
                let byte = input[j]
                if byte == MIMEScan.equals, let high = MIMEScan.hexValue(input, j + 1, end),
                    let low = MIMEScan.hexValue(input, j + 2, end)
                {
                    out.append(high << 4 | low)
                    j += 3
                } else {
                    out.append(byte)
                    j += 1
                }
            }
            if !soft { out.append(contentsOf: input[lineEnd..<next]) }
            i = next
        }
        return out
    }

    /// Decodes base64 (RFC 2045 §6.8), tolerantly: characters outside the alphabet
    /// (line breaks, spaces, garbage) are skipped; `=` ends a quantum, so concatenated
    /// padded chunks decode too; a final incomplete quantum gives the bytes it holds.
    public static func decodeBase64(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3 + 2)
        var accumulator: UInt32 = 0
        var count = 0

        func flush() {
            switch count {
            case 2:
                out.append(UInt8(truncatingIfNeeded: accumulator >> 4))
            case 3:
                out.append(UInt8(truncatingIfNeeded: accumulator >> 10))
                out.append(UInt8(truncatingIfNeeded: accumulator >> 2))
            default:
                break
            }
            accumulator = 0
            count = 0
        }

        for byte in input {
            let value: UInt32
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(byte - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(byte - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="):
                flush()
                continue
            default:
                continue
            }
            accumulator = accumulator << 6 | value
            count += 1
            if count == 4 {
                out.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                out.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                out.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator = 0
                count = 0
            }
        }
        flush()
        return out
    }
}

/// The byte- and scalar-level scanning shared by ``MIMEEntity`` and ``InboundReport``.
/// Every index is checked against the bounds before use.
enum MIMEScan {
    static let cr: UInt8 = 13
    static let lf: UInt8 = 10
    static let sp: UInt8 = 32
    static let ht: UInt8 = 9
    static let colon = UInt8(ascii: ":")
    static let equals = UInt8(ascii: "=")
    static let dash = UInt8(ascii: "-")

    /// The line starting at `start`: its content ends at `end` (before CRLF or LF), the
    /// next line starts at `next` (the end of `bytes` for the last line).
    static func line(_ bytes: [UInt8], from start: Int) -> (end: Int, next: Int) {
        var j = max(0, start)
        while j < bytes.count, bytes[j] != lf { j += 1 }
        let next = j < bytes.count ? j + 1 : j
        var end = j
        if end > start, bytes[end - 1] == cr { end -= 1 }
        return (end, next)
    }

    static func isBlank(_ bytes: [UInt8], _ start: Int, _ end: Int) -> Bool {
        var i = start
        while i < end, i < bytes.count {
            guard bytes[i] == sp || bytes[i] == ht || bytes[i] == cr else { return false }
            i += 1
        }
        return true
    }

    /// The value of the hex digit at `index` (before `end`), if it is one.
    static func hexValue(_ bytes: [UInt8], _ index: Int, _ end: Int) -> UInt8? {
        guard index >= 0, index < end, index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return bytes[index] - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return bytes[index] - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return bytes[index] - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// RFC 7230 `tchar`: what header field names are made of in practice.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    struct HeaderBlock {
        var fields: [(name: String, value: String)]
        /// Where the block ends: after the empty line, or the end of the input.
        var end: Int
        var endedByBlankLine: Bool
    }

    /// Reads `name: value` fields from `start` up to the first empty (or blank) line.
    static func headerBlock(_ bytes: [UInt8], from start: Int = 0) -> HeaderBlock {
        var raw: [(name: [UInt8], value: [UInt8])] = []
        var continuing = false
        var i = max(0, start)
        var ended = false
        while i < bytes.count {
            let (end, next) = line(bytes, from: i)
            if isBlank(bytes, i, end) {
                i = next
                ended = true
                break
            }
            let first = bytes[i]
            if first == sp || first == ht {
                if continuing, !raw.isEmpty {
                    raw[raw.count - 1].value.append(contentsOf: bytes[i..<end])
                }
            } else if let colonIndex = bytes[i..<end].firstIndex(of: colon),
                let name = fieldName(bytes, i, colonIndex)
            {
                raw.append((name, Array(bytes[(colonIndex + 1)..<end])))
                continuing = true
            } else {
                continuing = false
            }
            i = next
        }
        let fields = raw.map { field in
            (name: String(decoding: field.name, as: UTF8.self), value: trimmed(headerText(field.value)))
        }
        return HeaderBlock(fields: fields, end: i, endedByBlankLine: ended)
    }

    /// The field name before the colon at `colonIndex` (trailing whitespace allowed), if
    /// it is a non-empty run of token bytes.
    private static func fieldName(_ bytes: [UInt8], _ start: Int, _ colonIndex: Int) -> [UInt8]? {
        var end = colonIndex
        while end > start, bytes[end - 1] == sp || bytes[end - 1] == ht { end -= 1 }
        guard end > start else { return nil }
        let name = bytes[start..<end]
        guard name.allSatisfy(isTokenByte) else { return nil }
        return Array(name)
    }

    /// The ranges of the parts of a multipart body delimited by `--boundary` lines.
    static func partRanges(_ content: [UInt8], boundary: [UInt8]) -> [Range<Int>] {
        let delimiter = [dash, dash] + boundary
        var ranges: [Range<Int>] = []
        var partStart: Int?
        var i = 0
        while i < content.count {
            let (end, next) = line(content, from: i)
            if let closing = delimiterKind(content, i, end, delimiter) {
                if let start = partStart {
                    // The line break before a delimiter belongs to the delimiter.
                    var stop = i
                    if stop > start, content[stop - 1] == lf {
                        stop -= 1
                        if stop > start, content[stop - 1] == cr { stop -= 1 }
                    }
                    ranges.append(start..<max(start, stop))
                }
                if closing { return ranges }
                partStart = next
            }
            i = next
        }
        if let start = partStart, start <= content.count {
            ranges.append(start..<content.count)
        }
        return ranges
    }

    /// Whether the line `start..<end` is a delimiter: `nil` if not, `true` for the closing
    /// `--boundary--`, `false` for an opening one. Only spaces and tabs may follow.
    private static func delimiterKind(_ bytes: [UInt8], _ start: Int, _ end: Int, _ delimiter: [UInt8]) -> Bool? {
        guard end - start >= delimiter.count, end <= bytes.count else { return nil }
        guard bytes[start..<(start + delimiter.count)].elementsEqual(delimiter) else { return nil }
        var rest = start + delimiter.count
        var closing = false
        if rest + 1 < end, bytes[rest] == dash, bytes[rest + 1] == dash {
            closing = true
            rest += 2
        }
        guard isBlank(bytes, rest, end) else { return nil }
        return closing
    }

    // MARK: Text

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n"
    }

    static func trimmed(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        var start = 0
        var end = scalars.count
        while start < end, isWhitespace(scalars[start]) { start += 1 }
        while end > start, isWhitespace(scalars[end - 1]) { end -= 1 }
        if start == 0 && end == scalars.count { return text }
        return String(String.UnicodeScalarView(scalars[start..<end]))
    }

    /// A header field's bytes as text: UTF-8 (RFC 6532) when valid, else windows-1252.
    static func headerText(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        return windows1252(bytes)
    }

    static let singleByteCharsets: Set<String> = [
        "iso-8859-1", "iso8859-1", "iso_8859-1", "iso_8859-1:1987", "latin1", "latin-1", "l1",
        "cp819", "ibm819", "windows-1252", "cp1252", "x-cp1252", "ansi_x3.4-1968",
    ]

    static func decodeText(_ bytes: [UInt8], charset: String?) -> String {
        if let charset, singleByteCharsets.contains(trimmed(charset).lowercased()) {
            return windows1252(bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The code points of windows-1252 bytes 0x80…0x9F (the five unassigned ones map to
    /// the C1 control of the same value); the other bytes are ISO-8859-1.
    private static let windows1252High: [UInt32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
        0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
        0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
        0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
    ]

    static func windows1252(_ bytes: [UInt8]) -> String {
        var scalars = String.UnicodeScalarView()
        for byte in bytes {
            let index = Int(byte) - 0x80
            let value = index >= 0 && index < windows1252High.count ? windows1252High[index] : UInt32(byte)
            scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
        }
        return String(scalars)
    }

    // MARK: Content-Type

    /// The lower-cased `type/subtype` of a Content-Type value, if it is one (comments and
    /// whitespace around it ignored).
    static func mediaType(of value: String) -> String? {
        var scalars = String.UnicodeScalarView()
        for scalar in value.unicodeScalars {
            if scalar == ";" || scalar == "(" { break }
            if !isWhitespace(scalar) { scalars.append(scalar) }
        }
        let type = String(scalars).lowercased()
        let pieces = type.unicodeScalars.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count == 2 else { return nil }
        for piece in pieces {
            guard !piece.isEmpty,
                piece.allSatisfy({ $0.isASCII && isTokenByte(UInt8(truncatingIfNeeded: $0.value)) })
            else { return nil }
        }
        return type
    }

    /// The `name=value` parameters after the media type: names lower-cased, quoted
    /// strings unquoted, trailing comments of unquoted values dropped.
    static func parameters(of value: String) -> [(name: String, value: String)] {
        let s = Array(value.unicodeScalars)
        var result: [(name: String, value: String)] = []
        var i = s.firstIndex(of: ";") ?? s.count
        while i < s.count, result.count < MIMEEntity.parameterLimit {
            i += 1  // the ";"
            while i < s.count, isWhitespace(s[i]) { i += 1 }
            let nameStart = i
            while i < s.count, s[i] != "=", s[i] != ";" { i += 1 }
            let name = trimmed(string(s[nameStart..<i])).lowercased()
            guard i < s.count else { break }
            if s[i] == ";" { continue }
            i += 1  // the "="
            while i < s.count, isWhitespace(s[i]) { i += 1 }
            var parameterValue: String
            if i < s.count, s[i] == "\"" {
                i += 1
                var unquoted = String.UnicodeScalarView()
                while i < s.count, s[i] != "\"" {
                    if s[i] == "\\", i + 1 < s.count { i += 1 }
                    unquoted.append(s[i])
                    i += 1
                }
                parameterValue = String(unquoted)
                while i < s.count, s[i] != ";" { i += 1 }
            } else {
                let valueStart = i
                while i < s.count, s[i] != ";" { i += 1 }
                var valueScalars = Array(s[valueStart..<i])
                if let paren = valueScalars.firstIndex(of: "("), paren > 0, isWhitespace(valueScalars[paren - 1]) {
                    valueScalars.removeSubrange(paren...)
                }
                parameterValue = trimmed(string(valueScalars[...]))
            }
            if !name.isEmpty { result.append((name, parameterValue)) }
        }
        return result
    }

    static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        String(String.UnicodeScalarView(scalars))
    }

    /// Looks `name` up among `parameters`: a plain value first, then an RFC 2231
    /// extended value, then RFC 2231 continuations.
    static func parameter(_ name: String, in parameters: [(name: String, value: String)]) -> String? {
        let key = name.lowercased()
        var table: [String: String] = [:]
        for parameter in parameters where table[parameter.name] == nil {
            table[parameter.name] = parameter.value
        }
        if let plain = table[key] { return plain }
        if let extended = table[key + "*"] {
            let (charset, encoded) = splitExtendedValue(extended)
            return decodeText(percentDecoded(encoded), charset: charset)
        }
        var bytes: [UInt8] = []
        var charset: String?
        var index = 0
        while index < parameters.count {
            if let segment = table["\(key)*\(index)*"] {
                var encoded = segment
                if index == 0 { (charset, encoded) = splitExtendedValue(segment) }
                bytes += percentDecoded(encoded)
            } else if let segment = table["\(key)*\(index)"] {
                bytes += Array(segment.utf8)
            } else {
                break
            }
            index += 1
        }
        return index == 0 ? nil : decodeText(bytes, charset: charset)
    }

    /// `charset'language'value` → (charset, value); a value without the two quotes is
    /// taken whole.
    private static func splitExtendedValue(_ value: String) -> (charset: String?, value: String) {
        let pieces = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard pieces.count == 3 else { return (nil, value) }
        return (pieces[0].isEmpty ? nil : String(pieces[0]), String(pieces[2]))
    }

    private static func percentDecoded(_ value: String) -> [UInt8] {
        let bytes = Array(value.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), let high = hexValue(bytes, i + 1, bytes.count),
                let low = hexValue(bytes, i + 2, bytes.count)
            {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }
}
