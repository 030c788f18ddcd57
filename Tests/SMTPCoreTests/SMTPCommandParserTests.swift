import SMTPCore
import Testing

private func parse(_ line: String) -> Result<SMTPCommand, SMTPCommandError> {
    SMTPCommandParser.parse(Array(line.utf8))
}

private func mbox(_ local: String, _ domain: String) -> Mailbox {
    Mailbox(localPart: local, domain: domain)
}

private func p(_ keyword: String, _ value: String? = nil) -> ESMTPParameter {
    ESMTPParameter(keyword, value)
}

@Suite("SMTPCommandParser")
struct SMTPCommandParserTests {
    // MARK: - Every verb

    static let verbs: [(String, SMTPCommand)] = [
        ("HELO client.example", .helo("client.example")),
        ("helo client.example", .helo("client.example")),
        ("HELO client.example trailing words", .helo("client.example")),
        ("EHLO client.example", .ehlo("client.example")),
        ("Ehlo [192.0.2.1]", .ehlo("[192.0.2.1]")),
        ("EHLO   client.example  ", .ehlo("client.example")),
        ("DATA", .data),
        ("data", .data),
        ("BDAT 100 LAST", .bdat),
        ("RSET", .rset),
        ("rset", .rset),
        ("NOOP", .noop),
        ("NOOP anything goes", .noop),
        ("QUIT", .quit),
        ("VRFY someone", .vrfy("someone")),
        ("VRFY  Some One ", .vrfy("Some One")),
        ("EXPN staff", .expn("staff")),
        ("HELP", .help(nil)),
        ("HELP MAIL", .help("MAIL")),
        ("STARTTLS", .starttls),
        ("starttls", .starttls),
        ("AUTH PLAIN", .auth(mechanism: "PLAIN", initialResponse: nil)),
        ("auth login", .auth(mechanism: "LOGIN", initialResponse: nil)),
        ("AUTH LOGIN dXNlcg==", .auth(mechanism: "LOGIN", initialResponse: "dXNlcg==")),
        ("AUTH PLAIN =", .auth(mechanism: "PLAIN", initialResponse: "=")),
        ("AUTH PLAIN AHVzZXIAc2VjcmV0", .auth(mechanism: "PLAIN", initialResponse: "AHVzZXIAc2VjcmV0")),
    ]

    @Test(arguments: verbs)
    func parsesEveryVerb(line: String, expected: SMTPCommand) throws {
        #expect(try parse(line).get() == expected)
    }

    // MARK: - MAIL and RCPT

