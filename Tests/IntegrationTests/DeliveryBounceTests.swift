import Foundation
import HeraldTestSupport
import Testing

/// Permanent failures: the recipient fails at once, an RFC 3464 DSN goes to the envelope
/// sender through the same spool (and is itself delivered, here to a sink routed for the
/// sender's domain), the original leaves the spool. A null sender never gets a DSN.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(2)))
    struct DeliveryBounce {
        @Test("permfail and datafail: DSNs delivered to the sender, originals gone, other recipients delivered")
        func permanentFailuresBounce() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let toml = [DeliveryIT.route("*.test", port: sink.port)]
            try await HeraldProcess.with(DeliveryIT.options(toml: toml)) { herald in
                let rcptFail = DeliveryIT.mail("bounce-rcpt", from: "alice@sender.test",
                                               to: ["permfail@dest.test", "ok@dest.test", "ok@other.test"])
                let dataFail = DeliveryIT.mail("bounce-data", from: "bob@sender.test", to: ["datafail@dest.test"])
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), [rcptFail, dataFail])
                #expect(ids.count == 2)

                // ok@dest and ok@other (one transaction: one route), and two DSNs.
                #expect(await DeliveryIT.waitUntil(timeout: 20) { sink.index().flatMap(\.rcpts).count >= 4 },
                        "\(sink.index().map(\.rcpts))\n\(herald.diagnostics())")
                #expect(await DeliveryIT.waitForEmptySpool(herald, timeout: 10),
                        "left in the spool: \(herald.spoolIDs())")
                try await Task.sleep(for: .milliseconds(300))
                let arrivals = DeliveryIT.arrivals(sink)
                let dsns = arrivals.filter { DeliveryIT.isNullSender($0.info.mail_from) }
                let normal = arrivals.filter { !DeliveryIT.isNullSender($0.info.mail_from) }
                #expect(normal.flatMap(\.info.rcpts).sorted() == ["ok@dest.test", "ok@other.test"])
                #expect(dsns.count == 2, "one DSN per failed message, no bounce of a bounce")

                for (info, bytes) in dsns {
                    let dsn = try await DeliveryIT.parseDSN(bytes)
                    #expect(dsn.contentType == "multipart/report")
                    #expect(dsn.reportType == "delivery-status")
                    #expect(dsn.autoSubmitted == "auto-replied")
                    #expect(dsn.defects.isEmpty, "\(dsn.defects)")
                    #expect(dsn.partTypes == ["text/plain", "message/delivery-status", "message/rfc822"])
                    #expect(dsn.perMessage["Reporting-MTA"] == "dns; mx.test")
                    #expect(dsn.recipients.count == 1, "only the failed recipient is reported: \(dsn.recipients)")
                    let r = dsn.recipients.first ?? [:]
                    #expect(r["Action"] == "failed")
                    switch info.rcpts {
                    case ["alice@sender.test"]:
                        #expect(r["Final-Recipient"] == "rfc822; permfail@dest.test")
                        #expect(r["Status"] == "5.1.1")
                        #expect(r["Diagnostic-Code"]?.hasPrefix("smtp; 550 5.1.1") == true, "\(r)")
                        #expect(dsn.returnedHeaders["Message-ID"] == "<bounce-rcpt@client.test>")
                    case ["bob@sender.test"]:
                        #expect(r["Final-Recipient"] == "rfc822; datafail@dest.test")
                        #expect(r["Status"] == "5.6.0")
                        #expect(r["Diagnostic-Code"]?.hasPrefix("smtp; 554 5.6.0") == true, "\(r)")
                        #expect(dsn.returnedHeaders["Message-ID"] == "<bounce-data@client.test>")
                    default:
                        Issue.record("a DSN to an unexpected recipient: \(info.rcpts)")
                    }
                    #expect(r["Remote-MTA"]?.hasPrefix("dns; ") == true, "\(r)")
                }

                // The log: failed outcomes, the bounces, and the DSNs' own deliveries.
                let failed = DeliveryIT.logLines(herald, result: "failed")
                #expect(Set(failed.compactMap { $0["recipient"] as? String }) == ["permfail@dest.test", "datafail@dest.test"])
                #expect(failed.allSatisfy { ($0["attempt"] as? Int) == 1 }, "a 5xx is not retried")
                #expect(DeliveryIT.logLines(herald, result: "bounced").count == 2)
                #expect(Set(DeliveryIT.logLines(herald, result: "delivered").compactMap { $0["recipient"] as? String })
                        == ["ok@dest.test", "ok@other.test", "alice@sender.test", "bob@sender.test"])
                #expect(DeliveryIT.logLines(herald, result: "deferred").isEmpty)
            }
        }

        @Test("RET=HDRS returns headers only; NOTIFY=NEVER gets no DSN")
        func dsnParameters() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            try await HeraldProcess.with(DeliveryIT.options(toml: [DeliveryIT.route("*.test", port: sink.port)])) { herald in
                let hdrs = DeliveryIT.mail("ret-hdrs", from: "carol@sender.test", to: ["permfail@dest.test"])
                let never = DeliveryIT.mail("notify-never", from: "dave@sender.test", to: ["permfail@dest.test"])
                let replies = try await DeliveryIT.session(port: herald.port()) { c -> [WireReply] in
                    var out: [WireReply] = []
                    out.append(try c.sendMail(from: hdrs.from, to: hdrs.to, message: hdrs.message,
                                              mailParameters: "RET=HDRS ENVID=env-42"))
                    _ = try c.command("MAIL FROM:<\(never.from)>")
                    _ = try c.command("RCPT TO:<permfail@dest.test> NOTIFY=NEVER")
                    _ = try c.command("DATA")
                    try c.send(TestMessage.wire(never.message))
                    out.append(try c.readReply())
                    return out
                }
                #expect(replies.map(\.code) == [250, 250], "\(replies)")
                #expect(await DeliveryIT.waitForEmptySpool(herald, timeout: 20), "left: \(herald.spoolIDs())")
                await sink.waitForMessages(1, timeout: 5)
                try await Task.sleep(for: .milliseconds(500))
                let arrivals = DeliveryIT.arrivals(sink)
                #expect(arrivals.map(\.info.rcpts) == [["carol@sender.test"]], "one DSN, none for NOTIFY=NEVER")
                if let (_, bytes) = arrivals.first {
                    let dsn = try await DeliveryIT.parseDSN(bytes)
                    #expect(dsn.partTypes == ["text/plain", "message/delivery-status", "text/rfc822-headers"])
                    #expect(dsn.perMessage["Original-Envelope-Id"] == "env-42")
                    #expect(dsn.returnedHeaders["Message-ID"] == "<ret-hdrs@client.test>")
                    #expect(!String(decoding: bytes, as: UTF8.self).contains("line 0 of ret-hdrs"), "no body")
                }
                #expect(DeliveryIT.logLines(herald, result: "failed").count == 2)
            }
        }

        @Test("a null sender's failure produces no DSN and leaves nothing behind")
        func nullSenderNeverBounces() async throws {
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            try await HeraldProcess.with(DeliveryIT.options(toml: [DeliveryIT.route("*.test", port: sink.port)])) { herald in
                let m = DeliveryIT.mail("null-sender", from: "", to: ["permfail@dest.test", "datafail@other.test"])
                let ids = try await DeliveryIT.submitAccepted(port: herald.port(), [m])
                #expect(ids.count == 1)
                #expect(await DeliveryIT.waitUntil(timeout: 20) {
                    DeliveryIT.logLines(herald, result: "failed").count == 2
                }, "\(DeliveryIT.deliveryLog(herald))")
                #expect(await DeliveryIT.waitForEmptySpool(herald, timeout: 10), "left: \(herald.spoolIDs())")
                try await Task.sleep(for: .seconds(1))
                #expect(sink.index().isEmpty, "nothing may arrive: \(sink.index().map(\.rcpts))")
                #expect(DeliveryIT.logLines(herald, result: "bounced").isEmpty)
                #expect(herald.spoolIDs().isEmpty)
                #expect(herald.log.contains("no bounce for a null sender"))
            }
        }
    }
}
