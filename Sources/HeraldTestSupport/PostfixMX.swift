import Foundation

/// A private Postfix instance as a downstream MX: its own config and queue in a temporary
/// directory, smtpd on 127.0.0.1 and an ephemeral port, never port 25 nor /etc/postfix.
/// It accepts mail for `relayDomains` from loopback and delivers it by `transport`
/// (a Postfix transport table: `user@domain error:5.1.1 User unknown` bounces that
/// recipient after accepting it (`smtpd_reject_unlisted_recipient = no`), so Postfix sends a real RFC 3464 DSN to the envelope
/// sender; `domain discard:` accepts and drops; `domain smtp:[127.0.0.1]:PORT` relays
/// there, e.g. the DSNs back to Herald).
public final class PostfixMX: @unchecked Sendable {
    public let port: Int
    public let directory: String
    private let configDirectory: String

    /// Whether `postfix` can run here (the Debian package, as root: it drops to the
    /// `postfix` user itself).
    public static var isAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/sbin/postfix") && getuid() == 0
    }

    public init(relayDomains: [String], transport: [String], hostname: String = "mx.downstream.test") async throws {
        port = try HeraldProcess.freeLoopbackPort()
        directory = NSTemporaryDirectory() + "herald-postfix-\(UUID().uuidString.prefix(8))"
        configDirectory = directory + "/etc"
        let queue = directory + "/queue"
        try FileManager.default.createDirectory(atPath: configDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: queue, withIntermediateDirectories: true)
        try (transport.joined(separator: "\n") + "\n").write(toFile: configDirectory + "/transport", atomically: true,
                                                              encoding: .utf8)
        let main = """
            compatibility_level = 3.6
            queue_directory = \(queue)
            data_directory = \(directory)/data
            mail_owner = postfix
            setgid_group = postdrop
            myhostname = \(hostname)
            mydomain = downstream.test
            myorigin = $myhostname
            mydestination =
            relay_domains = \(relayDomains.joined(separator: ", "))
            relay_recipient_maps =
            local_recipient_maps =
            alias_maps =
            alias_database =
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
            smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
            # Accept recipients routed to the error transport, then bounce them with a DSN
            # (by default smtpd would refuse them at RCPT).
            smtpd_reject_unlisted_recipient = no
            transport_maps = texthash:\(configDirectory)/transport
            smtp_tls_security_level = none
            smtp_dns_support_level = disabled
            delay_warning_time = 0
            bounce_queue_lifetime = 1h
            maillog_file = \(directory)/maillog
            maillog_file_prefixes = \(directory)
            """
        try main.write(toFile: configDirectory + "/main.cf", atomically: true, encoding: .utf8)
        let master = """
            127.0.0.1:\(port) inet n - n - - smtpd
            pickup    unix n - n 60 1 pickup
            cleanup   unix n - n - 0 cleanup
            qmgr      unix n - n 300 1 qmgr
            rewrite   unix - - n - - trivial-rewrite
            bounce    unix - - n - 0 bounce
            defer     unix - - n - 0 bounce
            trace     unix - - n - 0 bounce
            verify    unix - - n - 1 verify
            flush     unix n - n 1000? 0 flush
            proxymap  unix - - n - - proxymap
            proxywrite unix - - n - 1 proxymap
            smtp      unix - - n - - smtp
            relay     unix - - n - - smtp
            showq     unix n - n - - showq
            error     unix - - n - - error
            retry     unix - - n - - error
            discard   unix - - n - - discard
            anvil     unix - - n - 1 anvil
            scache    unix - - n - 1 scache
            postlog   unix-dgram n - n - 1 postlogd
            """
        try master.write(toFile: configDirectory + "/master.cf", atomically: true, encoding: .utf8)
        let r = try await Command.run("postfix", ["-c", configDirectory, "start"], timeout: 60)
        guard r.termination.succeeded else {
            throw SubprocessError("postfix did not start: \(r)\n\(maillog())")
        }
        if try await SMTPTestClient.waitForGreeting(port: port, timeout: 20) { return }
        await stop()
        throw SubprocessError("postfix did not answer on 127.0.0.1:\(port)\n\(maillog())")
    }

    /// Postfix's log of this instance (for failure messages).
    public func maillog() -> String {
        (try? String(contentsOfFile: directory + "/maillog", encoding: .utf8)) ?? "(no maillog)"
    }

    /// `postfix stop`, then the master is killed if it is still there; the directory is removed.
    public func stop() async {
        _ = try? await Command.run("postfix", ["-c", configDirectory, "stop"], timeout: 30)
        if let text = try? String(contentsOfFile: directory + "/queue/pid/master.pid", encoding: .utf8),
           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            for _ in 0..<100 where posixKill(pid, 0) == 0 { try? await Task.sleep(for: .milliseconds(100)) }
            if posixKill(pid, 0) == 0 { _ = posixKill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