    static let paths: [(String, SMTPCommand)] = [
        ("MAIL FROM:<a@b.example>", .mail(.mailbox(mbox("a", "b.example")), [])),
        ("mail from:<Alice.Smith@B.Example>", .mail(.mailbox(mbox("Alice.Smith", "B.Example")), [])),
        ("MAIL FROM: <a@b.example>", .mail(.mailbox(mbox("a", "b.example")), [])),
        ("MAIL FROM:<>", .mail(.null, [])),
        ("MAIL FROM:<> SIZE=1000 BODY=8BITMIME",
         .mail(.null, [p("SIZE", "1000"), p("BODY", "8BITMIME")])),
        ("MAIL FROM:<a@b.example> smtputf8 ret=hdrs ENVID=abc+2B1",
         .mail(.mailbox(mbox("a", "b.example")), [p("SMTPUTF8"), p("RET", "hdrs"), p("ENVID", "abc+2B1")])),
        ("MAIL FROM:<a@b.example>  SIZE=5   BODY=7BIT ",
         .mail(.mailbox(mbox("a", "b.example")), [p("SIZE", "5"), p("BODY", "7BIT")])),
        ("MAIL FROM:<a@b.example> X-UNKNOWN=1 FOO",
         .mail(.mailbox(mbox("a", "b.example")), [p("X-UNKNOWN", "1"), p("FOO")])),
        ("MAIL FROM:<a@b.example> AUTH=<>", .mail(.mailbox(mbox("a", "b.example")), [p("AUTH", "<>")])),
        ("RCPT TO:<c@d.example>", .rcpt(.mailbox(mbox("c", "d.example")), [])),
        ("rcpt to: <c@d.example>", .rcpt(.mailbox(mbox("c", "d.example")), [])),
        ("RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d.example",
         .rcpt(.mailbox(mbox("c", "d.example")), [p("NOTIFY", "SUCCESS,FAILURE"), p("ORCPT", "rfc822;c+40d.example")])),
        ("RCPT TO:<Postmaster>", .rcpt(.postmaster, [])),
        ("RCPT TO:<postmaster>", .rcpt(.postmaster, [])),
        ("RCPT TO:<POSTMASTER> NOTIFY=NEVER", .rcpt(.postmaster, [p("NOTIFY", "NEVER")])),
        ("RCPT TO:<postmaster@d.example>", .rcpt(.mailbox(mbox("postmaster", "d.example")), [])),
        // Quoted local parts keep their quotes; '>' and '@' inside quotes are not delimiters.
        ("RCPT TO:<\"john doe\"@d.example>", .rcpt(.mailbox(mbox("\"john doe\"", "d.example")), [])),
        ("RCPT TO:<\"a>b\"@d.example>", .rcpt(.mailbox(mbox("\"a>b\"", "d.example")), [])),
        ("RCPT TO:<\"user@remote.example\"@d.example>",
         .rcpt(.mailbox(mbox("\"user@remote.example\"", "d.example")), [])),
        ("RCPT TO:<\"a\\\"b\"@d.example>", .rcpt(.mailbox(mbox("\"a\\\"b\"", "d.example")), [])),
        // Source routes are accepted and ignored (RFC 5321 §4.1.1.3).
        ("RCPT TO:<@hop.example:user@final.example>", .rcpt(.mailbox(mbox("user", "final.example")), [])),
        ("RCPT TO:<@hop1.example,@hop2.example:user@final.example>",
         .rcpt(.mailbox(mbox("user", "final.example")), [])),
        ("MAIL FROM:<@hop.example:a@b.example>", .mail(.mailbox(mbox("a", "b.example")), [])),
        // '%' and '!' are legal atext; the relay policy, not the parser, deals with them.
        ("RCPT TO:<user%final.example@relay.example>", .rcpt(.mailbox(mbox("user%final.example", "relay.example")), [])),
        ("RCPT TO:<final.example!user@relay.example>", .rcpt(.mailbox(mbox("final.example!user", "relay.example")), [])),
        ("RCPT TO:<a+tag.x_y=z@d-1.example>", .rcpt(.mailbox(mbox("a+tag.x_y=z", "d-1.example")), [])),
        ("RCPT TO:<user@localhost>", .rcpt(.mailbox(mbox("user", "localhost")), [])),
        // Address literals.
        ("RCPT TO:<user@[192.0.2.1]>", .rcpt(.mailbox(mbox("user", "[192.0.2.1]")), [])),
        ("RCPT TO:<user@[IPv6:2001:db8::1]>", .rcpt(.mailbox(mbox("user", "[IPv6:2001:db8::1]")), [])),
        ("RCPT TO:<user@[x-tag:content]>", .rcpt(.mailbox(mbox("user", "[x-tag:content]")), [])),
        // RFC 5321 dcontent may hold '>' and '"': the path ends at the '>' after the
        // literal (fuzzing finding F1).
        ("MAIL FROM:<user@[x:a>b]> SIZE=1", .mail(.mailbox(mbox("user", "[x:a>b]")), [p("SIZE", "1")])),
        ("RCPT TO:<user@[x:a\"b]>", .rcpt(.mailbox(mbox("user", "[x:a\"b]")), [])),
        ("RCPT TO:<\"a>[b\"@[x:\">]>", .rcpt(.mailbox(mbox("\"a>[b\"", "[x:\">]")), [])),
        // SMTPUTF8 (RFC 6531): UTF-8 in local part and domain.
        ("RCPT TO:<用户@例子.example>", .rcpt(.mailbox(mbox("用户", "例子.example")), [])),
        ("MAIL FROM:<jöran@bücher.example> SMTPUTF8", .mail(.mailbox(mbox("jöran", "bücher.example")), [p("SMTPUTF8")])),
    ]

