@testable import Delivery
import DNS
import Foundation
import HeraldTestSupport
import Logging
import NIOCore
import NIOPosix
import SMTPClient
import SMTPCore
import Testing

/// One `Deliverer.attempt` at a time against the scripted aiosmtpd sink: STARTTLS
/// policy per route, AUTH never in clear, the connection pool, MX fallback from a
/// zone-file resolver, and the classification of the sink's scripted replies.
@Suite(.serialized) struct DelivererLiveTests {
    static func deliverer(routes: [Route] = [], zone: String = "", mxPort: Int = 25) throws -> Deliverer {
        var config = DeliveryConfiguration(heloName: "herald.test", mxPort: mxPort, routes: routes)
        config.timeouts = SMTPClientTimeouts(all: .seconds(10))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return Deliverer(config: config, resolver: try ZoneResolver(zone: zone),
                         group: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }

    static func tx(_ rcpts: [String], tag: String = "t") -> OutboundTransaction {
        OutboundTransaction(sender: "a@client.test", recipients: rcpts.map { .init(address: $0) },
                            message: Array("Message-ID: <\(tag)@client.test>\r\nSubject: \(tag)\r\n\r\nbody\r\n".utf8))
    }

    static func route(_ port: Int, _ tls: OutboundTLSPolicy, user: String? = nil) -> Route {
        Route(pattern: DomainPattern("*")!, host: "127.0.0.1", port: port, tls: tls, username: user,
              password: user == nil ? nil : "secret")
    }

    static func withSinks<T>(_ body: (_ plain: SinkProcess, _ tls: SinkProcess) async throws -> T) async throws -> T {
        let dir = try TemporaryDirectory.make(prefix: "herald-deliverer")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pair = try makeSelfSignedCertificate(in: dir)
        let plain = try await SinkProcess()
        let tls = try await SinkProcess(tls: pair)
        do {
            let r = try await body(plain, tls)
            await plain.stop(); await tls.stop()
            return r
        } catch {
            await plain.stop(); await tls.stop()
            throw error
        }
    }

    @Test func startTLSPolicies() async throws {
        try await Self.withSinks { plain, tls in
            // opportunistic: TLS when offered, plain text when not.
            var r = await (try Self.deliverer(routes: [Self.route(tls.port, .opportunistic)])).attempt(domain: "d.test", tx: Self.tx(["x@d.test"], tag: "opp-tls"))
            #expect(r.outcomes.map(\.reply.code) == [250] && r.tls)
            r = await (try Self.deliverer(routes: [Self.route(plain.port, .opportunistic)])).attempt(domain: "d.test", tx: Self.tx(["x@d.test"], tag: "opp-plain"))
            #expect(r.outcomes.map(\.reply.code) == [250] && !r.tls)
            // required: TLS when offered; deferred (4.7.4), never sent in clear, when not.
            r = await (try Self.deliverer(routes: [Self.route(tls.port, .required)])).attempt(domain: "d.test", tx: Self.tx(["x@d.test"], tag: "req-tls"))
            #expect(r.outcomes.map(\.reply.code) == [250] && r.tls)
            r = await (try Self.deliverer(routes: [Self.route(plain.port, .required)])).attempt(domain: "d.test", tx: Self.tx(["x@d.test"], tag: "req-plain"))
            #expect(r.outcomes.count == 1)
            if case .deferred(let reply) = r.outcomes.first {
                #expect(reply.enhanced?.description == "4.7.4", "\(reply)")
            } else {
                Issue.record("required TLS without STARTTLS must defer: \(r.outcomes)")
            }
            // off: plain text even when STARTTLS is offered.
            r = await (try Self.deliverer(routes: [Self.route(tls.port, .off)])).attempt(domain: "d.test", tx: Self.tx(["x@d.test"], tag: "off-tls"))
            #expect(r.outcomes.map(\.reply.code) == [250] && !r.tls)

            #expect(await tls.waitForMessages(3, timeout: 5) == 3)
            let tlsIndex = tls.index()
            #expect(tlsIndex.map(\.message_id) == ["<opp-tls@client.test>", "<req-tls@client.test>", "<off-tls@client.test>"])
            #expect(tlsIndex.map(\.tls) == [true, true, false])
            #expect(plain.index().map(\.message_id) == ["<opp-plain@client.test>"], "nothing sent in clear under required")
        }
    }

    @Test func credentialsNeverGoOutInClear() async throws {
        try await Self.withSinks { plain, _ in
            let r = await (try Self.deliverer(routes: [Self.route(plain.port, .off, user: "u")]))
                .attempt(domain: "d.test", tx: Self.tx(["x@d.test"]))
            if case .deferred(let reply) = r.outcomes.first {
                #expect(reply.enhanced?.description == "4.7.4", "\(reply)")
            } else {
                Issue.record("AUTH over plain text must not happen: \(r.outcomes)")
            }
            #expect(plain.index().isEmpty)
        }
    }

    @Test func connectionsAreReusedFromThePool() async throws {
        try await Self.withSinks { plain, _ in
            let d = try Self.deliverer(routes: [Self.route(plain.port, .off)])
            for i in 0..<5 {
                let r = await d.attempt(domain: "d.test", tx: Self.tx(["x\(i)@d.test"], tag: "pool-\(i)"))
                #expect(r.outcomes.map(\.reply.code) == [250])
            }
            #expect(await d.pool.idleCount == 1, "five messages, one connection")
            await d.pool.closeAll()
            #expect(await d.pool.idleCount == 0)
            #expect(plain.index().count == 5)
        }
    }

    @Test func scriptedRepliesAreClassified() async throws {
        try await Self.withSinks { plain, _ in
            let d = try Self.deliverer(routes: [Self.route(plain.port, .off)])
            let r = await d.attempt(domain: "d.test", tx: Self.tx(["ok@d.test", "tempfail@d.test", "permfail@d.test"]))
            #expect(r.outcomes.map(\.reply.code) == [250, 450, 550])
            #expect(!r.throttled)
            let data = await d.attempt(domain: "d.test", tx: Self.tx(["datatemp@d.test"]))
            #expect(data.outcomes.map(\.reply.code) == [451])
            let thr = await d.attempt(domain: "d.test", tx: Self.tx(["throttle@d.test", "ok@d.test"]))
            #expect(thr.throttled, "421 at RCPT is a throttle: \(thr.outcomes)")
            #expect(thr.outcomes.allSatisfy { if case .deferred = $0 { true } else { false } }, "\(thr.outcomes)")
            #expect(!thr.mayBeDuplicate)
            // The pool does not keep the connection the server closed: the next message goes through.
            let after = await d.attempt(domain: "d.test", tx: Self.tx(["ok2@d.test"], tag: "after"))
            #expect(after.outcomes.map(\.reply.code) == [250])
            await d.pool.closeAll()
        }
    }

    @Test func nextMXWhenTheFirstRefuses() async throws {
        try await Self.withSinks { plain, _ in
            let zone = """
            $ORIGIN mx.test.
            @      MX 10 dead
            @      MX 20 live
            dead   A 127.0.0.2
            live   A 127.0.0.1
            null.test.  MX 0 .
            """
            let d = try Self.deliverer(zone: zone, mxPort: plain.port)
            let r = await d.attempt(domain: "mx.test", tx: Self.tx(["x@mx.test"]))
            #expect(r.outcomes.map(\.reply.code) == [250])
            #expect(r.mxHost == "live.mx.test")
            #expect(r.mxSite == "dead.mx.test,live.mx.test")
            let null = await d.attempt(domain: "null.test", tx: Self.tx(["x@null.test"]))
            if case .failed(let reply) = null.outcomes.first {
                #expect(reply.enhanced?.description == "5.1.10")
            } else {
                Issue.record("null MX fails at once: \(null.outcomes)")
            }
            let nx = await d.attempt(domain: "nowhere.test", tx: Self.tx(["x@nowhere.test"]))
            if case .failed(let reply) = nx.outcomes.first {
                #expect(reply.enhanced?.description == "5.1.2")
            } else {
                Issue.record("NXDOMAIN fails at once: \(nx.outcomes)")
            }
            await d.pool.closeAll()
        }
    }
}
