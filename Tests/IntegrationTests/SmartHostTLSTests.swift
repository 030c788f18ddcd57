import Foundation
import HeraldTestSupport
import Testing

/// Smart hosts with credentials: the password goes out only over TLS whose certificate
/// was verified (a chain to the route's CA, valid now, for the host's address), unless
/// the route opts out with `tls_verify = false`. A bad certificate defers the mail and
/// the smart host never sees the password.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(3)))
    struct SmartHostTLS {
        struct Outcome {
            var delivered: Bool
            var passwords: [String]
            var reason: String
        }

        /// One message through a route to a sink presenting `pair`, with `routeLines`.
        static func run(_ pair: TestCertificates.Pair, _ routeLines: [String]) async throws -> Outcome {
            let sink = try await SinkProcess(tls: pair, auth: true)
            defer { Task { await sink.stop() } }
            let route = (["[[route]]", "domain = \"*.tls.test\"", "host = \"127.0.0.1:\(sink.port)\"",
                          "username = \"relayuser\"", "password = \"s3cret\""] + routeLines).joined(separator: "\n")
            return try await HeraldProcess.with(DeliveryIT.options(toml: [route])) { herald in
                _ = try await DeliveryIT.submitAccepted(port: herald.port(), [DeliveryIT.mail("tls", to: ["a@b.tls.test"])])
                var reason = ""
                let settled = await DeliveryIT.waitUntil(timeout: 20) {
                    if !sink.index().isEmpty { return true }
                    let log = (try? String(contentsOfFile: herald.deliveryLogPath, encoding: .utf8)) ?? ""
                    guard let line = log.split(separator: "\n").last(where: { $0.contains("\"deferred\"") }) else { return false }
                    reason = String(line)
                    return true
                }
                #expect(settled, "neither delivered nor deferred\n\(herald.diagnostics())")
                return Outcome(delivered: !sink.index().isEmpty, passwords: sink.authLog, reason: reason)
            }
        }

        @Test("tls = verify with the route's CA: a good certificate gets the password; wrong name, expired, self-signed do not")
        func verify() async throws {
            let certs = try await TestCertificates.make()
            defer { certs.remove() }
            let lines = ["tls = \"verify\"", "ca_file = \"\(certs.caFile)\""]
            let good = try await Self.run(certs.valid, lines)
            #expect(good.delivered && good.passwords == ["relayuser s3cret"], "\(good)")
            for (name, pair) in [("wrong name", certs.wrongName), ("expired", certs.expired),
                                 ("self-signed", certs.selfSigned)] {
                let bad = try await Self.run(pair, lines)
                #expect(!bad.delivered && bad.passwords.isEmpty, "\(name): \(bad)")
                #expect(bad.reason.contains("TLS"), "\(name): the log says why: \(bad.reason)")
            }
        }

        @Test("credentials make the default policy verify; tls_verify = false is the explicit way out")
        func credentialsNeedVerification() async throws {
            let certs = try await TestCertificates.make()
            defer { certs.remove() }
            let unverified = try await Self.run(certs.selfSigned, [])
            #expect(!unverified.delivered && unverified.passwords.isEmpty, "\(unverified)")
            let trusted = try await Self.run(certs.valid, ["ca_file = \"\(certs.caFile)\""])
            #expect(trusted.delivered && trusted.passwords == ["relayuser s3cret"], "\(trusted)")
            let optedOut = try await Self.run(certs.selfSigned, ["tls_verify = false"])
            #expect(optedOut.delivered && optedOut.passwords == ["relayuser s3cret"], "\(optedOut)")
        }

        @Test("check-config warns about tls_verify = false and refuses an unreadable ca_file")
        func checkConfig() async throws {
            let dir = try TemporaryDirectory.make(prefix: "herald-tls-config")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            func check(_ route: String) async throws -> CommandResult {
                let path = dir + "/herald.toml"
                try ("[[route]]\ndomain = \"*.tls.test\"\nhost = \"127.0.0.1:2600\"\n" + route)
                    .write(toFile: path, atomically: true, encoding: .utf8)
                return try await Command.run(HeraldProcess.binary, ["check-config", "--config", path])
            }
            let warned = try await check("username = \"u\"\npassword = \"p\"\ntls_verify = false")
            #expect(warned.termination.succeeded && warned.stdoutText.contains("without checking the certificate"), "\(warned)")
            let quiet = try await check("username = \"u\"\npassword = \"p\"")
            #expect(quiet.termination.succeeded && !quiet.stdoutText.contains("warning: route"), "\(quiet)")
            let missing = try await check("tls = \"verify\"\nca_file = \"\(dir)/none.pem\"")
            #expect(!missing.termination.succeeded && missing.stderrText.contains("route[0].ca_file: cannot read"), "\(missing)")
            let typo = try await check("tls = \"verified\"")
            #expect(!typo.termination.succeeded && typo.stderrText.contains("off, opportunistic, required or verify"), "\(typo)")
        }
    }
}
