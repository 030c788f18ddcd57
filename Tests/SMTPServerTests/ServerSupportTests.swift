import NIOCore
import SMTPServer
import Testing

@Suite("IPNetwork")
struct IPNetworkTests {
    @Test(arguments: [
        ("127.0.0.0/8", "127.0.0.1", true),
        ("127.0.0.0/8", "127.255.255.255", true),
        ("127.0.0.0/8", "128.0.0.1", false),
        ("10.0.0.0/8", "10.1.2.3", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("192.168.0.0/23", "192.168.1.255", true),
        ("192.168.0.0/23", "192.168.2.0", false),
        ("192.168.1.77/24", "192.168.1.1", true),
        ("192.0.2.5/32", "192.0.2.5", true),
        ("192.0.2.5/32", "192.0.2.4", false),
        ("192.0.2.5", "192.0.2.5", true),
        ("192.0.2.5", "192.0.2.6", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "::1", false),
        // IPv4-mapped IPv6 clients (dual-stack sockets) match IPv4 networks.
        ("127.0.0.0/8", "::ffff:127.0.0.1", true),
        ("10.0.0.0/8", "::ffff:10.9.8.7", true),
        ("10.0.0.0/8", "::ffff:11.9.8.7", false),
        ("10.0.0.0/8", "::10.1.2.3", false),
        // IPv6.
        ("::1/128", "::1", true),
        ("::1/128", "::2", false),
        ("::1", "::1", true),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("2001:db8::/33", "2001:db8:7fff::1", true),
        ("2001:db8::/33", "2001:db8:8000::1", false),
        ("fe80::/10", "febf::1", true),
        ("fe80::/10", "fec0::1", false),
        ("::/0", "2001:db8::1", true),
        ("::/0", "1.2.3.4", false),
        ("2001:db8::/32", "10.0.0.1", false),
        // Garbage never matches.
        ("0.0.0.0/0", "not an address", false),
        ("0.0.0.0/0", "", false),
        ("0.0.0.0/0", "1.2.3.4/32", false),
        ("::/0", "[::1]", false),
    ])
    func contains(network: String, address: String, expected: Bool) throws {
        let net = try #require(IPNetwork(network))
        #expect(net.contains(address) == expected)
    }

    @Test(arguments: ["", "foo", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/", "1.2.3.4/8/9", "::1/129", "1.2.3/8",
                      "256.0.0.0/8", "1.2.3.4/ 8", "/8"])
    func rejectsMalformedNetworks(text: String) {
        #expect(IPNetwork(text) == nil)
    }

    @Test(arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.0.2.1", "192.0.2.1/32"),
        ("::1", "::1/128"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ])
    func descriptions(text: String, expected: String) throws {
        #expect(try #require(IPNetwork(text)).description == expected)
    }

    @Test func prefixLengths() throws {
        #expect(try #require(IPNetwork("10.0.0.0/8")).prefixLength == 8)
        #expect(try #require(IPNetwork("10.0.0.1")).prefixLength == 32)
        #expect(try #require(IPNetwork("::1")).prefixLength == 128)
        #expect(try #require(IPNetwork("::1")).address.count == 16)
    }
}

@Suite("PasswordHash")
struct PasswordHashTests {
    @Test func makeAndVerify() {
        let hash = PasswordHash.make(password: "correct horse", iterations: 1000)
        #expect(hash.hasPrefix("$pbkdf2-sha256$1000$"))
        #expect(PasswordHash.isWellFormed(hash))
        #expect(PasswordHash.verify(password: "correct horse", against: hash))
        #expect(!PasswordHash.verify(password: "correct horse ", against: hash))
        #expect(!PasswordHash.verify(password: "Correct horse", against: hash))
        #expect(!PasswordHash.verify(password: "", against: hash))
    }

    @Test func saltsDiffer() {
        let a = PasswordHash.make(password: "same", iterations: 1000)
        let b = PasswordHash.make(password: "same", iterations: 1000)
        #expect(a != b)
        #expect(PasswordHash.verify(password: "same", against: a))
        #expect(PasswordHash.verify(password: "same", against: b))
    }

    @Test func unicodeAndEmptyPasswords() {
        let unicode = PasswordHash.make(password: "pässwörd🔑", iterations: 1000)
        #expect(PasswordHash.verify(password: "pässwörd🔑", against: unicode))
        #expect(!PasswordHash.verify(password: "passwords", against: unicode))
        let empty = PasswordHash.make(password: "", iterations: 1000)
        #expect(PasswordHash.verify(password: "", against: empty))
        #expect(!PasswordHash.verify(password: " ", against: empty))
    }

    @Test func knownVector() {
        // PBKDF2-HMAC-SHA256("password", "saltsalt", 1000 iterations); the salt must be
        // ≥ 8 octets. The key was computed independently with Python hashlib.pbkdf2_hmac.
        let salt = "c2FsdHNhbHQ="   // "saltsalt"
        let key = "E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY="
        let hash = "$pbkdf2-sha256$1000$\(salt)$\(key)"
        #expect(PasswordHash.isWellFormed(hash))
        #expect(PasswordHash.verify(password: "password", against: hash))
        #expect(!PasswordHash.verify(password: "passwore", against: hash))
    }

    @Test func tamperedHashFails() {
        let hash = PasswordHash.make(password: "pw", iterations: 1000)
        var parts = hash.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        // Change the iteration count: same password no longer matches.
        parts[2] = "1001"
        #expect(!PasswordHash.verify(password: "pw", against: parts.joined(separator: "$")))
    }

