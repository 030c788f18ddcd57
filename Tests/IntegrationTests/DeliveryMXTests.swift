import Foundation
import HeraldTestSupport
import Testing

/// Delivery through DNS: MX records served by a private dnsmasq on 127.0.0.1, c-ares
/// pointed at it, every mail exchanger a sink on loopback (`mx_port`). Covers MX,
/// implicit MX (A only), falling back to the next MX when the first refuses, null MX
/// (5.1.10) and NXDOMAIN (5.1.2) failing at once with a DSN, SERVFAIL deferring.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)), .enabled(if: Dnsmasq.isAvailable, "dnsmasq is not installed"))
    struct DeliveryMX {
        @Test("MX, implicit MX and backup MX deliver; null MX and NXDOMAIN bounce; SERVFAIL defers")
        func deliveryThroughDNS() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let mxDomains = (0..<10).map { "mx\($0).dns.test" }
            var records: [Dnsmasq.Record] = [.address("mx.sink.test", "127.0.0.1"),
                                             .mx("sender.test", host: "mx.sink.test", preference: 10)]
            records += mxDomains.map { .mx($0, host: "mx.sink.test", preference: 10) }
            records += [
                .address("implicit.dns.test", "127.0.0.1"),
                // The preferred MX refuses connections (nothing listens on 127.0.0.2).
                .mx("backup.dns.test", host: "dead.dns.test", preference: 10),
                .mx("backup.dns.test", host: "mx.sink.test", preference: 20),
                .address("dead.dns.test", "127.0.0.2"),
                .nullMX("null.dns.test"),
                .servfail("broken.test"),
            ]
            let dns = try Dnsmasq(records)
            defer { dns.stop() }
            let options = DeliveryIT.options(delivery: ["mx_port = \(sink.port)", "minimal_backoff = \"60s\""],
                                             toml: ["[dns]\nservers = [\"\(dns.server)\"]\ntimeout = \"2s\""])
            try await HeraldProcess.with(options) { herald in
                let good = DeliveryIT.mail("dns-good", from: "alice@sender.test",
                                           to: mxDomains.map { "user@\($0)" } + ["user@implicit.dns.test", "user@backup.dns.test"])
                let bad = DeliveryIT.mail("dns-bad", from: "alice@sender.test",
                                          to: ["user@null.dns.test", "user@nosuch.dns.test", "user@broken.test"])
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), [good, bad])
                #expect(ids.count == 2)
                // 12 deliveries plus two DSNs (one per failed domain).
                let got = await sink.waitForMessages(14, timeout: 30)
                #expect(got == 14, "\(got) arrivals\n\(herald.diagnostics())\n\(DeliveryIT.deliveryLog(herald))")
                let arrivals = DeliveryIT.arrivals(sink)
                let delivered = arrivals.filter { $0.info.mail_from == "alice@sender.test" }
                #expect(Set(delivered.flatMap(\.info.rcpts)) == Set(good.to))
                #expect(delivered.count == good.to.count, "once each")
                for (info, bytes) in delivered {
                    #expect(TestMessage.problems(stored: bytes, original: good.message).isEmpty, "\(info.rcpts)")
                }
                let log = DeliveryIT.deliveryLog(herald)
                let backup = log.first { $0["recipient"] as? String == "user@backup.dns.test" }
                #expect(backup?["mx_host"] as? String == "mx.sink.test", "delivered through the second MX: \(String(describing: backup))")
                #expect(log.first { $0["recipient"] as? String == "user@mx0.dns.test" }?["mx_host"] as? String == "mx.sink.test")

                var statuses: [String: String] = [:]
                for (info, bytes) in arrivals where DeliveryIT.isNullSender(info.mail_from) {
                    #expect(info.rcpts == ["alice@sender.test"])
                    let dsn = try await DeliveryIT.parseDSN(bytes)
                    for r in dsn.recipients {
                        statuses[r["Final-Recipient"] ?? "?"] = r["Status"]
                        #expect(r["Action"] == "failed")
                    }
                }
                #expect(statuses == ["rfc822; user@null.dns.test": "5.1.10", "rfc822; user@nosuch.dns.test": "5.1.2"])

                // SERVFAIL only defers: the message stays, with that recipient deferred.
                let servfail = log.filter { $0["recipient"] as? String == "user@broken.test" }
                #expect(servfail.map { $0["result"] as? String } == ["deferred"], "\(servfail)")
                #expect(servfail.first?["enhanced"] as? String == "4.4.3")
                let list = try await herald.queueList()
                #expect(list.count == 1)
                #expect(list.first?.recipients.map(\.state) == ["failed", "failed", "deferred"])
            }
        }
    }
}
