import Foundation
import HeraldTestSupport
import Testing

/// DKIM through `herald serve`: keys made by `herald dkim keygen`, their records served by
/// dnsmasq, mail submitted over SMTP and a campaign delivered to the test MX, every
/// arrival checked by dkimpy (an RSA and an Ed25519 signature each), campaign mail by
/// OpenDKIM as well.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)),
           .enabled(if: Dnsmasq.isAvailable && DKIMVerification.isAvailable))
    struct DKIMSigning {
        struct Keys {
            var toml: [String]
            var records: [Dnsmasq.Record]
            var texts: [(name: String, text: String)] = []
        }

        /// OpenDKIM's verdict on each of the two signatures alone.
        static func openDKIM(_ message: [UInt8], _ keys: Keys) async throws -> [String] {
            guard DKIMVerification.openDKIMAvailable else { return ["pass", "pass"] }
            var verdicts: [String] = []
            for dropped in [1, 0] {
                let result = try await DKIMVerification.openDKIM(
                    DKIMVerification.dropping(signature: dropped, from: message), records: keys.texts)
                verdicts.append(result.passed ? "pass" : "fail: \(result.output)")
            }
            return verdicts
        }

        /// An RSA and an Ed25519 key for `domain`, made by the CLI in `directory`.
        static func keys(domain: String, in directory: String) async throws -> Keys {
            var keys = Keys(toml: [], records: [])
            for (selector, algorithm) in [("rsa", "rsa-sha256"), ("ed", "ed25519-sha256")] {
                let path = directory + "/\(selector).pem"
                let made = try await Command.run(HeraldProcess.binary, [
                    "dkim", "keygen", "--domain", domain, "--selector", selector, "--algorithm", algorithm, "--out", path,
                ])
                #expect(made.termination.succeeded, "\(made)")
                let zone = try #require(made.stdoutText.split(separator: "\n").first { $0.contains(" IN TXT ") })
                let name = String(zone[..<zone.range(of: ". IN TXT ")!.lowerBound])
                let text = zone[zone.range(of: " IN TXT ")!.upperBound...]
                    .split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map(\.element).joined()
                #expect(name == "\(selector)._domainkey.\(domain)" && text.hasPrefix("v=DKIM1; k="), "\(zone)")
                // The entry the command prints is the one the configuration takes.
                let entry = made.stdoutText.components(separatedBy: "[[dkim]]").last ?? ""
                #expect(entry.contains("private_key = \"\(path)\""), "\(made.stdoutText)")
                keys.toml.append("[[dkim]]" + entry)
                keys.records.append(DKIMVerification.txtRecord(name, text))
                keys.texts.append((name, text))
            }
            let again = try await Command.run(HeraldProcess.binary, [
                "dkim", "keygen", "--domain", domain, "--selector", "rsa", "--out", directory + "/rsa.pem",
            ])
            #expect(!again.termination.succeeded && again.stderrText.contains("exists"), "an existing key is kept: \(again)")
            return keys
        }

        @Test("check-config loads the keys and names what is wrong with a bad entry")
        func checkConfig() async throws {
            let dir = try TemporaryDirectory.make(prefix: "herald-dkim-config")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            _ = try await Self.keys(domain: "mail.test", in: dir)
            func check(_ entry: String) async throws -> CommandResult {
                let path = dir + "/herald.toml"
                try ("[[dkim]]\n" + entry).write(toFile: path, atomically: true, encoding: .utf8)
                return try await Command.run(HeraldProcess.binary, ["check-config", "--config", path])
            }
            let good = try await check("domain = \"mail.test\"\nselector = \"ed\"\nprivate_key = \"\(dir)/ed.pem\"")
            #expect(good.termination.succeeded && good.stdoutText.contains("dkim: ed._domainkey.mail.test ed25519-sha256"),
                    "\(good)")
            let cases = [
                ("domain = \"mail.test\"\nselector = \"ed\"\nprivate_key = \"\(dir)/ed.pem\"\nalgorithm = \"rsa-sha256\"",
                 "dkim[0].algorithm: rsa-sha256, but the key is for ed25519-sha256"),
                ("domain = \"mail.test\"\nselector = \"x\"\nprivate_key = \"\(dir)/missing.pem\"",
                 "dkim[0].private_key: cannot read"),
                ("domain = \"mail.test\"\nselector = \"x\"\nprivate_key = \"\(dir)/herald.toml\"",
                 "not a PEM private key"),
            ]
            for (entry, message) in cases {
                let bad = try await check(entry)
                #expect(!bad.termination.succeeded && bad.stderrText.contains(message), "\(bad)")
            }
        }

        @Test("mail submitted over SMTP From a domain with keys arrives with two signatures that verify; other mail unsigned")
        func smtpSubmission() async throws {
            let dir = try TemporaryDirectory.make(prefix: "herald-dkim-it")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let keys = try await Self.keys(domain: "mail.test", in: dir)
            let dns = try Dnsmasq(keys.records)
            defer { dns.stop() }
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(toml: [DeliveryIT.route("*.dkim.test", port: sink.port)] + keys.toml)
            try await HeraldProcess.with(options) { herald in
                var mails = (0..<3).map { DeliveryIT.mail("signed-\($0)", from: "news@mail.test", to: ["u\($0)@a.dkim.test"]) }
                mails.append(DeliveryIT.mail("sub", from: "alerts@eu.mail.test", to: ["s@b.dkim.test"]))
                mails.append(DeliveryIT.mail("unsigned", from: "someone@other.test", to: ["x@c.dkim.test"]))
                _ = try await DeliveryIT.submitAccepted(port: herald.port(), mails)
                let arrived = await DeliveryIT.waitUntil(timeout: 30) { sink.index().count == mails.count }
                #expect(arrived, "\(sink.index().count) of \(mails.count) arrived\n\(herald.diagnostics())")
                for (info, bytes) in DeliveryIT.arrivals(sink) {
                    let verdicts = try await DKIMVerification.verify(bytes, dnsPort: dns.port)
                    let expected = info.message_id.contains("unsigned") ? [] : ["pass", "pass"]
                    #expect(verdicts == expected, "\(info.message_id): \(verdicts)")
                }
            }
        }

        @Test("a DSN Herald writes is signed with the host's key")
        func bounceIsSigned() async throws {
            let dir = try TemporaryDirectory.make(prefix: "herald-dkim-it")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let keys = try await Self.keys(domain: "mx.test", in: dir)   // the test daemon's host name
            let dns = try Dnsmasq(keys.records)
            defer { dns.stop() }
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let options = DeliveryIT.options(toml: [DeliveryIT.route("*.test", port: sink.port)] + keys.toml)
            try await HeraldProcess.with(options) { herald in
                let mail = DeliveryIT.mail("to-bounce", from: "alice@sender.test", to: ["permfail@dest.dkim.test"])
                _ = try await DeliveryIT.submitAccepted(port: herald.port(), [mail])
                let bounced = await DeliveryIT.waitUntil(timeout: 30) {
                    DeliveryIT.arrivals(sink).contains { DeliveryIT.isNullSender($0.info.mail_from) }
                }
                #expect(bounced, "no DSN arrived\n\(herald.diagnostics())")
                let dsn = try #require(DeliveryIT.arrivals(sink).first { DeliveryIT.isNullSender($0.info.mail_from) })
                #expect(dsn.info.rcpts == ["alice@sender.test"])
                let verdicts = try await DKIMVerification.verify(dsn.bytes, dnsPort: dns.port)
                #expect(verdicts == ["pass", "pass"], "\(verdicts)")
            }
        }

        @Test("a campaign's messages verify, List-Unsubscribe and List-Unsubscribe-Post signed")
        func campaign() async throws {
            let dir = try TemporaryDirectory.make(prefix: "herald-dkim-it")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let keys = try await Self.keys(domain: "campaign.test", in: dir)
            let dns = try Dnsmasq(keys.records)
            defer { dns.stop() }
            let pg = try await PostgresServer.shared()
            let database = try await pg.createDatabase(prefix: "dkim")
            let sink = try await SinkProcess()
            defer { Task { await sink.stop() } }
            let httpPort = try HeraldProcess.freeLoopbackPort()
            let options = CampaignIT.options(database: database, httpPort: httpPort, delivery: true,
                                             toml: [DeliveryIT.route("*.dkim.test", port: sink.port)] + keys.toml)
            try await HeraldProcess.with(options) { herald in
                _ = try await herald.httpPort()
                let api = CampaignIT.API(port: httpPort, key: try await CampaignIT.createTenant(herald, "acme"))
                let list = try await api.createList("signed")
                let csv = herald.directory + "/subscribers.csv"
                try CampaignIT.writeCSV(count: 5, domain: "dkim.test", to: csv)
                _ = try await api.importCSV(list: list, path: csv)
                let created = try await api.expect(201, "POST", "/v1/campaigns", [
                    "name": "signed", "from": "News <news@campaign.test>", "subject": "Grüße, {{email}}",
                    "text": "Hallo {{email}}, schöne Grüße.\n{{unsubscribe_url}}\n", "list_ids": [list],
                ] as [String: Any])
                let id = try #require(created["id"] as? Int)
                try await api.send(campaign: id)
                let arrived = await DeliveryIT.waitUntil(timeout: 60) { sink.index().count == 5 }
                #expect(arrived, "\(sink.index().count) of 5 arrived\n\(herald.diagnostics())")
                for (info, bytes) in DeliveryIT.arrivals(sink) {
                    let verdicts = try await DKIMVerification.verify(bytes, dnsPort: dns.port)
                    #expect(verdicts == ["pass", "pass"], "\(info.rcpts): \(verdicts)")
                    let openDKIM = try await Self.openDKIM(bytes, keys)
                    #expect(openDKIM == ["pass", "pass"], "\(info.rcpts): OpenDKIM \(openDKIM)")
                    let signature = try #require(DeliveryIT.header("DKIM-Signature", in: bytes))
                    let h = signature.replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "\t", with: "")
                    #expect(h.contains("list-unsubscribe:list-unsubscribe-post"), "\(signature)")
                    #expect(DeliveryIT.header("List-Unsubscribe-Post", in: bytes) != nil)
                }
            }
        }
    }
}
