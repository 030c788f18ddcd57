/// The MIME encoders campaign messages need: quoted-printable and base64 bodies
/// (RFC 2045), encoded-words (RFC 2047) and folded header fields (RFC 5322 §2.2.3).
/// Everything works on bytes and writes CRLF line endings.
enum MIME {
    static let crlf: [UInt8] = [0x0D, 0x0A]
    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    // MARK: bodies

    /// The text with every line ending (CRLF, bare LF, bare CR) made CRLF.
    static func normalizeLineEndings(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { input in
            let n = input.count
            return [UInt8](unsafeUninitializedCapacity: 2 * n) { out, count in
                var o = 0
                var i = 0
                while i < n {
                    let c = input[i]
                    if c == 0x0D {
                        out[o] = 0x0D
                        out[o + 1] = 0x0A
                        o += 2
                        i += (i + 1 < n && input[i + 1] == 0x0A) ? 2 : 1
                    } else if c == 0x0A {
                        out[o] = 0x0D
                        out[o + 1] = 0x0A
                        o += 2
                        i += 1
                    } else {
                        out[o] = c
                        o += 1
                        i += 1
                    }
                }
                count = o
            }
        }
    }

    /// Quoted-printable (RFC 2045 §6.7) of CRLF-normalized text: CRLF stays a hard line
    /// break; other bytes outside 33…126, `=`, and a space or tab before a line end are
    /// `=XX`; encoded lines are at most 76 characters, ending in a soft break `=` when the
    /// source line goes on. A `.` or `From ` at the start of an encoded line is encoded
    /// too (`=2E`, `=46rom `), so the part survives dot-stuffing bugs and mbox `>From`
    /// munging unchanged.
    static func quotedPrintable(_ input: [UInt8], into out: inout [UInt8]) {
        let maxLine = 76
        let n = input.count
        // Worst case: every byte as "=XX" plus a soft break "=\r\n" per 25 bytes (3.12 n + 3);
        // 4 n + 16 leaves a margin.
        let encoded = input.withUnsafeBufferPointer { input in
            [UInt8](unsafeUninitializedCapacity: 4 * n + 16) { out, count in
                var o = 0
                var column = 0
                var i = 0
                while i < n {
                    let c = input[i]
                    if c == 0x0D, i + 1 < n, input[i + 1] == 0x0A {
                        out[o] = 0x0D
                        out[o + 1] = 0x0A
                        o += 2
                        column = 0
                        i += 2
                        continue
                    }
                    // Whether this byte is the last of its line.
                    let lastOnLine = i + 1 == n || (input[i + 1] == 0x0D && i + 2 < n && input[i + 2] == 0x0A)
                    var literal: Bool
                    switch c {
                    case 0x20, 0x09: literal = !lastOnLine
                    case 33...60, 62...126: literal = true
                    default: literal = false
                    }
                    if literal && column == 0 {
                        if c == UInt8(ascii: ".") { literal = false }
                        if c == UInt8(ascii: "F"), i + 4 < n, input[i + 1] == UInt8(ascii: "r"),
                           input[i + 2] == UInt8(ascii: "o"), input[i + 3] == UInt8(ascii: "m"),
                           input[i + 4] == UInt8(ascii: " ") { literal = false }
                    }
                    let width = literal ? 1 : 3
                    // Room for this token plus, unless it ends the line, a soft break "=".
                    if column + width > (lastOnLine ? maxLine : maxLine - 1) {
                        out[o] = UInt8(ascii: "=")
                        out[o + 1] = 0x0D
                        out[o + 2] = 0x0A
                        o += 3
                        column = 0
                        continue  // the byte now starts a line: evaluate it again
                    }
                    if literal {
                        out[o] = c
                        o += 1
                    } else {
                        out[o] = UInt8(ascii: "=")
                        out[o + 1] = hex[Int(c >> 4)]
                        out[o + 2] = hex[Int(c & 0x0F)]
                        o += 3
                    }
                    column += width
                    i += 1
                }
                count = o
            }
        }
        out += encoded
    }

    private static let base64Alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Base64 (RFC 2045 §6.8) in lines of 76 characters, each ending in CRLF.
    static func base64Lines(_ input: [UInt8], into out: inout [UInt8]) {
        let encoded = base64(input)
        var k = 0
        while k < encoded.count {
            let end = min(k + 76, encoded.count)
            out += encoded[k..<end]
            out += crlf
            k = end
        }
    }

    /// Plain base64 with padding, no line breaks.
    static func base64(_ input: some Collection<UInt8>, alphabet: [UInt8] = base64Alphabet, pad: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var it = input.makeIterator()
        while let a = it.next() {
            let b = it.next(), c = it.next()
            out.append(alphabet[Int(a >> 2)])
            out.append(alphabet[Int((a & 0x03) << 4 | (b ?? 0) >> 4)])
            if let b {
                out.append(alphabet[Int((b & 0x0F) << 2 | (c ?? 0) >> 6)])
            } else if pad {
                out.append(UInt8(ascii: "="))
            }
            if let c {
                out.append(alphabet[Int(c & 0x3F)])
            } else if pad {
                out.append(UInt8(ascii: "="))
            }
        }
        return out
    }

    /// Whether a body is better sent as base64: when so much of it is non-ASCII that
    /// quoted-printable (3 characters per such byte) would be clearly bigger and unreadable
    /// anyway — more than a third of the bytes.
    static func prefersBase64(_ body: [UInt8]) -> Bool {
        var high = 0
        for c in body where c >= 0x80 { high += 1 }
        return high * 3 > body.count
    }

    // MARK: header text

