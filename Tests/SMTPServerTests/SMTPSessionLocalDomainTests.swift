import SMTPCore
import SMTPServer
import Testing

/// Herald's own domains (`[bounce] domains`): any client may send to them, as to a mail
/// server's local domains, while relaying anywhere else still needs AUTH or a trusted network.
@Suite("SMTP session: local (bounce) domains")
struct SMTPSessionLocalDomainTests {
    static func config(role: ListenerRole) -> SMTPSessionConfiguration {
        var c = role == .submission ? submissionConfig() : sessionConfig(role: role)
        c.localDomains = ["bounces.example.org"]
        return c
    }

    @Test(arguments: [ListenerRole.relay, .submission])
    func untrustedClientReachesOnlyTheLocalDomain(role: ListenerRole) {
        var d = SessionDriver(Self.config(role: role), trusted: false)
        #expect(d.codesFor("EHLO isp.example\r\n") == ["250"])
        #expect(d.codesFor("MAIL FROM:<>\r\n") == ["250 2.1.0"])
        // Any case of the domain; the campaign return paths and fixed addresses alike.
        #expect(d.codesFor("RCPT TO:<news+c12-s3456@Bounces.Example.ORG>\r\n") == ["250 2.1.5"])
        #expect(d.codesFor("RCPT TO:<fbl@bounces.example.org>\r\n") == ["250 2.1.5"])
        // Not relaying: a parent, a sibling or any other domain is refused.
        #expect(d.codesFor("RCPT TO:<someone@example.org>\r\n") == ["554 5.7.1"])
        #expect(d.codesFor("RCPT TO:<x@sub.bounces.example.org>\r\n") == ["554 5.7.1"])
        #expect(d.codesFor("RCPT TO:<victim@elsewhere.example>\r\n") == ["554 5.7.1"])
        #expect(d.codesFor("DATA\r\n") == ["354"])
        #expect(d.codesFor("Subject: DSN\r\n\r\nbody\r\n.\r\n") == ["commit", "250 2.0.0"])
        #expect(d.commits.last?.recipients.map(\.mailbox.description)
                == ["news+c12-s3456@Bounces.Example.ORG", "fbl@bounces.example.org"])
    }

    @Test func withoutLocalDomainsNothingChanges() {
        var d = SessionDriver(sessionConfig(), trusted: false)
        #expect(d.codesFor("EHLO isp.example\r\nMAIL FROM:<>\r\n") == ["250", "250 2.1.0"])
        #expect(d.codesFor("RCPT TO:<news+c12-s3456@bounces.example.org>\r\n") == ["554 5.7.1"])
    }
}