    @Test(arguments: [
        "",
        "plaintext",
        "$pbkdf2-sha1$1000$c2FsdHNhbHQ=$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",
        "$pbkdf2-sha256$999$c2FsdHNhbHQ=$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",
        "$pbkdf2-sha256$abc$c2FsdHNhbHQ=$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",
        "$pbkdf2-sha256$20000000$c2FsdHNhbHQ=$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",
        "$pbkdf2-sha256$1000$!!!$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",
        "$pbkdf2-sha256$1000$c2FsdA==$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",   // 4-octet salt
        "$pbkdf2-sha256$1000$c2FsdHNhbHQ=$c2hvcnQ=",                                    // 5-octet key
        "$pbkdf2-sha256$1000$c2FsdHNhbHQ=",
        "$pbkdf2-sha256$1000$c2FsdHNhbHQ=$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=$extra",
        "$pbkdf2-sha256$$c2FsdHNhbHQ=$E196ZhRPzw+wA84EjzHwJO1cv/MFJdO6C/sxmUeTYqY=",
    ])
    func malformedHashesNeverVerify(hash: String) {
        #expect(!PasswordHash.isWellFormed(hash))
        #expect(!PasswordHash.verify(password: "password", against: hash))
        #expect(!PasswordHash.verify(password: "", against: hash))
    }
}

@Suite("AuthFailureThrottle")
struct AuthFailureThrottleTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test func delaysGrowAndCap() {
        let throttle = AuthFailureThrottle(step: .seconds(1), cap: .seconds(4), window: .minutes(10))
        let delays = (0..<7).map { i in throttle.failed("192.0.2.1", now: t0 + .seconds(Int64(i))) }
        #expect(delays == [.seconds(1), .seconds(2), .seconds(3), .seconds(4), .seconds(4), .seconds(4), .seconds(4)])
        #expect(throttle.failures("192.0.2.1") == 7)
    }

    @Test func clientsAreCountedSeparately() {
        let throttle = AuthFailureThrottle(step: .milliseconds(500), cap: .seconds(10), window: .minutes(10))
        #expect(throttle.failed("192.0.2.1", now: t0) == .milliseconds(500))
        #expect(throttle.failed("192.0.2.1", now: t0) == .seconds(1))
        #expect(throttle.failed("2001:db8::1", now: t0) == .milliseconds(500))
        #expect(throttle.failures("192.0.2.1") == 2)
        #expect(throttle.failures("2001:db8::1") == 1)
        #expect(throttle.failures("198.51.100.1") == 0)
    }

    @Test func successForgetsFailures() {
        let throttle = AuthFailureThrottle(step: .seconds(1), cap: .seconds(10), window: .minutes(10))
        _ = throttle.failed("192.0.2.1", now: t0)
        _ = throttle.failed("192.0.2.1", now: t0)
        throttle.succeeded("192.0.2.1")
        #expect(throttle.failures("192.0.2.1") == 0)
        #expect(throttle.failed("192.0.2.1", now: t0) == .seconds(1))
    }

    @Test func quietWindowResetsTheCount() {
        let throttle = AuthFailureThrottle(step: .seconds(1), cap: .seconds(10), window: .minutes(10))
        _ = throttle.failed("192.0.2.1", now: t0)
        _ = throttle.failed("192.0.2.1", now: t0 + .minutes(1))
        #expect(throttle.failed("192.0.2.1", now: t0 + .minutes(5)) == .seconds(3))
        // Exactly the window since the last failure: still remembered.
        #expect(throttle.failed("192.0.2.1", now: t0 + .minutes(15)) == .seconds(4))
        // More than the window of quiet: forgotten.
        #expect(throttle.failed("192.0.2.1", now: t0 + .minutes(26)) == .seconds(1))
    }
}

@Suite("ConnectionLimiter")
struct ConnectionLimiterTests {
    @Test func perClientLimit() {
        let limiter = ConnectionLimiter(maxTotal: 100, maxPerClient: 2)
        #expect(limiter.acquire("192.0.2.1"))
        #expect(limiter.acquire("192.0.2.1"))
        #expect(!limiter.acquire("192.0.2.1"))
        #expect(limiter.acquire("192.0.2.2"))
        #expect(limiter.current == 3)
        limiter.release("192.0.2.1")
        #expect(limiter.current == 2)
        #expect(limiter.acquire("192.0.2.1"))
        #expect(!limiter.acquire("192.0.2.1"))
    }

    @Test func totalLimit() {
        let limiter = ConnectionLimiter(maxTotal: 3, maxPerClient: 10)
        #expect(limiter.acquire("a"))
        #expect(limiter.acquire("b"))
        #expect(limiter.acquire("c"))
        #expect(!limiter.acquire("d"))
        #expect(!limiter.acquire("a"))
        #expect(limiter.current == 3)
        limiter.release("b")
        #expect(limiter.acquire("d"))
        #expect(!limiter.acquire("e"))
    }

    @Test func refusedAcquireCountsNothing() {
        let limiter = ConnectionLimiter(maxTotal: 1, maxPerClient: 1)
        #expect(limiter.acquire("a"))
        for _ in 0..<10 { #expect(!limiter.acquire("a")) }
        limiter.release("a")
        #expect(limiter.current == 0)
        #expect(limiter.acquire("a"))
    }

    @Test func concurrentAcquireNeverExceedsTheLimit() async {
        let limiter = ConnectionLimiter(maxTotal: 50, maxPerClient: 1000)
        let granted = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<500 {
                group.addTask { limiter.acquire("10.0.0.\(i % 7)") }
            }
            var n = 0
            for await ok in group where ok { n += 1 }
            return n
        }
        #expect(granted == 50)
        #expect(limiter.current == 50)
    }
}
