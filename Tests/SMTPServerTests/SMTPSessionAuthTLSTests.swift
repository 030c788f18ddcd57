import SMTPCore
import SMTPServer
import Testing

@Suite("SMTPSession: relay policy")
struct SMTPSessionRelayTests {
    static let addresses = [
        "<user@remote.example>",
        "<USER@REMOTE.EXAMPLE>",
        "<user%remote.example@mx.herald.test>",
        "<remote.example!user@mx.herald.test>",
        "<\"user@remote.example\"@mx.herald.test>",
        "<\"user%remote.example\"@mx.herald.test>",
        "<@mx.herald.test:user@remote.example>",
        "<@a.example,@b.example:user@remote.example>",
        "<user@[192.0.2.1]>",
        "<user@[IPv6:2001:db8::1]>",
        "<postmaster@mx.herald.test>",
        "<Postmaster>",
    ]

    @Test(arguments: addresses)
    func untrustedClientOnARelayListenerIsDenied(address: String) {
        var d = SessionDriver(sessionConfig(role: .relay), trusted: false)
        _ = d.send("EHLO c.example\r\nMAIL FROM:<app@client.example>\r\n")
        #expect(d.codesFor("RCPT TO:\(address)\r\n") == ["554 5.7.1"])
        #expect(d.codesFor("DATA\r\n") == ["554 5.5.1"])
        #expect(d.commits.isEmpty)
    }

    @Test(arguments: addresses, [true, false])
    func unauthenticatedClientOnASubmissionListenerIsDenied(address: String, trusted: Bool) {
        var d = SessionDriver(sessionConfig(role: .submission, authAvailable: true), trusted: trusted, isTLS: true)
        _ = d.send("EHLO c.example\r\nMAIL FROM:<app@client.example>\r\n")
        #expect(d.codesFor("RCPT TO:\(address)\r\n") == ["554 5.7.1"])
    }

    @Test(arguments: addresses)
    func trustedClientOnARelayListenerMayRelay(address: String) {
        var d = SessionDriver(sessionConfig(role: .relay), trusted: true)
        _ = d.send("EHLO c.example\r\nMAIL FROM:<app@client.example>\r\n")
        let expected = address == "<Postmaster>" ? "550 5.1.1" : "250 2.1.5"
        #expect(d.codesFor("RCPT TO:\(address)\r\n") == [expected])
    }

    @Test func sourceRouteIsIgnoredInTheCommittedRecipient() throws {
        var d = SessionDriver()
        _ = d.send("EHLO c\r\nMAIL FROM:<@hop.example:a@b.example>\r\nRCPT TO:<@x.example,@y.example:r@d.example>\r\nDATA\r\nm\r\n.\r\n")
        let tx = try #require(d.commits.first)
        #expect(tx.sender.description == "a@b.example")
        #expect(tx.recipients.map(\.mailbox.description) == ["r@d.example"])
    }

    @Test func authenticatedClientMayRelayFromAnywhere() {
        var d = SessionDriver(sessionConfig(role: .relay, allowPlaintextAuth: true, authAvailable: true), trusted: false)
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n")
        let denied = d.send("RCPT TO:<r@d.example>\r\n")
        #expect(reply(denied[0])?.lines == ["Relay access denied; authenticate first"])
        _ = d.send("RSET\r\n")
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["verify alice:secret", "235 2.7.0"])
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<user%remote.example@mx.herald.test>\r\n")
            == ["250 2.1.0", "250 2.1.5"])
    }
}

@Suite("SMTPSession: AUTH")
struct SMTPSessionAuthTests {
    /// A submission session already over TLS, after EHLO.
    func authSession() -> SessionDriver {
        var d = SessionDriver(submissionConfig(), trusted: false, isTLS: true)
        let ehlo = d.send("EHLO c.example\r\n")
        #expect(reply(ehlo[0])?.lines.contains("AUTH PLAIN LOGIN") == true)
        #expect(reply(ehlo[0])?.lines.contains("STARTTLS") == false)
        return d
    }

