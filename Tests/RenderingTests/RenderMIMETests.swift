import Foundation
import Testing

@testable import Rendering

@Suite("Render: MIME encoders")
struct RenderMIMETests {
    static let trickyTexts: [String] = [
        "",
        "plain ascii",
        String(repeating: "0123456789", count: 30),
        String(repeating: "x", count: 75) + "\n" + String(repeating: "y", count: 76) + "\n" + String(repeating: "z", count: 77),
        "trailing space \ntrailing tab\t\nboth \t \nend with space ",
        "a=b, ==, =3D, =\n=",
        "Grüße aus Zürich – naïve café 😀 日本語のテキスト",
        ".\n.starts with dot\n..two dots\nFrom the start\nFrom: header-ish\nFromage\n From indented",
        String(repeating: "é", count: 100),
        String(repeating: "a ", count: 60) + "\n" + String(repeating: " ", count: 100) + "\nx",
        "CRLF\r\nCR only\rLF only\nmixed\r\n\r\n\n",
        "\u{0}\u{1}\u{7F} controls and \u{1B}[31m escape",
        String(repeating: "=", count: 80) + String(repeating: "\t", count: 30),
        String(repeating: "ab😀", count: 40),
        "line ending in =\nline ending in ?=\n=?UTF-8?Q?looks_encoded?=",
    ]

