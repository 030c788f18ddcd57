import Foundation
import HeraldTestSupport
import Testing

/// End to end through the listener: mail for recipients on 50 domains goes in over SMTP,
/// comes out of Herald's SMTP client at the sinks the routes name, once per recipient,
/// byte for byte after Herald's `Received:` line.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryEndToEnd {
        @Test("50 domains via routes: every transaction arrives once, at the right sink, intact")
        func fiftyDomainsViaRoutes() async throws {
            let general = try await SinkProcess()
            let special = try await SinkProcess()
            defer { Task { await general.stop(); await special.stop() } }
            let domains = (0..<50).map { String(format: "d%02d.e2e.test", $0) }
            // *.e2e.test goes to the general sink; the more specific exact routes for the
            // first ten domains win and go to the special sink.
            var toml = [DeliveryIT.route("*.e2e.test", port: general.port)]
            toml += domains.prefix(10).map { DeliveryIT.route($0, port: special.port) }
            try await HeraldProcess.with(DeliveryIT.options(toml: toml)) { herald in
                var mails: [DeliveryIT.Mail] = []
                // One message per domain, one recipient.
                for (i, d) in domains.enumerated() {
                    mails.append(DeliveryIT.mail("single-\(i)", to: ["user\(i)@\(d)"]))
                }
                // Ten messages with recipients on five domains each (one transaction per
                // domain), two of them on the same domain (one transaction, two RCPTs).
                for k in 0..<10 {
                    let ds = (0..<5).map { domains[(k * 7 + $0 * 11) % 50] }
                    let rcpts = ds.map { "fan\(k)@\($0)" } + ["fan\(k)-bis@\(ds[0])"]
                    mails.append(DeliveryIT.mail("fan-\(k)", to: rcpts, bodyLines: 40))
                }
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                #expect(ids.count == mails.count)

                // Expected transactions. A smart-host route is one destination (as a relay
                // host is in Postfix): a message's recipients on all the domains of one route
                // ride one transaction; the ten exact routes are ten destinations.
                let specialDomains = Set(domains.prefix(10))
                func destination(_ rcpt: String) -> String {
                    let d = String(rcpt.split(separator: "@")[1])
                    return specialDomains.contains(d) ? d : "*.e2e.test"
                }
                var expected: [String: Set<String>] = [:]
                for m in mails {
                    for r in m.to { expected["<\(m.tag)@client.test> \(destination(r))", default: []].insert(r) }
                }
                let emptied = await DeliveryIT.waitForEmptySpool(herald, timeout: 30)
                #expect(emptied, "spool still holds \(herald.spoolIDs().count) message(s)\n\(herald.diagnostics())")
                await DeliveryIT.waitUntil(timeout: 5) { general.index().count + special.index().count >= expected.count }

                let originals = Dictionary(uniqueKeysWithValues: mails.map { ("<\($0.tag)@client.test>", $0.message) })
                var seen: [String: Int] = [:]
                var byRecipient: [String: Int] = [:]
                for (sinkName, sink) in [("general", general), ("special", special)] {
                    for (info, bytes) in DeliveryIT.arrivals(sink) {
                        let dests = Set(info.rcpts.map(destination))
                        #expect(dests.count == 1, "one transaction per destination: \(info.rcpts)")
                        guard let dest = dests.first else { continue }
                        #expect((dest != "*.e2e.test") == (sinkName == "special"), "\(dest) arrived at the \(sinkName) sink")
                        let key = "\(info.message_id) \(dest)"
                        seen[key, default: 0] += 1
                        for r in info.rcpts { byRecipient[r, default: 0] += 1 }
                        #expect(Set(info.rcpts) == expected[key], "recipients of \(key): \(info.rcpts)")
                        #expect(info.mail_from == "sender@client.test")
                        if let original = originals[info.message_id] {
                            let problems = TestMessage.problems(stored: bytes, original: original)
                            #expect(problems.isEmpty, "\(key): \(problems)")
                        } else {
                            Issue.record("unexpected message \(info.message_id) at the \(sinkName) sink")
                        }
                    }
                }
                #expect(Set(seen.keys) == Set(expected.keys),
                        "missing: \(Set(expected.keys).subtracting(seen.keys).sorted().prefix(10))")
                let dups = seen.filter { $0.value > 1 }
                #expect(dups.isEmpty, "delivered more than once: \(dups)")
                // Every recipient of every message exactly once, on all 50 domains.
                let allRecipients = mails.flatMap(\.to)
                #expect(Set(byRecipient.keys) == Set(allRecipients))
                #expect(byRecipient.values.allSatisfy { $0 == 1 })
                #expect(Set(allRecipients.map { String($0.split(separator: "@")[1]) }).count == 50)

                // The log has one "delivered" line per recipient, with host, IP and code.
                let delivered = DeliveryIT.logLines(herald, result: "delivered")
                #expect(delivered.count == mails.reduce(0) { $0 + $1.to.count })
                #expect(delivered.allSatisfy { ($0["code"] as? Int) == 250 && ($0["ip"] as? String) == "127.0.0.1" })
                #expect(DeliveryIT.deliveryLog(herald).count == delivered.count, "no other outcome was logged")
            }
        }
    }
}