    @Test func authBeforeTLSIsRefused() {
        var d = SessionDriver(submissionConfig(), trusted: false)
        let ehlo = d.send("EHLO c.example\r\n")
        #expect(reply(ehlo[0])?.lines.contains { $0.hasPrefix("AUTH") } == false)
        #expect(reply(ehlo[0])?.lines.contains("STARTTLS") == true)
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["538 5.7.11"])
        #expect(d.codesFor("AUTH LOGIN\r\n") == ["538 5.7.11"])
        #expect(d.session.authenticatedUser == nil)
    }

    @Test func plaintextAuthWhenTheListenerAllowsIt() {
        var d = SessionDriver(sessionConfig(role: .submission, allowPlaintextAuth: true, authAvailable: true), trusted: false)
        let ehlo = d.send("EHLO c.example\r\n")
        #expect(reply(ehlo[0])?.lines.contains("AUTH PLAIN LOGIN") == true)
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["verify alice:secret", "235 2.7.0"])
    }

    @Test func plainWithInitialResponse() throws {
        var d = authSession()
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["verify alice:secret", "235 2.7.0"])
        #expect(d.session.authenticatedUser == "alice")
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\nDATA\r\nx\r\n.\r\n")
            == ["250 2.1.0", "250 2.1.5", "354", "commit", "250 2.0.0"])
        let tx = try #require(d.commits.first)
        #expect(tx.authenticatedUser == "alice")
        #expect(tx.tls)
    }

    @Test func plainWithAuthorizationIdentityEqualToTheUser() {
        var d = authSession()
        #expect(d.codesFor("AUTH PLAIN \(base64("alice\0alice\0secret"))\r\n") == ["verify alice:secret", "235 2.7.0"])
    }

    @Test func plainWithPrompt() {
        var d = authSession()
        let prompt = d.send("AUTH PLAIN\r\n")
        #expect(prompt.map(render) == ["334 \r\n"])
        #expect(!d.session.isWaiting)
        #expect(d.codesFor(base64("\0alice\0secret") + "\r\n") == ["verify alice:secret", "235 2.7.0"])
    }

    @Test func loginWithPrompts() {
        var d = authSession()
        #expect(d.send("AUTH LOGIN\r\n").map(render) == ["334 VXNlcm5hbWU6\r\n"])
        #expect(d.send(base64("alice") + "\r\n").map(render) == ["334 UGFzc3dvcmQ6\r\n"])
        #expect(d.codesFor(base64("secret") + "\r\n") == ["verify alice:secret", "235 2.7.0"])
        #expect(d.session.authenticatedUser == "alice")
    }

    @Test func loginWithInitialResponse() {
        var d = authSession()
        #expect(d.send("AUTH LOGIN \(base64("alice"))\r\n").map(render) == ["334 UGFzc3dvcmQ6\r\n"])
        #expect(d.codesFor(base64("secret") + "\r\n") == ["verify alice:secret", "235 2.7.0"])
    }

    @Test func loginPromptsArrivingInOnePacket() {
        var d = authSession()
        let all = d.codesFor("AUTH LOGIN\r\n\(base64("alice"))\r\n\(base64("secret"))\r\nNOOP\r\n")
        #expect(all == ["334", "334", "verify alice:secret", "235 2.7.0", "250 2.0.0"])
    }

    @Test(arguments: ["AUTH PLAIN\r\n", "AUTH LOGIN\r\n", "AUTH LOGIN \(base64("alice"))\r\n"])
    func cancelWithAStar(start: String) {
        var d = authSession()
        #expect(d.codesFor(start) == ["334"])
        #expect(d.codesFor("*\r\n") == ["501 5.0.0"])
        #expect(d.session.authenticatedUser == nil)
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
    }

    @Test func cancelInTheMiddleOfLogin() {
        var d = authSession()
        #expect(d.codesFor("AUTH LOGIN\r\n\(base64("alice"))\r\n*\r\n") == ["334", "334", "501 5.0.0"])
    }

    @Test(arguments: [
        "AUTH PLAIN !!!notbase64\r\n",
        "AUTH LOGIN %%%\r\n",
        "AUTH PLAIN\r\n@@@@\r\n",
        "AUTH LOGIN\r\nnot base64!\r\n",
        "AUTH LOGIN\r\n\(base64("alice"))\r\n#\r\n",
    ])
    func badBase64Is501(input: String) {
        var d = authSession()
        #expect(d.codesFor(input).last == "501 5.5.2")
        #expect(d.session.authenticatedUser == nil)
        #expect(!d.session.isWaiting)
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
    }

    @Test(arguments: [
        "\0alice",                 // no password
        "alice\0secret",           // two parts
        "bob\0alice\0secret",      // authorization identity differs
        "\0\0secret",              // empty user
    ])
    func malformedPlainResponseIs501(response: String) {
        var d = authSession()
        #expect(d.codesFor("AUTH PLAIN \(base64(response))\r\n") == ["501 5.5.2"])
    }

    @Test func emptyInitialResponseIs501ForPlain() {
        var d = authSession()
        #expect(d.codesFor("AUTH PLAIN =\r\n") == ["501 5.5.2"])
    }

    @Test func wrongPasswordIs535AndRelayStaysDenied() {
        var d = authSession()
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0wrong"))\r\n") == ["verify alice:wrong", "535 5.7.8"])
        #expect(d.session.authenticatedUser == nil)
        #expect(d.codesFor("AUTH LOGIN\r\n\(base64("mallory"))\r\n\(base64("secret"))\r\n")
            == ["334", "334", "verify mallory:secret", "535 5.7.8"])
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\n") == ["250 2.1.0", "554 5.7.1"])
        // A later correct attempt still works.
        #expect(d.codesFor("RSET\r\nAUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["250 2.0.0", "verify alice:secret", "235 2.7.0"])
    }

    @Test func pipelinedCommandsWaitForTheCredentialCheck() {
        var d = authSession()
        d.autoVerify = false
        let first = d.send("AUTH PLAIN \(base64("\0alice\0secret"))\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\n")
        #expect(codes(first) == ["verify alice:secret"])
        #expect(d.session.isWaiting)
        #expect(d.send("NOOP\r\n").isEmpty)
        let rest = d.session.authenticationFinished(user: "alice")
        #expect(codes(rest) == ["235 2.7.0", "250 2.1.0", "250 2.1.5", "250 2.0.0"])
        #expect(!d.session.isWaiting)
    }

    @Test func failedCheckAnswersPipelinedCommandsAsUnauthenticated() {
        var d = authSession()
        d.autoVerify = false
        _ = d.send("AUTH PLAIN \(base64("\0alice\0nope"))\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\n")
        #expect(codes(d.session.authenticationFinished(user: nil)) == ["535 5.7.8", "250 2.1.0", "554 5.7.1"])
    }

    @Test func authSequencing() {
        var d = authSession()
        #expect(d.codesFor("AUTH CRAM-MD5\r\n") == ["504 5.5.4"])
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nAUTH PLAIN\r\nRSET\r\n") == ["250 2.1.0", "503 5.5.1", "250 2.0.0"])
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["verify alice:secret", "235 2.7.0"])
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["503 5.5.1"])
    }

    @Test func authBeforeEHLO() {
        var d = SessionDriver(submissionConfig(), trusted: false, isTLS: true)
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["503 5.5.1"])
    }

    @Test func authNotOfferedWithoutUsers() {
        var d = SessionDriver(sessionConfig(role: .submission, tls: .starttls, tlsAvailable: true, authAvailable: false),
                              trusted: false, isTLS: true)
        let ehlo = d.send("EHLO c.example\r\n")
        #expect(reply(ehlo[0])?.lines.contains { $0.hasPrefix("AUTH") } == false)
        #expect(d.codesFor("AUTH PLAIN\r\n") == ["502 5.5.1"])
    }

    @Test func overlongAuthResponseIs501() {
        var d = authSession()
        #expect(d.codesFor("AUTH PLAIN\r\n") == ["334"])
        #expect(d.codesFor(String(repeating: "A", count: 13_000) + "\r\nNOOP\r\n") == ["501 5.5.2", "250 2.0.0"])
    }
}