    /// A minimal RFC 2045 quoted-printable decoder (to round-trip without Python).
    static func decodeQP(_ encoded: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while i < encoded.count {
            let c = encoded[i]
            if c == UInt8(ascii: "=") {
                if i + 2 < encoded.count, encoded[i + 1] == 0x0D, encoded[i + 2] == 0x0A { i += 3; continue }
                if i + 2 < encoded.count, let h = hex(encoded[i + 1]), let l = hex(encoded[i + 2]) {
                    out.append(h << 4 | l)
                    i += 3
                    continue
                }
                out.append(c)  // malformed: kept (never produced)
                i += 1
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }

    static func qpProblems(_ encoded: [UInt8]) -> [String] {
        var problems: [String] = []
        let lines = String(decoding: encoded, as: UTF8.self).components(separatedBy: "\r\n")
        for (n, line) in lines.enumerated() {
            if line.utf8.count > 76 { problems.append("line \(n) has \(line.utf8.count) chars") }
            if line.last == " " || line.last == "\t" { problems.append("line \(n) ends in white space") }
            if line.hasPrefix(".") { problems.append("line \(n) starts with a dot") }
            if line.hasPrefix("From ") { problems.append("line \(n) starts with From") }
            if line.utf8.contains(where: { $0 > 126 || ($0 < 32 && $0 != 9) }) { problems.append("line \(n) has raw bytes") }
        }
        if String(decoding: encoded, as: UTF8.self).contains("\n") && encoded.contains(where: { $0 == 0x0A }) {
            // every LF must belong to a CRLF
            for (i, c) in encoded.enumerated() where c == 0x0A && (i == 0 || encoded[i - 1] != 0x0D) {
                problems.append("bare LF at \(i)")
            }
        }
        return problems
    }

    @Test("quoted-printable: line limits, safe characters, exact round trip", arguments: trickyTexts)
    func quotedPrintable(text: String) {
        let input = MIME.normalizeLineEndings(text)
        var encoded: [UInt8] = []
        MIME.quotedPrintable(input, into: &encoded)
        #expect(Self.qpProblems(encoded) == [])
        #expect(Self.decodeQP(encoded) == input)
    }

    @Test("quoted-printable: random inputs round-trip")
    func quotedPrintableRandom() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [String] = ["a", "Z", " ", "\t", "=", ".", "F", "r", "o", "m", "\r\n", "\n", "é", "😀", "?", "_", "\u{0}", "~"]
        for _ in 0..<2000 {
            let length = Int.random(in: 0..<300, using: &rng)
            let text = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            let input = MIME.normalizeLineEndings(text)
            var encoded: [UInt8] = []
            MIME.quotedPrintable(input, into: &encoded)
            #expect(Self.qpProblems(encoded) == [])
            #expect(Self.decodeQP(encoded) == input)
        }
    }

    @Test("quoted-printable output decodes identically with Python's quopri")
    func quotedPrintablePython() async throws {
        // One record per text: base64(original) and the encoding, separated by newlines.
        var records: [String] = []
        for text in Self.trickyTexts {
            let input = MIME.normalizeLineEndings(text)
            var encoded: [UInt8] = []
            MIME.quotedPrintable(input, into: &encoded)
            records.append(Data(input).base64EncodedString() + " " + Data(encoded).base64EncodedString())
        }
        let code = """
        import sys, base64, quopri
        bad = 0
        for n, rec in enumerate(open(sys.argv[1]).read().split("\\n")):
            orig, enc = (base64.b64decode(x) for x in rec.split(" "))
            dec = quopri.decodestring(enc)
            # quopri's pure-Python fallback turns CRLF into LF; binascii keeps it.
            if dec.replace(b"\\r\\n", b"\\n") != orig.replace(b"\\r\\n", b"\\n"):
                bad += 1
                print("mismatch", n, repr(orig[:60]), repr(dec[:60]))
        print("bad", bad)
        """
        let output = String(decoding: try await RenderPython.run(code, input: Array(records.joined(separator: "\n").utf8)), as: UTF8.self)
        #expect(output.hasSuffix("bad 0\n"), "\(output)")
    }

    @Test("base64 body lines are 76 characters")
    func base64Lines() {
        var out: [UInt8] = []
        let input = Array(String(repeating: "日本語", count: 100).utf8)
        MIME.base64Lines(input, into: &out)
        let lines = String(decoding: out, as: UTF8.self).components(separatedBy: "\r\n").dropLast()
        #expect(lines.dropLast().allSatisfy { $0.count == 76 })
        #expect(lines.last!.count <= 76)
        #expect(Data(base64Encoded: lines.joined()) == Data(input))
        #expect(MIME.prefersBase64(input))
        #expect(!MIME.prefersBase64(Array("Grüße aus Zürich, schöne Grüße".utf8)))
    }

    @Test("header text: CR, LF and controls never survive sanitizing")
    func sanitize() {
        #expect(MIME.sanitizeHeaderText("x\r\nBcc: victim@evil.test") == "x Bcc: victim@evil.test")
        #expect(MIME.sanitizeHeaderText("  a\r\r\n\n\tb \u{0}c\u{7F}\u{85}d\u{2028}e\u{202E}f  ") == "a b c d ef")
        #expect(MIME.sanitizeHeaderText("\r\n") == "")
    }

    @Test("unstructured fields: plain ASCII folds at spaces within 78 columns")
    func foldPlain() {
        let value = (1...40).map { "word\($0)" }.joined(separator: " ")
        let field = String(decoding: MIME.unstructuredField(name: "Subject", value: value), as: UTF8.self)
        let lines = field.components(separatedBy: "\r\n")
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(lines.dropFirst().allSatisfy { $0.hasPrefix(" ") })
        #expect(lines.joined() == "Subject: " + value)  // unfolding gives the value back
    }

    @Test("unstructured fields: non-ASCII, encoded-word look-alikes and overlong words are encoded", arguments: [
        "Grüße, Bob! 😀",
        "=?UTF-8?B?SGk=?= literally",
        String(repeating: "x", count: 120),
        String(repeating: "日本語のテキスト", count: 12),
        "Hello Bob, your order #1234 ships today – thanks!",
    ])
    func encodedWords(value: String) async throws {
        let field = MIME.unstructuredField(name: "Subject", value: value)
        let text = String(decoding: field, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 78 }, "\(lines)")
        #expect(field.allSatisfy { $0 < 0x80 })
        for word in text.split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\n" }).dropFirst() {
            #expect(word.count <= 75)
        }
        let message = field + MIME.crlf + Array("From: a@b.test\r\n\r\nbody\r\n".utf8)
        let parsed = try await RenderPython.parse(message)
        #expect(parsed.subject == value)
        #expect(parsed.defects == [])
    }
}