    /// Header text made safe: line breaks, tabs and other white space become one space
    /// (runs collapse), other control characters (C0, DEL, C1, bidi overrides, BOM) are
    /// removed, and the ends are trimmed. A header value can therefore never hold CR or LF.
    static func sanitizeHeaderText(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        var space = false
        for s in text.unicodeScalars {
            switch s.value {
            case 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F,
                 0x205F, 0x3000:
                space = true
            case 0x00...0x1F, 0x7F...0x9F, 0x200B...0x200F, 0x202A...0x202E, 0x2066...0x2069, 0xFEFF, 0xFFF9...0xFFFB:
                continue
            default:
                if space && !scalars.isEmpty { scalars.append(" ") }
                space = false
                scalars.append(s)
            }
        }
        return String(scalars)
    }

    /// Characters that may stand for themselves in a Q-encoded word anywhere it may
    /// appear, including a display name (RFC 2047 §5 (3)).
    private static func isQSafe(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return c == UInt8(ascii: "!") || c == UInt8(ascii: "*") || c == UInt8(ascii: "+")
                || c == UInt8(ascii: "-") || c == UInt8(ascii: "/")
        }
    }

    /// `text` as RFC 2047 encoded-words (`=?UTF-8?Q?…?=` when mostly ASCII, else
    /// `=?UTF-8?B?…?=`), each at most 75 characters and never splitting a character; the
    /// first at most `firstLimit` characters long. Adjacent encoded-words are separated
    /// by folding white space, which decoders drop.
    static func encodedWords(_ text: String, firstLimit: Int) -> [[UInt8]] {
        let bytes = Array(text.utf8)
        var high = 0
        for c in bytes where !isQSafe(c) && c != 0x20 { high += 1 }
        let useQ = high * 4 <= bytes.count  // mostly plain: Q stays readable and short
        let prefix: [UInt8] = Array((useQ ? "=?UTF-8?Q?" : "=?UTF-8?B?").utf8)
        let suffix: [UInt8] = Array("?=".utf8)
        let overhead = prefix.count + suffix.count
        var words: [[UInt8]] = []
        var chunk: [UInt8] = []  // raw UTF-8 bytes of the current word
        var chunkWidth = 0        // encoded width of `chunk` (Q only)

        func encodedWidth(_ raw: [UInt8]) -> Int {
            if useQ {
                var w = 0
                for c in raw { w += (isQSafe(c) || c == 0x20) ? 1 : 3 }
                return w
            }
            return (raw.count + 2) / 3 * 4
        }
        func finish() {
            guard !chunk.isEmpty else { return }
            var word = prefix
            if useQ {
                for c in chunk {
                    if c == 0x20 {
                        word.append(UInt8(ascii: "_"))
                    } else if isQSafe(c) {
                        word.append(c)
                    } else {
                        word.append(UInt8(ascii: "="))
                        word.append(hex[Int(c >> 4)])
                        word.append(hex[Int(c & 0x0F)])
                    }
                }
            } else {
                word += base64(chunk)
            }
            word += suffix
            words.append(word)
            chunk = []
            chunkWidth = 0
        }
        for scalar in text.unicodeScalars {
            let raw = Array(String(scalar).utf8)
            let limit = (words.isEmpty ? max(firstLimit, overhead + 4) : 75) - overhead
            let candidateWidth = useQ ? chunkWidth + encodedWidth(raw) : encodedWidth(chunk + raw)
            if !chunk.isEmpty && candidateWidth > limit { finish() }
            chunk += raw
            chunkWidth = useQ ? chunkWidth + encodedWidth(raw) : 0
        }
        finish()
        return words
    }

    /// True when the bytes hold "=?", the start of something a lenient decoder may take
    /// for an encoded-word (many decode them even inside a word).
    static func containsEncodedWordStart(_ word: some Collection<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for c in word {
            if previous == UInt8(ascii: "="), c == UInt8(ascii: "?") { return true }
            previous = c
        }
        return false
    }

    /// True when `text` can go into a header as it is: printable ASCII words, none holding
    /// "=?" (an encoded-word look-alike), each fitting on a folded line.
    static func isPlainHeaderText(_ text: String, firstLineRoom: Int) -> Bool {
        var first = true
        for word in text.utf8.split(separator: 0x20) {
            for c in word where c < 0x21 || c > 0x7E { return false }
            if containsEncodedWordStart(word) { return false }
            if word.count > (first ? firstLineRoom : 77) { return false }
            first = false
        }
        return true
    }

    /// A complete unstructured field (`Subject: …`) without its final CRLF: plain words
    /// folded at spaces when the (sanitized) value is printable ASCII, else encoded-words.
    /// Lines stay within 78 characters.
    static func unstructuredField(name: String, value: String) -> [UInt8] {
        let text = sanitizeHeaderText(value)
        let head = Array((name + ":").utf8)
        let room = 78 - head.count - 1
        if isPlainHeaderText(text, firstLineRoom: room) {
            return fold(head: head, tokens: text.utf8.split(separator: 0x20).map(Array.init))
        }
        return fold(head: head, tokens: encodedWords(text, firstLimit: room))
    }

    /// `head` then the tokens separated by single spaces, breaking (CRLF SP) before a
    /// token that would take the line past 78 characters. An empty token list gives `head`
    /// with an empty value.
    static func fold(head: [UInt8], tokens: [[UInt8]]) -> [UInt8] {
        var out = head
        var column = head.count
        var first = true
        for token in tokens {
            if !first && column + 1 + token.count > 78 {
                out += crlf
                column = 0
            }
            out.append(0x20)
            out += token
            column += 1 + token.count
            first = false
        }
        if tokens.isEmpty { out.append(0x20) }
        return out
    }
}
