import Foundation
import SMTPCore
import SMTPServer
import Testing

/// A tenant's quota in the session: a sink refusal (`commitRefused`) answers the DATA
/// with its reply and the session goes on; a refusal the node already knows answers
/// RCPT for authenticated clients only.
@Suite struct SMTPSessionQuotaTests {
    static let overQuota = SMTPReply(452, EnhancedStatusCode(4, 7, 1), "Quota exceeded: try again in 60 seconds")

    static func authenticated() -> SessionDriver {
        var d = SessionDriver(sessionConfig(role: .submission, allowPlaintextAuth: true, authAvailable: true),
                              trusted: false)
        #expect(d.codesFor("EHLO c.test\r\nAUTH PLAIN \(base64("\0alice\0secret"))\r\n") == ["250", "verify alice:secret", "235 2.7.0"])
        return d
    }

    @Test("a refused commit answers the end of data with the sink's reply; the next transaction works")
    func refusedCommit() {
        var d = Self.authenticated()
        d.autoCommit = false
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
            == ["250 2.1.0", "250 2.1.5", "354", "commit"])
        let refused = d.session.commitRefused(Self.overQuota)
        #expect(refused.compactMap(reply) == [Self.overQuota])
        #expect(!d.session.inTransaction && !d.session.isWaiting)
        d.autoCommit = true
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\n") == ["250 2.1.0"])
    }

    @Test("a known refusal answers RCPT with 452 4.7.1 for an authenticated client; not MAIL, not once lifted")
    func knownRefusalAtRcpt() {
        var d = Self.authenticated()
        d.session.recipientRefusal = Self.overQuota
        #expect(d.codesFor("MAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\nDATA\r\n")
            == ["250 2.1.0", "452 4.7.1", "554 5.5.1"])
        d.session.recipientRefusal = nil
        #expect(d.codesFor("RSET\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\n")
            == ["250 2.0.0", "250 2.1.0", "250 2.1.5"])
    }

    @Test("a trusted relay client without AUTH is not refused for a tenant's quota")
    func relayClientsHaveNoTenant() {
        var d = SessionDriver(sessionConfig(role: .relay), trusted: true)
        d.session.recipientRefusal = Self.overQuota
        #expect(d.codesFor("EHLO c.test\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<r@remote.example>\r\n")
            == ["250", "250 2.1.0", "250 2.1.5"])
    }
}
