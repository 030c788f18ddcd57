import DNS
import Foundation
import HeraldTestSupport
import Logging
import Testing

/// A clock the test moves by hand, for cache expiry.
final class TestClock: Clock, @unchecked Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration

        func advanced(by duration: Duration) -> Instant { Instant(offset: self.offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - self.offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private let lock = NSLock()
    private var current = Instant(offset: .zero)

    var now: Instant { self.lock.withLock { self.current } }
    var minimumResolution: Duration { .nanoseconds(1) }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        while self.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    func advance(by duration: Duration) {
        self.lock.withLock { self.current = self.current.advanced(by: duration) }
    }
}

private let quietLogger: Logger = {
    var logger = Logger(label: "herald.dns.test")
    logger.logLevel = .error
    return logger
}()

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

@Suite("CAresResolver against dnsmasq", .enabled(if: Dnsmasq.isAvailable), .timeLimit(.minutes(1)))
struct CAresResolverTests {
    static let records: [Dnsmasq.Record] = [
        .mx("two.test", host: "mx1.two.test", preference: 10),
        .mx("two.test", host: "mx2.two.test", preference: 20),
        .address("mx1.two.test", "127.0.0.1"),
        .address("mx2.two.test", "127.0.0.2"),
        .mx("equal.test", host: "a.equal.test", preference: 10),
        .mx("equal.test", host: "b.equal.test", preference: 10),
        .mx("equal.test", host: "c.equal.test", preference: 30),
        .address("implicit.test", "127.0.0.5"),
        .address("dual.test", "127.0.0.6"),
        .address("dual.test", "::1"),
        .address("v6only.test", "2001:db8::6"),
        .nullMX("null.test"),
        .servfail("servfail.test"),
        .option("--txt-record=nomail.test,no mail here"),
    ]

    func withResolver<T>(
        _ records: [Dnsmasq.Record] = Self.records, maxInFlight: Int = 100, clock: TestClock = TestClock(),
        _ body: (Dnsmasq, CAresResolver) async throws -> T
    ) async throws -> T {
        let dns = try Dnsmasq(records)
        defer { dns.stop() }
        let resolver = try CAresResolver(
            servers: [dns.server], timeout: .seconds(3), maxInFlight: maxInFlight, clock: clock, logger: quietLogger)
        defer { resolver.shutdown() }
        return try await body(dns, resolver)
    }

    @Test func mxWithTwoPreferences() async throws {
        try await self.withResolver { (_, resolver) async throws in
            let hosts = try await resolver.mx(for: "two.test")
            #expect(hosts == [MXHost(name: "mx1.two.test", preference: 10), MXHost(name: "mx2.two.test", preference: 20)])
            #expect(mxSite(for: hosts) == "mx1.two.test,mx2.two.test")
            #expect(try await resolver.mx(for: "TWO.test.") == hosts)
        }
    }

    @Test func equalPreferencesAreShuffledAcrossLookups() async throws {
        try await self.withResolver { (_, resolver) async throws in
            var orders: Set<[String]> = []
            for _ in 0..<40 {
                let hosts = try await resolver.mx(for: "equal.test")
                #expect(hosts.count == 3)
                #expect(hosts.last == MXHost(name: "c.equal.test", preference: 30))
                orders.insert(hosts.map(\.name))
            }
            #expect(orders.count == 2)  // a before b and b before a
        }
    }

    @Test func implicitMXFromAnAddressRecord() async throws {
        try await self.withResolver { (_, resolver) async throws in
            #expect(try await resolver.mx(for: "implicit.test") == [MXHost(name: "implicit.test", preference: 0)])
            #expect(try await resolver.mx(for: "v6only.test") == [MXHost(name: "v6only.test", preference: 0)])
        }
    }

    @Test func nullMXFailsPermanently() async throws {
        try await self.withResolver { (_, resolver) async throws in
            let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "null.test") }
            #expect(error?.isNullMX == true)
            #expect(error?.enhancedStatus == "5.1.10")
        }
    }

    @Test func nxdomainFailsPermanently() async throws {
        try await self.withResolver { (_, resolver) async throws in
            let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "nowhere.test") }
            #expect(error?.isNoSuchDomain == true)
            #expect(error?.enhancedStatus == "5.1.2")
            let host = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "nowhere.test") }
            #expect(host?.isNoAddress == true)
        }
    }

    @Test func domainWithoutMXOrAddressFailsPermanently() async throws {
        try await self.withResolver { (_, resolver) async throws in
            let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "nomail.test") }
            #expect(error?.isNoMailExchanger == true)
            #expect(error?.isPermanent == true)
            #expect(error?.description.contains("no MX and no A/AAAA") == true)
        }
    }

    @Test func servfailIsTemporary() async throws {
        try await self.withResolver { (_, resolver) async throws in
            let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "servfail.test") }
            #expect(error?.isTemporary == true)
            #expect(error?.enhancedStatus == "4.4.3")
            #expect(error?.description.contains("SERVFAIL") == true, "\(String(describing: error))")
            let host = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "mx.servfail.test") }
            #expect(host?.isTemporary == true)
        }
    }

    @Test func addressLookups() async throws {
        try await self.withResolver { (_, resolver) async throws in
            #expect(try await resolver.addresses(for: "mx1.two.test") == ["127.0.0.1"])
            #expect(try await resolver.addresses(for: "dual.test") == ["127.0.0.6", "::1"])
            #expect(try await resolver.addresses(for: "v6only.test") == ["2001:db8::6"])
            #expect(try await resolver.addresses(for: "127.0.0.9") == ["127.0.0.9"])
            let error = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "nomail.test") }
            #expect(error?.isNoAddress == true)
        }
    }

    @Test func answersComeFromTheCacheForTheirTTL() async throws {
        let clock = TestClock()
        try await self.withResolver(clock: clock) { (dns, resolver) async throws in
            let hosts = try await resolver.mx(for: "two.test")
            let addresses = try await resolver.addresses(for: "dual.test")
            _ = await #expect(throws: DNSError.self) { try await resolver.mx(for: "nowhere.test") }
            let sent = resolver.statistics.queriesSent
            dns.stop()

            clock.advance(by: .seconds(30))
            #expect(try await resolver.mx(for: "two.test") == hosts)
            #expect(try await resolver.addresses(for: "dual.test") == addresses)
            let negative = await #expect(throws: DNSError.self) { try await resolver.mx(for: "nowhere.test") }
            #expect(negative?.isNoSuchDomain == true)  // NXDOMAIN cached (60 s: no SOA from dnsmasq)
            #expect(resolver.statistics.queriesSent == sent)
            #expect(resolver.statistics.cacheHits >= 4)

            clock.advance(by: .seconds(31))  // 61 s: the negative answer expired, records (300 s) not
            let expired = await #expect(throws: DNSError.self) { try await resolver.mx(for: "nowhere.test") }
            #expect(expired?.isTemporary == true)  // dnsmasq is gone
            #expect(try await resolver.mx(for: "two.test") == hosts)

            clock.advance(by: .seconds(240))  // 301 s
            let gone = await #expect(throws: DNSError.self) { try await resolver.mx(for: "two.test") }
            #expect(gone?.isTemporary == true)
        }
    }

    @Test func manyConcurrentQueriesRespectTheInFlightCap() async throws {
        let names = (0..<200).map { "h\($0).many.test" }
        let records = names.enumerated().map { Dnsmasq.Record.address($0.element, "127.0.\($0.offset / 250).\($0.offset % 250 + 1)") }
        try await self.withResolver(records, maxInFlight: 10) { (_, resolver) async throws in
            let results = try await withThrowingTaskGroup(of: (Int, [String]).self) { group in
                for (index, name) in names.enumerated() {
                    group.addTask { (index, try await resolver.addresses(for: name)) }
                }
                var results: [Int: [String]] = [:]
                for try await (index, addresses) in group {
                    results[index] = addresses
                }
                return results
            }
            #expect(results.count == 200)
            for index in 0..<200 {
                #expect(results[index] == ["127.0.\(index / 250).\(index % 250 + 1)"])
            }
            let statistics = resolver.statistics
            #expect(statistics.queriesSent == 400)  // A and AAAA for each
            #expect(statistics.peakInFlight <= 10)
            #expect(statistics.peakWaiting > 0)
            #expect(statistics.inFlight == 0 && statistics.waiting == 0)
        }
    }

    @Test func unansweredDomainTimesOut() async throws {
        let dns = try Dnsmasq([.noAnswer("slow.test"), .address("fast.test", "127.0.0.1")])
        defer { dns.stop() }
        let resolver = try CAresResolver(servers: [dns.server], timeout: .seconds(1), logger: quietLogger)
        defer { resolver.shutdown() }
        let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "slow.test") }
        #expect(error?.isTemporary == true)
        #expect(error?.description.contains("timed out") == true, "\(String(describing: error))")
        #expect(try await resolver.addresses(for: "fast.test") == ["127.0.0.1"])
    }

    @Test func identicalConcurrentQuestionsShareOneQuery() async throws {
        try await self.withResolver { (_, resolver) async throws in
            try await withThrowingTaskGroup(of: [MXHost].self) { group in
                for _ in 0..<50 {
                    group.addTask { try await resolver.mx(for: "two.test") }
                }
                for try await hosts in group {
                    #expect(hosts.first?.name == "mx1.two.test")
                }
            }
            #expect(resolver.statistics.queriesSent == 1)
        }
    }
}