    @Test(arguments: paths)
    func parsesPathsAndParameters(line: String, expected: SMTPCommand) throws {
        #expect(try parse(line).get() == expected)
    }

    // MARK: - Errors

    static let errors: [(String, Int, String)] = [
        // Unknown verbs.
        ("FOO", 500, "5.5.1"),
        ("XYZZY 1", 500, "5.5.1"),
        ("", 500, "5.5.1"),
        (" NOOP", 500, "5.5.1"),
        ("MAILFROM:<a@b.example>", 500, "5.5.1"),
        ("VERYLONGVERB", 500, "5.5.1"),
        // NUL anywhere.
        ("NOOP \u{0}", 500, "5.5.2"),
        ("MAIL FROM:<a@b.example>\u{0}", 500, "5.5.2"),
        ("\u{0}", 500, "5.5.2"),
        // HELO/EHLO arguments.
        ("HELO", 501, "5.5.4"),
        ("EHLO", 501, "5.5.4"),
        ("EHLO   ", 501, "5.5.4"),
        ("EHLO a b", 501, "5.5.4"),
        ("EHLO a\u{1}b", 501, "5.5.4"),
        // Command shape (5.5.4).
        ("MAIL", 501, "5.5.4"),
        ("MAIL FROM", 501, "5.5.4"),
        ("MAIL FROM:a@b.example", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example", 501, "5.5.4"),
        ("MAIL TO:<a@b.example>", 501, "5.5.4"),
        ("MAIL FROM:<a@b.example>SIZE=1", 501, "5.5.4"),
        ("RCPT TO:", 501, "5.5.4"),
        ("RCPT FROM:<a@b.example>", 501, "5.5.4"),
        ("RCPT TO:<>", 501, "5.5.4"),
        ("RCPT TO:<\"unterminated@d.example>", 501, "5.5.4"),
        ("DATA now", 501, "5.5.4"),
        ("RSET x", 501, "5.5.4"),
        ("QUIT now", 501, "5.5.4"),
        ("STARTTLS please", 501, "5.5.4"),
        ("VRFY", 501, "5.5.4"),
        ("EXPN", 501, "5.5.4"),
        ("AUTH", 501, "5.5.4"),
        ("AUTH PLAIN a b", 501, "5.5.4"),
        // Address syntax (5.1.3).
        ("MAIL FROM:<a b@c.example>", 501, "5.1.3"),
        ("MAIL FROM:<a>", 501, "5.1.3"),
        ("MAIL FROM:<a@>", 501, "5.1.3"),
        ("MAIL FROM:<@c.example>", 501, "5.1.3"),
        ("MAIL FROM:<a..b@c.example>", 501, "5.1.3"),
        ("MAIL FROM:<.a@c.example>", 501, "5.1.3"),
        ("MAIL FROM:<a.@c.example>", 501, "5.1.3"),
        ("MAIL FROM:<a@c..example>", 501, "5.1.3"),
        ("MAIL FROM:<a@-c.example>", 501, "5.1.3"),
        ("MAIL FROM:<a@c-.example>", 501, "5.1.3"),
        ("MAIL FROM:<a@c_d.example>", 501, "5.1.3"),
        ("MAIL FROM:<a@c.example.>", 501, "5.1.3"),
        ("MAIL FROM:<a@[300.1.2.3]>", 501, "5.1.3"),
        ("MAIL FROM:<a@[1.2.3]>", 501, "5.1.3"),
        ("MAIL FROM:<a@[IPv6:]>", 501, "5.1.3"),
        ("MAIL FROM:<a@[]>", 501, "5.1.3"),
        ("MAIL FROM:<a(comment)@c.example>", 501, "5.1.3"),
        ("RCPT TO:<a@b@c.example>", 501, "5.1.3"),
        ("RCPT TO:<\"bad\u{1}\"@d.example>", 501, "5.1.3"),
        ("RCPT TO:<\"quoted\">", 501, "5.1.3"),
        ("RCPT TO:<@bad_hop.example:user@final.example>", 501, "5.1.3"),
        ("RCPT TO:<@hop.example,user@final.example>", 501, "5.1.3"),
        ("RCPT TO:<@hop.example,:user@final.example>", 501, "5.1.3"),
        ("RCPT TO:<@:user@final.example>", 501, "5.1.3"),
        ("RCPT TO:<\(String(repeating: "l", count: 65))@d.example>", 501, "5.1.3"),
        ("RCPT TO:<user@\(String(repeating: "d", count: 64)).example>", 501, "5.1.3"),
        ("RCPT TO:<user@\(Array(repeating: String(repeating: "d", count: 60), count: 5).joined(separator: "."))>", 501, "5.1.3"),
        // Malformed ESMTP parameters (555 5.5.4).
        ("MAIL FROM:<a@b.example> =x", 555, "5.5.4"),
        ("MAIL FROM:<a@b.example> SIZE=", 555, "5.5.4"),
        ("MAIL FROM:<a@b.example> -X=1", 555, "5.5.4"),
        ("MAIL FROM:<a@b.example> X_Y=1", 555, "5.5.4"),
        ("RCPT TO:<a@b.example> NOTIFY=a=b", 555, "5.5.4"),
        ("RCPT TO:<a@b.example> ORCPT=rfc822;\u{7F}", 555, "5.5.4"),
    ]

    @Test(arguments: errors)
    func rejectsBadCommands(line: String, code: Int, enhanced: String) {
        switch parse(line) {
        case .success(let command):
            Issue.record("\(line.debugDescription) parsed as \(command)")
        case .failure(let error):
            #expect(error.reply.code == code, "\(line.debugDescription): \(error.reply)")
            #expect(error.reply.enhanced?.description == enhanced, "\(line.debugDescription): \(error.reply)")
        }
    }

    @Test func longestAcceptableLocalPartAndDomain() throws {
        let local = String(repeating: "l", count: 64)
        let label = String(repeating: "d", count: 63)
        let cmd = try parse("RCPT TO:<\(local)@\(label).example>").get()
        #expect(cmd == .rcpt(.mailbox(mbox(local, "\(label).example")), []))
    }

    @Test func pathsLongerThan256OctetsAreRefused() {
        // Every piece is legal on its own; the whole path is too long.
        let route = (1...30).map { "@hop\($0).example" }.joined(separator: ",")
        let line = "RCPT TO:<\(route):user@final.example>"
        guard case .failure(let error) = parse(line) else {
            Issue.record("a 400-octet path was accepted")
            return
        }
        #expect(error.reply.code == 501)
        #expect(error.reply.enhanced == EnhancedStatusCode(5, 1, 3))
    }

    @Test func invalidUTF8InAnAddressIsASyntaxError() {
        let line = Array("RCPT TO:<".utf8) + [0xC3, 0x28] + Array("@d.example>".utf8)
        guard case .failure(let error) = SMTPCommandParser.parse(line) else {
            Issue.record("invalid UTF-8 accepted")
            return
        }
        #expect(error.reply.code == 501)
        #expect(error.reply.enhanced == EnhancedStatusCode(5, 1, 3))
    }

    @Test func invalidUTF8VerbIsUnrecognized() {
        guard case .failure(let error) = SMTPCommandParser.parse([0xFF, 0xFE]) else {
            Issue.record("invalid UTF-8 verb accepted")
            return
        }
        #expect(error.reply.code == 500)
        #expect(error.reply.enhanced == EnhancedStatusCode(5, 5, 1))
    }

    @Test func everyShortInputGetsAnAnswer() {
        // A tiny exhaustive fuzz: every 1- and 2-byte line, and every byte in a MAIL path,
        // parse without trapping. No verb is that short, a quoted local part without its
        // closing quote and bracket is no path, and "[x]" is no address literal; a local
        // part of one byte is a mailbox exactly when the byte is ASCII atext.
        func parsed(_ line: [UInt8]) -> Bool {
            if case .success = SMTPCommandParser.parse(line) { return true }
            return false
        }
        let atext = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~".utf8)
        var mailboxes: [UInt8] = []
        var unexpected: [[UInt8]] = []
        for a in UInt8.min...UInt8.max {
            if parsed(Array("MAIL FROM:<".utf8) + [a] + Array("@b>".utf8)) { mailboxes.append(a) }
            for line in [[a], Array("RCPT TO:<\"".utf8) + [a], Array("RCPT TO:<a@[".utf8) + [a] + Array("]>".utf8)]
            where parsed(line) {
                unexpected.append(line)
            }
            for b in stride(from: 0, through: 255, by: 5) where parsed([a, UInt8(b)]) {
                unexpected.append([a, UInt8(b)])
            }
        }
        #expect(mailboxes == atext.sorted())
        #expect(unexpected.isEmpty, "\(unexpected.prefix(10).map { String(decoding: $0, as: UTF8.self) })")
    }

    // MARK: - Mailbox and paths

    @Test func mailboxFromAnApplicationIsAnSMTPMailbox() {
        #expect(Mailbox(parsing: "a@b.example") == mbox("a", "b.example"))
        #expect(Mailbox(parsing: "\"a b\"@b.example") == mbox("\"a b\"", "b.example"))
        #expect(Mailbox(parsing: "a@[192.0.2.1]") == mbox("a", "[192.0.2.1]"))
        #expect(Mailbox(parsing: "a@[IPv6:2001:db8::1]") == mbox("a", "[IPv6:2001:db8::1]"))
        // A header may carry "[foo]" (an RFC 5322 domain literal); SMTP cannot deliver to it.
        #expect(Mailbox(parsing: "a@[foo]") == nil)
        #expect(Mailbox(parsing: "<a@b.example>") == nil)
        #expect(Mailbox(parsing: "") == nil)
        // The 256 octets of a path: 64 + "@" + 191, and one more.
        let local = String(repeating: "l", count: 64)
        let labels = ["a", "b", "c"].map { String(repeating: $0, count: 63) }
        let domain256 = labels.joined(separator: ".")
        let domain257 = labels[0] + "." + labels[1] + "." + String(repeating: "c", count: 62) + ".d"
        #expect(Mailbox(parsing: local + "@" + domain256) == mbox(local, domain256))
        #expect(Mailbox(parsing: local + "@" + domain257) == nil)
    }

    @Test func mailboxNeedsSMTPUTF8OnlyForNonASCII() {
        #expect(!mbox("a", "b.example").needsSMTPUTF8)
        #expect(mbox("jöran", "b.example").needsSMTPUTF8)
        #expect(mbox("a", "bücher.example").needsSMTPUTF8)
        #expect(mbox("a", "b.example").description == "a@b.example")
    }

    @Test func pathDescriptions() {
        #expect(ReversePath.null.description == "")
        #expect(ReversePath.mailbox(mbox("a", "b.example")).description == "a@b.example")
        #expect(ForwardPath.postmaster.description == "Postmaster")
        #expect(ForwardPath.mailbox(mbox("\"x y\"", "b.example")).description == "\"x y\"@b.example")
    }

    // MARK: - xtext

    @Test(arguments: [
        ("abc", "abc"),
        ("", ""),
        ("a+2Bb", "a+b"),
        ("+3D", "="),
        ("rfc822+3Buser+40example.com", "rfc822;user@example.com"),
        ("+C3+A9", "é"),
    ])
    func decodesXtext(text: String, expected: String) {
        #expect(decodeXtext(text) == expected)
    }

    @Test(arguments: ["a=b", "+", "+2", "+ZZ", "a b", "tab\there", "+-1", "++1", "+C3", "\u{7F}", "é"])
    func rejectsMalformedXtext(text: String) {
        #expect(decodeXtext(text) == nil)
    }
}
