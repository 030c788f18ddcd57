import Foundation
import HeraldTestSupport
import Testing

/// Connection floods: past `max_connections_per_client` one address gets `421 4.7.0`
/// while another address is still served; past `max_connections` everyone does; freed
/// slots are usable again. Loopback has many addresses: the flood comes from
/// 127.0.0.3, the well-behaved client from 127.0.0.2.
extension Integration {
    @Suite(.serialized, .timeLimit(.minutes(1)))
    struct ConnectionFlood {
        /// Opens `count` connections from `source` and reads each one's first reply.
        func flood(port: Int, source: String, count: Int) throws -> (open: [SMTPTestClient], greeted: Int, refused: Int, other: [String]) {
            var clients: [SMTPTestClient] = []
            for _ in 0..<count { clients.append(try SMTPTestClient(port: port, source: source, timeout: 5)) }
            var greeted = 0, refused = 0
            var other: [String] = []
            var open: [SMTPTestClient] = []
            for c in clients {
                do {
                    let r = try c.readReply()
                    if r.code == 220 {
                        greeted += 1
                        open.append(c)
                    } else if r.status == "421 4.7.0" {
                        refused += 1
                        if !(try c.waitForClose(timeout: 2).closed) { other.append("421 without close") }
                        c.close()
                    } else {
                        other.append(r.description)
                    }
                } catch {
                    other.append("\(error)")
                }
            }
            return (open, greeted, refused, other)
        }

        @Test("a flood beyond max_connections_per_client gets 421 4.7.0; another client is served meanwhile")
        func perClientLimit() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.maxConnectionsPerClient = 10
            options.maxConnections = 50
            try await HeraldProcess.with(options) { herald in
                let f = try flood(port: herald.port(), source: "127.0.0.3", count: 25)
                #expect(f.greeted == 10, "\(f.greeted) greeted, \(f.refused) refused, \(f.other)")
                #expect(f.refused == 15)
                #expect(f.other == [])
                // While the flood holds its ten slots, 127.0.0.2 is served.
                await IT.expectServesNormally(herald, source: "127.0.0.2")
                #expect(herald.log.contains("connection limit reached"))
                // The flooders' open sessions still work.
                if let first = f.open.first {
                    #expect(try first.command("EHLO flood.test").code == 250)
                }
                // Once the flood goes away, 127.0.0.3 is served again.
                for c in f.open { c.close() }
                var served = false
                for _ in 0..<50 where !served {
                    if let r = try? SMTPTestClient.submit(port: herald.port(), message: TestMessage.make(tag: "after-flood"),
                                                          source: "127.0.0.3"), r.code == 250 {
                        served = true
                    } else {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(served, "the flooding address is served again once its connections are gone")
            }
        }

        @Test("beyond max_connections every address gets 421 4.7.0")
        func totalLimit() async throws {
            var options = HeraldProcess.Options(listeners: [.relay(tls: "off")])
            options.maxConnectionsPerClient = 100
            options.maxConnections = 8
            try await HeraldProcess.with(options) { herald in
                let a = try flood(port: herald.port(), source: "127.0.0.4", count: 5)
                let b = try flood(port: herald.port(), source: "127.0.0.5", count: 5)
                #expect(a.greeted == 5 && a.refused == 0, "\(a)")
                #expect(b.greeted == 3 && b.refused == 2, "\(b)")
                let c = try flood(port: herald.port(), source: "127.0.0.6", count: 1)
                #expect(c.refused == 1, "\(c)")
                for client in a.open + b.open { client.close() }
                var served = false
                for _ in 0..<50 where !served {
                    if let r = try? SMTPTestClient.submit(port: herald.port(), message: TestMessage.make(tag: "after-total"),
                                                          source: "127.0.0.6"), r.code == 250 {
                        served = true
                    } else {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                #expect(served, "served again once the connections are gone")
            }
        }
    }
}