@Suite("CAresResolver failures and shutdown", .timeLimit(.minutes(1)))
struct CAresResolverFailureTests {
    @Test func timesOutWithinTheConfiguredTimeout() async throws {
        let blackhole = try StubDNSServer(.silent)
        defer { blackhole.stop() }
        let resolver = try CAresResolver(servers: [blackhole.server], timeout: .seconds(1), tries: 2, logger: quietLogger)
        defer { resolver.shutdown() }
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "example.com") }
        let elapsed = seconds(start.duration(to: clock.now))
        #expect(error?.isTemporary == true)
        #expect(error?.description.contains("timed out") == true)
        #expect(elapsed >= 0.9)
        #expect(elapsed < 6)  // 1 s budget; a loaded 2-core CI machine adds seconds of scheduling delay
        #expect(blackhole.queriesReceived == 2)  // one per try
    }

    @Test func closedPortIsTemporary() async throws {
        let port = try Dnsmasq.freePort()
        let resolver = try CAresResolver(servers: ["127.0.0.1:\(port)"], timeout: .seconds(5), logger: quietLogger)
        defer { resolver.shutdown() }
        let error = await #expect(throws: DNSError.self) { try await resolver.mx(for: "example.com") }
        #expect(error?.isTemporary == true)
    }

    /// A server that answers with malformed records: a temporary failure, promptly, never
    /// a crash or a permanent "no such domain".
    @Test func garbageAnswersAreTemporary() async throws {
        let server = try StubDNSServer(.garbage)
        defer { server.stop() }
        let resolver = try CAresResolver(servers: [server.server], timeout: .seconds(2), tries: 2, logger: quietLogger)
        defer { resolver.shutdown() }
        for _ in 0..<3 {
            let mx = await #expect(throws: DNSError.self) { try await resolver.mx(for: "example.com") }
            #expect(mx?.isTemporary == true, "\(String(describing: mx))")
            let a = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "mx.example.com") }
            #expect(a?.isTemporary == true, "\(String(describing: a))")
        }
        #expect(server.queriesReceived >= 6)
    }

    @Test func refusedIsTemporary() async throws {
        let server = try StubDNSServer(.refused)
        defer { server.stop() }
        let resolver = try CAresResolver(servers: [server.server], logger: quietLogger)
        defer { resolver.shutdown() }
        let error = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "mx.example.com") }
        #expect(error?.isTemporary == true)
        #expect(error?.description.contains("REFUSED") == true, "\(String(describing: error))")
    }

    @Test func shutdownFailsWaitingQueriesAndDoesNotHang() async throws {
        let blackhole = try StubDNSServer(.silent)
        defer { blackhole.stop() }
        let resolver = try CAresResolver(
            servers: [blackhole.server], timeout: .seconds(30), maxInFlight: 2, logger: quietLogger)
        let tasks = (0..<6).map { index in
            Task { try await resolver.mx(for: "d\(index).example") }
        }
        // Two queries on the wire (unanswered), four waiting for a slot.
        let deadline = ContinuousClock.now + .seconds(10)
        while resolver.statistics.inFlight < 2 || resolver.statistics.waiting < 4, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        try #require(resolver.statistics.inFlight == 2 && resolver.statistics.waiting == 4,
                     "\(resolver.statistics.inFlight) in flight, \(resolver.statistics.waiting) waiting")
        let clock = ContinuousClock()
        let start = clock.now
        resolver.shutdown()
        #expect(seconds(start.duration(to: clock.now)) < 2)
        for task in tasks {
            let error = await #expect(throws: DNSError.self) { try await task.value }
            #expect(error?.isTemporary == true)
        }
        let after = await #expect(throws: DNSError.self) { try await resolver.mx(for: "example.com") }
        #expect(after?.description.contains("shut down") == true)
        resolver.shutdown()  // idempotent
    }

    @Test func deinitStopsTheThread() async throws {
        let server = try StubDNSServer(.refused)
        defer { server.stop() }
        let before = resolverThreads()
        do {
            // The count sees a live resolver's thread.
            let resolver = try CAresResolver(servers: [server.server], logger: quietLogger)
            let error = await #expect(throws: DNSError.self) { try await resolver.addresses(for: "x.example") }
            #expect(error?.isTemporary == true, "the resolver asked the server and was refused")
            #expect(resolverThreads() >= 1)
        }
        for _ in 0..<20 {
            // Each resolver's thread runs a query (refused) before the resolver goes.
            let resolver = try CAresResolver(servers: [server.server], logger: quietLogger)
            await #expect(throws: DNSError.self) { try await resolver.addresses(for: "x.example") }
        }
        // Twenty resolvers came and went; their threads end with them (other tests
        // running at the same time may hold a few of their own).
        let deadline = ContinuousClock.now + .seconds(10)
        while resolverThreads() > before + 3 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(resolverThreads() <= before + 3, "\(resolverThreads()) herald-dns threads, \(before) before")
    }

    /// Threads of this process named "herald-dns" (the resolver thread's name).
    private func resolverThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let name = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
            return name?.trimmingCharacters(in: .whitespacesAndNewlines) == "herald-dns"
        }.count
    }
}