@Suite("SMTPSession: STARTTLS")
struct SMTPSessionSTARTTLSTests {
    @Test func startTLSThenTheSessionStartsOver() throws {
        var d = SessionDriver(submissionConfig(), trusted: false)
        _ = d.send("EHLO c.example\r\n")
        let start = d.send("STARTTLS\r\n")
        #expect(start.map(render) == ["220 2.0.0 Ready to start TLS\r\n", "[startTLS]"])
        #expect(d.session.isWaiting)
        #expect(d.session.tlsEstablished().isEmpty)
        #expect(d.session.isTLS)
        #expect(!d.session.isWaiting)
        #expect(d.session.helo == nil)
        // EHLO is required again.
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\n") == ["503 5.5.1"])
        let ehlo = d.send("EHLO c.example\r\n")
        let lines = try #require(reply(ehlo[0])).lines
        #expect(lines.contains("AUTH PLAIN LOGIN"))
        #expect(!lines.contains("STARTTLS"))
        #expect(d.codesFor("STARTTLS\r\n") == ["503 5.5.1"])
        #expect(d.codesFor("AUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["verify alice:secret", "235 2.7.0"])
        _ = d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\nDATA\r\nx\r\n.\r\n")
        #expect(try #require(d.commits.first).tls)
    }

    @Test func plaintextPipelinedAfterSTARTTLSIsDiscardedAndNeverAnswered() throws {
        var d = SessionDriver(submissionConfig(), trusted: false)
        _ = d.send("EHLO c.example\r\n")
        let start = d.send("STARTTLS\r\nRSET\r\n")
        #expect(start.map(render) == ["220 2.0.0 Ready to start TLS\r\n", "[startTLS]", "[discarded 6]"])
        #expect(start.contains(.discardedPlaintextAfterSTARTTLS(6)))
        #expect(d.session.tlsEstablished().isEmpty)
        let afterTLS = d.send("EHLO c.example\r\n")
        #expect(afterTLS.count == 1)
        #expect(try #require(reply(afterTLS[0])).lines.first == "mx.herald.test")
        #expect(d.codesFor("NOOP\r\n") == ["250 2.0.0"])
    }

