import Foundation
import Testing

@testable import Rendering

@Suite("Render: messages")
struct RenderMessageTests {
    let bob = RecipientVariables(email: "bob@example.test", firstName: "Bob", lastName: "Smith",
                                 attributes: ["plan": "pro"])

    @Test("a complete multipart/alternative message, as Python's email package reads it")
    func complete() async throws {
        let renderer = try RenderFixtures.renderer(
            subject: "{{campaign.name}} offer for {{first_name}}",
            html: "<h1>Hello {{first_name}}</h1>\n<p>Your plan: {{attributes.plan}}. <a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>",
            replyTo: try MailAddress("support@herald.test", name: "Support Team"))
        let rendered = try renderer.render(recipient: bob, listUnsubscribe: RenderFixtures.unsubscribe, date: RenderFixtures.date)
        let m = rendered.bytes
        #expect(MessageLines.problems(m) == [])
        #expect(MessageLines.fields(m).map(\.0) == [
            "From", "To", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe",
            "List-Unsubscribe-Post", "X-Herald-Campaign", "Content-Type",
        ])
        let p = try await RenderPython.parse(m)
        #expect(p.defects == [])
        #expect(p.isMultipart && p.contentType == "multipart/alternative")
        #expect(p.parts.map(\.type) == ["text/plain", "text/html"])
        #expect(p.parts.allSatisfy { $0.charset == "utf-8" && $0.defects.isEmpty })
        #expect(p.subject == "Spring offer for Bob")
        #expect(p.from?.name == "Herald News" && p.from?.addr == "news@herald.test")
        #expect(p.to?.name == "Bob Smith" && p.to?.addr == "bob@example.test")
        #expect(p.replyTo?.name == "Support Team" && p.replyTo?.addr == "support@herald.test")
        #expect(p.header("Date") == "Tue, 05 Mar 2024 09:00:00 +0000")
        #expect(p.header("Message-ID") == "<\(rendered.messageID)>")
        #expect(rendered.messageID.hasSuffix("@herald.test") && rendered.messageID.count > 30)
        #expect(p.header("MIME-Version") == "1.0")
        #expect(p.header("List-Unsubscribe")
            == "<https://herald.test/u/abc.def>, <mailto:unsubscribe+abc@herald.test?subject=unsubscribe>")
        #expect(p.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click")
        #expect(p.header("X-Herald-Campaign") == "c-42")
        #expect(p.part("text/html")?.content.crlfAsLF == rendered.parts.html?.crlfAsLF)
        #expect(p.part("text/plain")?.content.crlfAsLF == rendered.parts.text.crlfAsLF)
        #expect(rendered.parts.text == "Hello Bob\n\nYour plan: pro. Unsubscribe (https://herald.test/u/abc.def)")
        #expect(!rendered.needsSMTPUTF8)
    }

    @Test("Unicode subject and names are RFC 2047 encoded and decode to the original")
    func unicodeHeaders() async throws {
        let from = try MailAddress("news@herald.test", name: "Zürcher Blätter – Redaktion")
        let template = try CampaignTemplate(subject: "Grüße, {{first_name}}! 😀 Ihre Bestellung «{{attributes.order}}» ist unterwegs",
                                            html: "<p>Hallo {{first_name}}</p>", text: nil)
        let renderer = try MessageRenderer(template: template, from: from, messageIDDomain: "herald.test")
        let r = RecipientVariables(email: "jose@example.test", firstName: "José", lastName: "Müller-Lüdenscheidt",
                                   attributes: ["order": "№ 12345"])
        let m = try renderer.render(recipient: r, listUnsubscribe: nil, date: RenderFixtures.date).bytes
        #expect(MessageLines.problems(m) == [])
        #expect(MessageLines.headerLines(m).allSatisfy { $0.utf8.count <= 78 && $0.utf8.allSatisfy { $0 < 0x80 } })
        let p = try await RenderPython.parse(m)
        #expect(p.defects == [])
        #expect(p.subject == "Grüße, José! 😀 Ihre Bestellung «№ 12345» ist unterwegs")
        #expect(p.from?.name == "Zürcher Blätter – Redaktion" && p.from?.rfcName == "Zürcher Blätter – Redaktion")
        #expect(p.to?.name == "José Müller-Lüdenscheidt" && p.to?.rfcName == "José Müller-Lüdenscheidt")
        #expect(p.header("List-Unsubscribe") == nil && p.header("List-Unsubscribe-Post") == nil)
    }

    @Test("display names with specials are quoted; plain ones are atoms", arguments: [
        ("Herald News", "From: Herald News <news@herald.test>"),
        ("Smith, John (Sales)", #"From: "Smith, John (Sales)" <news@herald.test>"#),
        (#"Say "hi" \ bye"#, #"From: "Say \"hi\" \\ bye" <news@herald.test>"#),
        ("john.doe@example.test", #"From: "john.doe@example.test" <news@herald.test>"#),
    ])
    func displayNames(name: String, expected: String) async throws {
        let address = try MailAddress("news@herald.test", name: name)
        let field = String(decoding: address.headerField("From"), as: UTF8.self)
        #expect(field == expected)
        let p = try await RenderPython.parse(Array((field + "\r\nSubject: x\r\n\r\nbody\r\n").utf8))
        #expect(p.from?.name == name && p.from?.rfcName == name)
        #expect(p.from?.addr == "news@herald.test")
        #expect(p.defects == [])
    }

    @Test("MailAddress parses the usual forms")
    func parsing() throws {
        #expect(try MailAddress(parsing: "News <news@herald.test>") == MailAddress("news@herald.test", name: "News"))
        #expect(try MailAddress(parsing: #""Smith, \"J\"" <j@herald.test>"#) == MailAddress("j@herald.test", name: #"Smith, "J""#))
        #expect(try MailAddress(parsing: " <j@herald.test> ") == MailAddress("j@herald.test"))
        #expect(try MailAddress(parsing: "j@herald.test") == MailAddress("j@herald.test"))
        #expect(throws: AddressError.self) { try MailAddress(parsing: "News <news@herald.test") }
        #expect(throws: AddressError.self) { try MailAddress(parsing: "News <>") }
        // The angle-addr starts at the first `<` outside the display name's quotes, not at
        // the last one: a quoted local part may hold `<` (fuzzing finding F3).
        #expect(try MailAddress(parsing: #"Doe <"a<b"@example.com>"#) == MailAddress(#""a<b"@example.com"#, name: "Doe"))
        #expect(try MailAddress(parsing: #""x <y> z" <a@example.com>"#) == MailAddress("a@example.com", name: "x <y> z"))
        #expect(try MailAddress(parsing: #""q\"<" <a@example.com>"#) == MailAddress("a@example.com", name: #"q"<"#))
        // What headerField writes reads back to the same address.
        let quoted = try MailAddress(#""a<b>c"@example.com"#, name: "Doe")
        let field = String(decoding: quoted.headerField("To"), as: UTF8.self)
        #expect(try MailAddress(parsing: String(field.dropFirst("To:".count))) == quoted)
    }

    @Test("MailAddress says what is wrong with an address")
    func addressReasons() {
        func reason(_ address: String) -> String? {
            do {
                _ = try MailAddress(address)
                return nil
            } catch {
                return error.reason
            }
        }
        #expect(reason("a@b.example") == nil)
        #expect(reason("\"a b\"@b.example") == nil)
        // Literals only as SMTP address literals: the address may become an envelope
        // address, and `RCPT TO:<a@[foo]>` is refused by every SMTP server (Herald's own
        // included). Fuzzing finding F1 (docs/reliability.md).
        #expect(reason("a@[192.0.2.1]") == nil)
        #expect(reason("a@[IPv6:2001:db8::1]") == nil)
        #expect(reason("a@[x-tag:a>b]") == nil)
        #expect(reason("a@[foo]") == "bad domain")
        #expect(reason("x@[a>b]") == "bad domain")
        #expect(reason("") == "empty address")
        #expect(reason("@b.example") == "empty local part")
        #expect(reason("a..b@b.example") == "empty part in the local part")
        #expect(reason("a.@b.example") == "local part ends with '.'")
        #expect(reason("a<b@b.example") == "character '<' not allowed in the local part")
        #expect(reason("a b@b.example") == "character 0x20 not allowed in the local part")
        #expect(reason("\"a\u{1}\"@b.example") == "control character in the quoted local part")
        #expect(reason("a@b.example\nBcc: c@d.example") == "bad domain")
        #expect(reason(String(repeating: "l", count: 65) + "@b.example") == "local part longer than 64 octets")
        let a254 = String(repeating: "l", count: 64) + "@" + ["a", "b", "c"].map { String(repeating: $0, count: 63) }
            .joined(separator: ".").dropLast(2)
        #expect(a254.utf8.count == 254)
        #expect(reason(a254) == nil)
        #expect(reason(a254 + "c") == "longer than 254 octets")
    }

    @Test("a display name with an unbreakable 200-character word is encoded, not left overlong")
    func unbreakableName() async throws {
        let name = "x" + String(repeating: "y", count: 200) + ",z"
        let field = try MailAddress("a@herald.test", name: name).headerField("From")
        let lines = String(decoding: field, as: UTF8.self).components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        let p = try await RenderPython.parse(field + Array("\r\nSubject: x\r\n\r\nbody\r\n".utf8))
        #expect(p.from?.rfcName == name)
        #expect(p.from?.addr == "a@herald.test")
    }

    @Test("long display names and subjects fold within 78 columns and decode")
    func longHeaders() async throws {
        let longName = (1...20).map { "Name\($0)" }.joined(separator: " ")
        let longSubject = (1...30).map { "Wort\($0)" }.joined(separator: " ") + " ünd mehr"
        let from = try MailAddress("news@herald.test", name: longName + ", Inc.")
        let template = try CampaignTemplate(subject: longSubject, html: nil, text: "body")
        let renderer = try MessageRenderer(template: template, from: from, messageIDDomain: "herald.test")
        let r = RecipientVariables(email: "a@example.test", name: String(repeating: "Ä", count: 70))
        let m = try renderer.render(recipient: r, listUnsubscribe: RenderFixtures.unsubscribe, date: RenderFixtures.date).bytes
        #expect(MessageLines.problems(m) == [])
        #expect(MessageLines.headerLines(m).allSatisfy { $0.utf8.count <= 78 })
        let p = try await RenderPython.parse(m)
        #expect(p.defects == [])
        #expect(p.subject == longSubject)
        #expect(p.from?.name == longName + ", Inc.")
        #expect(p.from?.rfcName == longName + ", Inc.")
        // 70 Ä need two encoded-words: see ParsedMessage.Address about Python's reading.
        #expect(p.to?.rfcName == String(repeating: "Ä", count: 70))
        #expect(p.to?.name.replacingOccurrences(of: " ", with: "") == String(repeating: "Ä", count: 70))
    }

    @Test("CR/LF in variables never adds a header (subject, display name, extra header)")
    func headerInjection() async throws {
        let attacks = [
            "x\r\nBcc: victim@evil.test",
            "x\nBcc: victim@evil.test",
            "x\rBcc: victim@evil.test",
            "x\r\n\r\nInjected body",
            "x\u{85}Bcc: victim@evil.test",
            "x\r\n Bcc: victim@evil.test",
            "x\u{0}\r\nBcc: victim@evil.test",
            "ü\r\nBcc: victim@evil.test",
        ]
        var messages: [[UInt8]] = []
        for attack in attacks {
            let renderer = try RenderFixtures.renderer(subject: "Hello {{first_name}} {{attributes.x}}",
                                                       html: "<p>{{first_name}}</p>",
                                                       extraHeaders: [ExtraHeader("X-Herald-Campaign", attack)])
            let r = RecipientVariables(email: "bob@example.test", firstName: attack, attributes: ["x": .string(attack)])
            let m = try renderer.render(recipient: r, listUnsubscribe: RenderFixtures.unsubscribe, date: RenderFixtures.date).bytes
            #expect(MessageLines.problems(m) == [])
            #expect(MessageLines.fields(m).map(\.0) == [
                "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe",
                "List-Unsubscribe-Post", "X-Herald-Campaign", "Content-Type",
            ])
            messages.append(m)
        }
        let parsed = try await RenderPython.parse(messages)
        for (attack, p) in zip(attacks, parsed) {
            #expect(p.defects == [])
            #expect(!p.headerNames.contains { $0.lowercased() == "bcc" })
            #expect(p.headerNames.count == 10)
            #expect(p.to?.addr == "bob@example.test")
            let clean = MIME.sanitizeHeaderText(attack)
            #expect(p.to?.name == clean && p.to?.rfcName == clean)
            #expect(p.subject == "Hello \(clean) \(clean)")
            #expect(p.header("X-Herald-Campaign") == clean)
            #expect(p.parts.count == 2)
        }
    }

    @Test("random variables never break the message structure or add a header")
    func randomVariables() async throws {
        let renderer = try RenderFixtures.renderer(
            subject: "{{first_name}} {{attributes.a}}{{last_name}}",
            html: "<p>{{first_name}}</p><a href=\"{{attributes.a}}\">{{attributes.b}}</a>{{{attributes.b}}}",
            extraHeaders: [ExtraHeader("X-Herald-Campaign", "c-42")])
        let pieces = ["\r", "\n", "\r\n", "\t", " ", "\u{0}", "\u{1B}", "\u{7F}", "\u{85}", "\u{2028}", "\u{FEFF}",
                      "Bcc:", "To: a@b.test", "=?UTF-8?B?", "?=", "\"", "\\", "<", ">", ",", ";", ":", "@", "(", ")",
                      "é", "日本", "😀", "x", "From ", ".", "=", "--=_herald_", String(repeating: "w", count: 90)]
        var rng = SystemRandomNumberGenerator()
        func random() -> String { (0..<Int.random(in: 0..<25, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined() }
        var sample: [RenderedMessage] = []
        var names: [String] = []
        for n in 0..<1500 {
            let r = RecipientVariables(email: "user\(n)@example.test", firstName: random(), lastName: random(), name: random(),
                                       attributes: ["a": .string(random()), "b": .string(random())])
            let rendered = try renderer.render(recipient: r, listUnsubscribe: RenderFixtures.unsubscribe)
            #expect(MessageLines.problems(rendered.bytes) == [])
            #expect(MessageLines.fields(rendered.bytes).count == 10)
            if n % 10 == 0 {
                sample.append(rendered)
                names.append(MIME.sanitizeHeaderText(r.displayName ?? ""))
            }
        }
        let parsed = try await RenderPython.parse(sample.map(\.bytes))
        for (p, (rendered, name)) in zip(parsed, zip(sample, names)) {
            #expect(p.subject == MIME.sanitizeHeaderText(rendered.parts.subject))
            #expect(p.to?.rfcName == name)
            #expect(p.to?.addr.hasPrefix("user") == true)
            #expect(p.part("text/html")?.content.crlfAsLF == MIME.normalizeLineEndings(rendered.parts.html!).decodedUTF8.crlfAsLF)
            #expect(p.defects == [])
            #expect(p.headerNames.count == 10)
            #expect(p.parts.count == 2)
            #expect(p.parts.allSatisfy { $0.defects.isEmpty })
        }
    }

    @Test("an address with CR/LF or other junk is refused, not written")
    func badAddresses() throws {
        let renderer = try RenderFixtures.renderer()
        for address in ["bob@example.test\r\nBcc: victim@evil.test", "bob@example.test>, <victim@evil.test", "bob", "bob@",
                        "@example.test", "bo b@example.test", "bob@exa mple.test", "bob@-example.test", "bob..x@example.test",
                        "\"bob\r\n\"@example.test", String(repeating: "a", count: 65) + "@example.test"] {
            #expect(throws: RenderError.self) {
                _ = try renderer.render(recipient: RecipientVariables(email: address), listUnsubscribe: nil)
            }
        }
        #expect(throws: AddressError.self) { _ = try MailAddress("news@herald.test\nBcc: x@y.test") }
        #expect(throws: RenderError.self) {
            _ = try RenderFixtures.renderer(extraHeaders: [ExtraHeader("X-Bad\r\nBcc", "v")])
        }
        #expect(throws: RenderError.self) { _ = try RenderFixtures.renderer(extraHeaders: [ExtraHeader("Bcc", "v")]) }
        #expect(throws: RenderError.self) {
            _ = try renderer.render(recipient: bob, listUnsubscribe: ListUnsubscribe(url: "https://x.test/u/a>\r\nBcc: v@evil.test"))
        }
        #expect(throws: RenderError.self) {
            _ = try renderer.render(recipient: bob, listUnsubscribe: ListUnsubscribe(url: "javascript:alert(1)"))
        }
        #expect(throws: RenderError.self) {
            _ = try MessageRenderer(template: renderer.template, from: RenderFixtures.from, messageIDDomain: "bad domain\r\n")
        }
        // Quoted local parts and UTF-8 addresses are fine; the latter need SMTPUTF8.
        #expect(try renderer.render(recipient: RecipientVariables(email: "\"john doe\"@example.test"), listUnsubscribe: nil).bytes.count > 0)
        #expect(try renderer.render(recipient: RecipientVariables(email: "jösé@exämple.test"), listUnsubscribe: nil).needsSMTPUTF8)
    }

    @Test("parts round-trip for tricky bodies: long lines, trailing spaces, '=', non-ASCII, dots, From")
    func trickyBodies() async throws {
        var messages: [[UInt8]] = []
        var expected: [RenderedParts] = []
        for text in RenderMIMETests.trickyTexts where !text.isEmpty && !text.contains("\u{0}") {
            let template = try CampaignTemplate(subject: "t", html: "<pre>{{attributes.body}}</pre>", text: "{{attributes.body}}")
            let renderer = try MessageRenderer(template: template, from: RenderFixtures.from, messageIDDomain: "herald.test")
            let r = RecipientVariables(email: "a@example.test", attributes: ["body": .string(text)])
            let rendered = try renderer.render(recipient: r, listUnsubscribe: nil, date: RenderFixtures.date)
            #expect(MessageLines.problems(rendered.bytes) == [], "\(text)")
            messages.append(rendered.bytes)
            expected.append(rendered.parts)
        }
        let parsed = try await RenderPython.parse(messages)
        for (p, e) in zip(parsed, expected) {
            #expect(p.defects == [])
            #expect(p.part("text/plain")?.content.crlfAsLF == MIME.normalizeLineEndings(e.text).decodedUTF8.crlfAsLF)
            #expect(p.part("text/html")?.content.crlfAsLF == MIME.normalizeLineEndings(e.html!).decodedUTF8.crlfAsLF)
        }
    }

    @Test("mostly non-ASCII parts are base64, others quoted-printable")
    func transferEncodings() async throws {
        let template = try CampaignTemplate(subject: "件名 {{first_name}}", html: "<p>{{attributes.body}}</p>", text: "Hello {{first_name}}, ascii text")
        let renderer = try MessageRenderer(template: template, from: RenderFixtures.from, messageIDDomain: "herald.test")
        let r = RecipientVariables(email: "a@example.test", firstName: "太郎",
                                   attributes: ["body": .string(String(repeating: "日本語のテキストです。", count: 40))])
        let rendered = try renderer.render(recipient: r, listUnsubscribe: nil, date: RenderFixtures.date)
        #expect(MessageLines.problems(rendered.bytes) == [])
        let p = try await RenderPython.parse(rendered.bytes)
        #expect(p.part("text/plain")?.cte == "quoted-printable")
        #expect(p.part("text/html")?.cte == "base64")
        #expect(p.part("text/html")?.content.crlfAsLF == rendered.parts.html)
        #expect(p.part("text/plain")?.content.crlfAsLF == "Hello 太郎, ascii text")
        #expect(p.subject == "件名 太郎")
    }

    @Test("a text-only campaign is a single text/plain part")
    func textOnly() async throws {
        let template = try CampaignTemplate(subject: "s", html: nil, text: "Hi {{first_name}}\n\n-- \nThe team\n")
        let renderer = try MessageRenderer(template: template, from: RenderFixtures.from, messageIDDomain: "herald.test")
        let m = try renderer.render(recipient: bob, listUnsubscribe: RenderFixtures.unsubscribe, date: RenderFixtures.date).bytes
        #expect(MessageLines.problems(m) == [])
        #expect(MessageLines.fields(m).suffix(2).map(\.0) == ["Content-Type", "Content-Transfer-Encoding"])
        let p = try await RenderPython.parse(m)
        #expect(p.defects == [])
        #expect(!p.isMultipart)
        #expect(p.contentType == "text/plain")
        #expect(p.parts.first?.content.crlfAsLF == "Hi Bob\n\n-- \nThe team\n")
    }

    @Test("the boundary never occurs in the content, and differs per message")
    func boundary() throws {
        let renderer = try RenderFixtures.renderer(html: "<p>--=_herald_ {{attributes.x}}</p>")
        let r = RecipientVariables(email: "a@example.test", attributes: ["x": "=_herald_aaaa --=_herald_"])
        var boundaries: Set<String> = []
        for _ in 0..<20 {
            let text = String(decoding: try renderer.render(recipient: r, listUnsubscribe: nil).bytes, as: UTF8.self)
            let b = text.components(separatedBy: "boundary=\"")[1].components(separatedBy: "\"")[0]
            boundaries.insert(b)
            // The delimiter occurs exactly three times: two parts and the close.
            #expect(text.components(separatedBy: "--" + b).count == 4)
        }
        #expect(boundaries.count == 20)
    }

    @Test("the one-shot API gives the same structure")
    func oneShot() async throws {
        let template = try CampaignTemplate(subject: "Hi {{first_name}}", html: "<p>x</p>", text: "x")
        let m = try MessageRenderer.render(template, recipient: bob, campaign: [:], from: RenderFixtures.from, replyTo: nil,
                                           listUnsubscribe: RenderFixtures.unsubscribe, messageIDDomain: "herald.test",
                                           date: RenderFixtures.date, extraHeaders: [ExtraHeader("X-Herald-Campaign", "7")])
        let p = try await RenderPython.parse(m)
        #expect(p.defects == [] && p.subject == "Hi Bob" && p.header("X-Herald-Campaign") == "7")
    }

    @Test("the header check refuses anything but the expected fields")
    func headerCheck() {
        let ok = Array("A: 1\r\nB: 2\r\n folded\r\n".utf8)
        #expect(throws: Never.self) { try HeaderCheck.verify(ok, expected: ["A", "B"]) }
        for bad in ["A: 1\r\nBcc: x\r\n", "A: 1\nBcc: x\r\n", "A: 1\rB: 2\r\n", "A: 1\r\n\r\n", "A: 1\r\n \r\n",
                    "A: 1\u{0}\r\n", "A: 1", " A: 1\r\n", "no colon\r\n"] {
            #expect(throws: RenderError.self) { try HeaderCheck.verify(Array(bad.utf8), expected: ["A"]) }
        }
    }
}
