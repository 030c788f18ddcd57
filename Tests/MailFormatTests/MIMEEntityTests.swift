import MailFormat
import Testing

@Suite struct MIMEEntityTests {
    func parse(_ text: String, crlf: Bool = true, maxDepth: Int = 10, maxParts: Int = 1000) -> MIMEEntity {
        MIMEEntity.parse(ReportSamples.bytes(text, crlf: crlf), maxDepth: maxDepth, maxParts: maxParts)
    }

    func string(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The depth of the deepest entity (the root is 0) and the number of entities below the root.
    func shape(_ entity: MIMEEntity) -> (depth: Int, parts: Int) {
        var depth = 0
        var parts = 0
        for part in entity.parts {
            let inner = shape(part)
            depth = max(depth, inner.depth + 1)
            parts += inner.parts + 1
        }
        return (depth, parts)
    }

    // MARK: Headers

    @Test("header fields are unfolded, kept in order, and looked up case-insensitively", arguments: [true, false])
    func headers(crlf: Bool) {
        let entity = parse(
            """
            Subject: a long
             \tsubject
            X-Empty:
            Received: one
            received: two
            To:   someone@example.com  \n
            body line
            """, crlf: crlf)
        #expect(entity.headers.map(\.name) == ["Subject", "X-Empty", "Received", "received", "To"])
        #expect(entity.header("subject") == "a long \tsubject")
        #expect(entity.header("X-EMPTY") == "")
        #expect(entity.header("Received") == "one")
        #expect(entity.headers(named: "RECEIVED") == ["one", "two"])
        #expect(entity.header("to") == "someone@example.com")
        #expect(entity.header("Cc") == nil)
        #expect(string(entity.body) == "body line")
    }

    @Test("lines that are not fields are skipped, with their continuation lines")
    func skipsNonFields() {
        let entity = parse(
            """
            From someone@example.com Tue Mar  5 09:00:00 2024
            Subject: kept
            not a header line
             continuation of the junk
            <user@example.com>: not a field name either
            : no name
            X-Ok : spaced name
             folded

            body
            """)
        #expect(entity.headers.map(\.name) == ["Subject", "X-Ok"])
        #expect(entity.header("x-ok") == "spaced name folded")
        #expect(string(entity.body) == "body")
    }

    @Test("an entity starting with an empty line has no headers; one with no empty line and no field is all body")
    func bodiesWithoutHeaders() {
        let empty = parse("\nSubject: not a header\n")
        #expect(empty.headers.isEmpty)
        #expect(string(empty.body) == "Subject: not a header\r\n")

        let noFields = parse("just some text\nand more", crlf: false)
        #expect(noFields.headers.isEmpty)
        #expect(string(noFields.body) == "just some text\nand more")

        let onlyHeaders = parse("Subject: x\nFrom: y", crlf: true)
        #expect(onlyHeaders.headers.count == 2)
        #expect(onlyHeaders.body.isEmpty)
    }

    @Test("a header value that is not UTF-8 is read as windows-1252")
    func latinHeader() {
        let entity = MIMEEntity.parse(Array("Subject: caf".utf8) + [0xE9, 0x20, 0x80] + Array("\r\n\r\n".utf8))
        #expect(entity.header("Subject") == "café €")
    }

    // MARK: Content-Type

    @Test("the media type is lower-cased, defaults to text/plain, and ignores comments and whitespace", arguments: [
        (nil, "text/plain"),
        ("TEXT/HTML; charset=UTF-8", "text/html"),
        ("text/plain (plain text)", "text/plain"),
        (" multipart / Mixed ;boundary=x", "multipart/mixed"),
        ("texthtml", "text/plain"),
        ("text/", "text/plain"),
        ("text/plain/extra", "text/plain"),
        ("te xt@/plain", "text/plain"),
        ("", "text/plain"),
    ] as [(String?, String)])
    func mediaTypes(contentType: String?, expected: String) {
        let text = (contentType.map { "Content-Type: \($0)\n" } ?? "") + "\nbody"
        #expect(parse(text).mediaType == expected)
    }

    @Test("parameters: quoted or not, case-insensitive names, escapes, comments, RFC 2231")
    func parameters() {
        let entity = parse(
            """
            Content-Type: multipart/Mixed; BOUNDARY="=_a;b \\"c\\"";
             charset=us-ascii (Plain text); empty=; name*=utf-8''caf%C3%A9%20menu.txt;
             title*0="long ";title*1*=%E2%82%AC;title*2=" end"; flag

            """)
        #expect(entity.parameter("boundary") == "=_a;b \"c\"")
        #expect(entity.parameter("Charset") == "us-ascii")
        #expect(entity.parameter("empty") == "")
        #expect(entity.parameter("name") == "café menu.txt")
        #expect(entity.parameter("title") == "long € end")
        #expect(entity.parameter("flag") == nil)
        #expect(entity.parameter("missing") == nil)
        #expect(parse("Subject: x\n\n").parameter("charset") == nil)
    }

    // MARK: Multipart

    @Test("multipart: preamble and epilogue dropped, transport padding, the line break before a delimiter belongs to it",
        arguments: [true, false])
    func multipart(crlf: Bool) {
        let entity = parse(
            """
            Content-Type: multipart/alternative; boundary="b"

            preamble
            --bb is not a delimiter here
            --b \t
            Content-Type: text/plain

            first
            --bb
            --b
            Content-Type: text/html

            <p>second</p>

            --b--   \nepilogue
            --b
            not a part
            """, crlf: crlf)
        let newline = crlf ? "\r\n" : "\n"
        #expect(entity.mediaType == "multipart/alternative")
        #expect(entity.parts.count == 2)
        #expect(entity.parts.map(\.mediaType) == ["text/plain", "text/html"])
        #expect(string(entity.parts[0].body) == "first\(newline)--bb")
        #expect(string(entity.parts[1].body) == "<p>second</p>\(newline)")
        #expect(string(entity.body).hasPrefix("preamble"))
    }

    @Test("nested multiparts and an attached message are parsed; digest parts default to message/rfc822")
    func nested() {
        let entity = parse(
            """
            Content-Type: multipart/mixed; boundary=outer

            --outer
            Content-Type: multipart/alternative; boundary=inner

            --inner

            plain, no headers
            --inner
            Content-Type: text/html

            <b>html</b>
            --inner--
            --outer
            Content-Type: message/rfc822

            Subject: inner message
            Content-Type: text/plain

            inner body
            --outer
            Content-Type: multipart/digest; boundary=d

            --d

            Subject: digest item

            item body
            --d--
            --outer--
            """)
        #expect(entity.parts.map(\.mediaType) == ["multipart/alternative", "message/rfc822", "multipart/digest"])
        let alternative = entity.parts[0]
        #expect(alternative.parts.count == 2)
        #expect(alternative.parts[0].headers.isEmpty)
        #expect(alternative.parts[0].mediaType == "text/plain")
        #expect(alternative.parts[0].text == "plain, no headers")
        #expect(alternative.parts[1].text == "<b>html</b>")
        let message = entity.parts[1]
        #expect(message.parts.count == 1)
        #expect(message.parts.first?.header("Subject") == "inner message")
        #expect(message.parts.first?.text == "inner body")
        let digest = entity.parts[2]
        #expect(digest.parts.first?.mediaType == "message/rfc822")
        #expect(digest.parts.first?.parts.first?.header("Subject") == "digest item")
    }

    @Test("an unterminated multipart ends at the end; a boundary that never appears gives no parts")
    func unterminated() {
        let open = parse("Content-Type: multipart/mixed; boundary=x\n\n--x\n\none\n--x\n\ntwo, to the end\n")
        #expect(open.parts.map(\.text) == ["one", "two, to the end\r\n"])

        let absent = parse("Content-Type: multipart/mixed; boundary=never\n\n--other\n\nbody\n")
        #expect(absent.parts.isEmpty)
        #expect(string(absent.body) == "--other\r\n\r\nbody\r\n")

        let noBoundary = parse("Content-Type: multipart/mixed\n\n--x\n\nbody\n")
        #expect(noBoundary.parts.isEmpty)

        let delimiterOnly = parse("Content-Type: multipart/mixed; boundary=x\n\n--x--")
        #expect(delimiterOnly.parts.isEmpty)
    }

    @Test("nesting deeper than maxDepth is left raw", arguments: [0, 1, 10, 50])
    func depthLimit(maxDepth: Int) {
        var message = "innermost"
        for level in (0..<50).reversed() {
            message = "Content-Type: multipart/mixed; boundary=\"b\(level)\"\n\n--b\(level)\n\(message)\n--b\(level)--\n"
        }
        let entity = parse(message, maxDepth: maxDepth)
        let (depth, parts) = shape(entity)
        #expect(depth == min(maxDepth, 50))
        #expect(parts == min(maxDepth, 50))
        var deepest = entity
        while let next = deepest.parts.first { deepest = next }
        if maxDepth < 50 {
            #expect(deepest.mediaType == "multipart/mixed")
            #expect(deepest.parts.isEmpty)
            #expect(string(deepest.body).contains("innermost"))
        } else {
            #expect(deepest.text == "innermost")
        }
    }

    @Test("a huge maxDepth is capped; nesting beyond the cap does not exhaust the stack")
    func depthCap() {
        var message = "x"
        for _ in 0..<500 {
            message = "Content-Type: message/rfc822\n\n" + message
        }
        let entity = parse(message, crlf: false, maxDepth: Int.max)
        #expect(shape(entity).depth == MIMEEntity.depthLimit)
    }

    @Test("no more than maxParts entities in the whole tree")
    func partsLimit() {
        var message = "Content-Type: multipart/mixed; boundary=p\n\n"
        for index in 0..<3000 { message += "--p\n\npart \(index)\n" }
        message += "--p--\n"
        #expect(parse(message).parts.count == 1000)
        #expect(parse(message, maxParts: 10).parts.count == 10)
        #expect(parse(message, maxParts: 0).parts.isEmpty)
        #expect(parse(message, maxParts: -5).parts.isEmpty)

        var nested = "Content-Type: multipart/mixed; boundary=o\n\n"
        for _ in 0..<5 {
            nested += "--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\na\n--i\n\nb\n--i--\n"
        }
        nested += "--o--\n"
        #expect(shape(parse(nested)).parts == 15)
        #expect(shape(parse(nested, maxParts: 7)).parts == 7)
    }

    // MARK: Transfer encodings and text

    @Test("quoted-printable: =XX, soft line breaks, trailing whitespace, invalid escapes kept", arguments: [
        ("caf=C3=A9", "café"),
        ("lower =c3=a9 too", "lower é too"),
        ("soft=\r\nbreak", "softbreak"),
        ("soft= \t\nbreak with padding", "softbreak with padding"),
        ("hard  \r\nbreak", "hard\r\nbreak"),
        ("keep\nLF", "keep\nLF"),
        ("=3D=3d", "=="),
        ("invalid =ZZ and =4 and =", "invalid =ZZ and =4 and "),
        ("=\r\n", ""),
        ("a=\n=\nb", "ab"),
        ("100%=20", "100% "),
        ("==41", "=A"),
        ("", ""),
    ])
    func quotedPrintable(encoded: String, decoded: String) {
        #expect(string(MIMEEntity.decodeQuotedPrintable(Array(encoded.utf8))) == decoded)
    }

    @Test("base64: whitespace and line breaks ignored, invalid characters skipped, padding optional", arguments: [
        ("SGVsbG8sIHdvcmxkIQ==", "Hello, world!"),
        ("SGVs\r\nbG8s IHdv\tcmxk\nIQ==", "Hello, world!"),
        ("SGVsbG8sIHdvcmxkIQ", "Hello, world!"),
        ("SGV*sbG8s!IH~dvcm$xkIQ==", "Hello, world!"),
        ("QQ==QkM=", "ABC"),
        ("QUJD", "ABC"),
        ("QUJDR", "ABC"),
        ("", ""),
        ("====", ""),
        ("+/+/", "\u{FB}\u{FF}\u{BF}"),
    ])
    func base64(encoded: String, decoded: String) {
        let expected: [UInt8] = decoded.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
        #expect(MIMEEntity.decodeBase64(Array(encoded.utf8)) == expected)
    }

    @Test("decodedBody and text follow Content-Transfer-Encoding and charset")
    func decodedText() {
        let qp = parse("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: Quoted-Printable\n\nd=E9j=E0 vu =80")
        #expect(qp.transferEncoding == "quoted-printable")
        #expect(qp.text == "déjà vu €")

        let b64 = parse("Content-Transfer-Encoding: base64 (encoded)\n\nw6lsw6h2ZQ==")
        #expect(b64.transferEncoding == "base64")
        #expect(b64.text == "élève")

        let raw = parse("Content-Transfer-Encoding: 8bit\n\n=41")
        #expect(raw.decodedBody == Array("=41".utf8))

        let invalid = MIMEEntity.parse(Array("Content-Type: text/plain; charset=utf-8\n\nab".utf8) + [0xFF, 0x63])
        #expect(invalid.text == "ab\u{FFFD}c")
    }

    @Test("empty input")
    func emptyInput() {
        let entity = MIMEEntity.parse([])
        #expect(entity.headers.isEmpty)
        #expect(entity.body.isEmpty)
        #expect(entity.parts.isEmpty)
        #expect(entity.mediaType == "text/plain")
        #expect(entity.text == "")
    }
}