    @Test func injectedTransactionAfterSTARTTLSIsDiscarded() {
        var d = SessionDriver(submissionConfig(), trusted: false)
        _ = d.send("EHLO c.example\r\n")
        let injected = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@remote.example>\r\nDATA\r\nx\r\n.\r\n"
        let start = d.send("STARTTLS\r\n" + injected)
        #expect(codes(start) == ["220 2.0.0", "startTLS", "discarded \(injected.utf8.count)"])
        #expect(d.session.tlsEstablished().isEmpty)
        #expect(!d.session.inTransaction)
        #expect(d.codesFor("RCPT TO:<victim@remote.example>\r\n") == ["503 5.5.1"])
        #expect(d.commits.isEmpty)
    }

    @Test func partialPlaintextLineAfterSTARTTLSIsDiscardedToo() {
        var d = SessionDriver(submissionConfig(), trusted: false)
        _ = d.send("EHLO c.example\r\n")
        #expect(codes(d.send("STARTTLS\r\nNO")) == ["220 2.0.0", "startTLS", "discarded 2"])
        _ = d.session.tlsEstablished()
        // The "NO" must not be glued to the first line read over TLS.
        #expect(d.codesFor("OP\r\n") == ["500 5.5.1"])
    }

    @Test func plaintextDuringTheHandshakeClosesTheSession() {
        var d = SessionDriver(submissionConfig(), trusted: false)
        _ = d.send("EHLO c.example\r\nSTARTTLS\r\n")
        #expect(codes(d.send("RSET\r\n")) == ["421 4.7.0 close"])
        #expect(d.session.isClosed)
        #expect(d.session.tlsEstablished().isEmpty)
    }

    @Test func startTLSSequencing() {
        var d = SessionDriver(submissionConfig(), trusted: false)
        #expect(d.codesFor("STARTTLS\r\n") == ["503 5.5.1"])
        _ = d.send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\n")
        #expect(d.codesFor("STARTTLS\r\n") == ["503 5.5.1"])
    }

    @Test func startTLSWithoutACertificateIs454() {
        var d = SessionDriver(sessionConfig(role: .submission, tls: .starttls, tlsAvailable: false, authAvailable: true),
                              trusted: false)
        let ehlo = d.send("EHLO c.example\r\n")
        #expect(reply(ehlo[0])?.lines.contains("STARTTLS") == false)
        #expect(d.codesFor("STARTTLS\r\n") == ["454 4.7.0"])
    }

    @Test func startTLSOnImplicitTLSIs503() {
        var d = SessionDriver(sessionConfig(role: .submission, tls: .implicit, tlsAvailable: true, authAvailable: true),
                              trusted: false, isTLS: true)
        let ehlo = d.send("EHLO c.example\r\n")
        #expect(reply(ehlo[0])?.lines.contains("STARTTLS") == false)
        #expect(reply(ehlo[0])?.lines.contains("AUTH PLAIN LOGIN") == true)
        #expect(d.codesFor("STARTTLS\r\n") == ["503 5.5.1"])
    }

    @Test func tlsEstablishedWithoutSTARTTLSDoesNothing() {
        var d = SessionDriver(submissionConfig(), trusted: false)
        #expect(d.session.tlsEstablished().isEmpty)
        #expect(!d.session.isTLS)
    }

    @Test func plaintextAuthIdentityIsForgottenAfterSTARTTLS() {
        // RFC 3207 §4.2: knowledge obtained from the client before TLS is discarded.
        var d = SessionDriver(sessionConfig(role: .submission, tls: .starttls, tlsAvailable: true,
                                            allowPlaintextAuth: true, authAvailable: true), trusted: false)
        _ = d.send("EHLO c.example\r\nAUTH PLAIN \(base64("\0alice\0secret"))\r\n")
        #expect(d.session.authenticatedUser == "alice")
        _ = d.send("STARTTLS\r\n")
        _ = d.session.tlsEstablished()
        #expect(d.session.authenticatedUser == nil)
        #expect(d.codesFor("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\n")
            == ["250", "250 2.1.0", "554 5.7.1"])
    }
}
