import CCares
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The production ``MXResolver``: c-ares 1.18 driven by one dedicated thread.
///
/// ## Threading
/// NIO offers no public way to watch a foreign socket, and c-ares calls must not block an
/// event loop or the Swift cooperative pool, so every c-ares call after set-up happens on
/// one resolver `Thread` ("herald-dns"). It loops: take queued questions (up to the
/// in-flight cap) and `ares_query` them, `ares_getsock` + `poll` (with an `eventfd` that
/// callers write to when they queue a question, and `ares_timeout` as the poll time-out),
/// then `ares_process_fd` on the ready sockets and once more for time-outs. c-ares runs
/// its callbacks on that thread; they parse the answer, store it in the cache and resume
/// the waiting tasks' continuations (which then run on their own executors).
///
/// ## Questions, coalescing and the in-flight cap
/// A question is a (name, type) pair. A caller first looks in the cache; on a miss it
/// parks a continuation under the question; if nobody asked it already, the question
/// joins a FIFO. At most `maxInFlight` questions are inside c-ares at once; the others
/// wait in the FIFO, in order. Identical concurrent questions share one query, so a
/// burst of 10,000 messages to one domain costs one MX lookup.
///
/// ## Time-outs
/// `timeout` is the budget of one question over all tries and servers. c-ares 1.18
/// doubles its per-try time-out on every round over the servers, so the per-try value
/// given to c-ares is `timeout / (servers × (2^tries − 1))`.
///
/// ## Cache
/// Answers are cached per question for their TTL, negative answers for the SOA's
/// negative TTL (see ``DNSCachePolicy``). Times come from the injected `Clock`.
public final class CAresResolver: MXResolver {
    private let engine: CAresEngine

    /// - Parameters:
    ///   - servers: name servers as "127.0.0.1", "127.0.0.1:5353", "::1" or "[::1]:53";
    ///     empty means the system's `/etc/resolv.conf`.
    ///   - timeout: how long one question may take in total before it fails temporarily.
    ///   - tries: how many times each server is asked (c-ares `tries`).
    ///   - maxInFlight: questions inside c-ares at once; more wait in a FIFO.
    ///   - cachePolicy: how long answers are kept.
    ///   - clock: the clock the cache's expiry times are measured on (tests inject one).
    public init(
        servers: [String] = [],
        timeout: Duration = .seconds(5),
        tries: Int = 2,
        maxInFlight: Int = 100,
        cachePolicy: DNSCachePolicy = DNSCachePolicy(),
        clock: some Clock<Duration> = ContinuousClock(),
        logger: Logger = Logger(label: "herald.dns")
    ) throws {
        let start = clock.now
        self.engine = try CAresEngine(
            servers: servers, timeout: timeout, tries: tries, maxInFlight: maxInFlight,
            cachePolicy: cachePolicy, now: { start.duration(to: clock.now) }, logger: logger)
        self.engine.start()
    }

    deinit {
        self.engine.shutdown()
    }

    public func mx(for domain: String) async throws -> [MXHost] {
        MXHost.sortedByPreference(try await Resolution.mxHosts(for: domain, source: self.engine))
    }

    public func addresses(for host: String) async throws -> [String] {
        try await Resolution.addresses(for: host, source: self.engine)
    }

    /// Stops the resolver thread and waits for it to exit. Questions still waiting or in
    /// flight fail with a temporary error, later ones too. Idempotent; also run by deinit.
    public func shutdown() {
        self.engine.shutdown()
    }

    /// Forgets every cached answer.
    public func flushCache() {
        self.engine.flushCache()
    }

    /// Counters for tests, metrics and `herald queue stats`.
    public var statistics: DNSResolverStatistics {
        self.engine.statistics
    }
}

/// A snapshot of a ``CAresResolver``'s counters.
public struct DNSResolverStatistics: Hashable, Sendable {
    /// Questions handed to c-ares.
    public var queriesSent = 0
    /// Questions answered from the cache.
    public var cacheHits = 0
    /// Questions that joined an identical one already waiting or in flight.
    public var coalesced = 0
    /// Questions inside c-ares now, and the most there ever were.
    public var inFlight = 0
    public var peakInFlight = 0
    /// Questions waiting for an in-flight slot now, and the most there ever were.
    public var waiting = 0
    public var peakWaiting = 0
    public var cacheEntries = 0

    public init() {}
}

// MARK: - The engine: shared state behind a lock, c-ares state confined to the thread

/// c-ares 1.18 is initialised once per process (a no-op on Linux, required elsewhere).
private let caresLibraryStatus: Int32 = ares_library_init(ARES_LIB_INIT_ALL)

/// What a c-ares callback needs to find its question again.
private final class QueryContext {
    let engine: CAresEngine
    let key: QueryKey

    init(engine: CAresEngine, key: QueryKey) {
        self.engine = engine
        self.key = key
    }
}

/// `@unchecked Sendable`: `shared` is behind a lock; `channel` is touched only by `init`
/// (before the thread starts) and then only by the resolver thread; the rest is immutable.
final class CAresEngine: RecordSource, @unchecked Sendable {
    private struct Shared {
        var cache: DNSCache
        var waiters: [QueryKey: [CheckedContinuation<QueryAnswer, Never>]] = [:]
        var queue = FIFO<QueryKey>()
        var statistics = DNSResolverStatistics()
        var isShutdown = false
        var thread: pthread_t?
    }

    private let shared: NIOLockedValueBox<Shared>
    private let exited = ConditionLock(value: false)
    private let wakeFD: Int32
    private let maxInFlight: Int
    private let now: @Sendable () -> Duration
    private let logger: Logger
    /// Resolver-thread confined once the thread runs.
    private var channel: ares_channel?

    init(
        servers: [String], timeout: Duration, tries: Int, maxInFlight: Int, cachePolicy: DNSCachePolicy,
        now: @escaping @Sendable () -> Duration, logger: Logger
    ) throws {
        guard caresLibraryStatus == ARES_SUCCESS else {
            throw DNSConfigurationError("c-ares: library initialisation failed: \(CAresEngine.message(caresLibraryStatus))")
        }
        let csv = try Self.serverList(servers)
        let serverCount = csv == nil ? Self.systemServerCount() : servers.count
        let tries = min(max(tries, 1), 10)
        let totalMS = max(Int(timeout.components.seconds) * 1000 + Int(timeout.components.attoseconds / 1_000_000_000_000_000), 1)
        let rounds = max(serverCount, 1) * ((1 << tries) - 1)
        var options = ares_options()
        options.timeout = Int32(max(totalMS / rounds, 10))
        options.tries = Int32(tries)
        var optionMask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES
        if serverCount == 1 {
            // With several servers, c-ares moves on to the next one after a SERVFAIL or
            // REFUSED, and reports a vague error when all have failed. With one server
            // there is nothing to move on to: let the response through so that the
            // reason says "SERVFAIL" or "REFUSED".
            options.flags = ARES_FLAG_NOCHECKRESP
            optionMask |= ARES_OPT_FLAGS
        }
        var channel: ares_channel?
        var status = ares_init_options(&channel, &options, optionMask)
        guard status == ARES_SUCCESS, let channel else {
            throw DNSConfigurationError("c-ares: initialisation failed: \(Self.message(status))")
        }
        if let csv {
            status = ares_set_servers_ports_csv(channel, csv)
            guard status == ARES_SUCCESS else {
                ares_destroy(channel)
                throw DNSConfigurationError("c-ares: cannot use DNS servers \(csv): \(Self.message(status))")
            }
        }
        let fd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard fd >= 0 else {
            ares_destroy(channel)
            throw DNSConfigurationError("eventfd failed: errno \(errno)")
        }
        self.channel = channel
        self.wakeFD = fd
        self.maxInFlight = max(maxInFlight, 1)
        self.now = now
        self.logger = logger
        self.shared = NIOLockedValueBox(Shared(cache: DNSCache(policy: cachePolicy)))
        logger.debug(
            "DNS resolver started",
            metadata: [
                "servers": "\(csv ?? "resolv.conf")", "per-try-timeout-ms": "\(options.timeout)", "tries": "\(tries)",
                "max-in-flight": "\(self.maxInFlight)",
            ])
    }

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "herald-dns"
        thread.start()
    }

    // MARK: callers' side (any thread)

    func answer(_ key: QueryKey) async -> QueryAnswer {
        let now = self.now()
        let hit = self.shared.withLockedValue { shared -> QueryAnswer? in
            let hit = shared.cache.lookup(key, now: now)
            if hit != nil { shared.statistics.cacheHits += 1 }
            return hit
        }
        if let hit {
            return hit
        }
        return await withCheckedContinuation { continuation in
            let immediate = self.shared.withLockedValue { shared -> QueryAnswer? in
                if shared.isShutdown {
                    return .temporary("resolver is shut down")
                }
                if let hit = shared.cache.lookup(key, now: now) {  // answered meanwhile
                    shared.statistics.cacheHits += 1
                    return hit
                }
                if shared.waiters[key] != nil {
                    shared.waiters[key]!.append(continuation)
                    shared.statistics.coalesced += 1
                    return nil
                }
                shared.waiters[key] = [continuation]
                shared.queue.append(key)
                shared.statistics.peakWaiting = max(shared.statistics.peakWaiting, shared.queue.count)
                self.wake()  // under the lock: the thread closes wakeFD only after isShutdown
                return nil
            }
            if let immediate {
                continuation.resume(returning: immediate)
            }
        }
    }

    func shutdown() {
        let isResolverThread = self.shared.withLockedValue { shared -> Bool in
            if !shared.isShutdown {
                shared.isShutdown = true
                self.wake()
            }
            guard let thread = shared.thread else { return false }
            return pthread_equal(thread, pthread_self()) != 0
        }
        if isResolverThread {
            return  // cannot wait for ourselves; the loop ends after this callback
        }
        self.exited.lock(whenValue: true)
        self.exited.unlock()
    }

    func flushCache() {
        self.shared.withLockedValue { $0.cache.removeAll() }
    }

    var statistics: DNSResolverStatistics {
        self.shared.withLockedValue { shared in
            var statistics = shared.statistics
            statistics.waiting = shared.queue.count
            statistics.cacheEntries = shared.cache.count
            return statistics
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(self.wakeFD, &one, MemoryLayout<UInt64>.size)
    }

    // MARK: the resolver thread

    private func run() {
        self.shared.withLockedValue { $0.thread = pthread_self() }
        // Foundation does not pass `Thread.name` to the kernel on Linux (and Swift cannot
        // see pthread_setname_np): name the thread for `top -H`, `ps -L` and
        // /proc/<pid>/task/*/comm by writing its comm file.
        let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        if comm >= 0 {
            _ = write(comm, "herald-dns", 10)
            close(comm)
        }
        let channel = self.channel!
        let socketLimit = Int(ARES_GETSOCK_MAXNUM)
        var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: socketLimit)
        var fds: [pollfd] = []
        fds.reserveCapacity(socketLimit + 1)

        while true {
            let (work, stop) = self.shared.withLockedValue { shared -> ([QueryKey], Bool) in
                if shared.isShutdown {
                    return ([], true)
                }
                var work: [QueryKey] = []
                while shared.statistics.inFlight < self.maxInFlight, let key = shared.queue.popFirst() {
                    shared.statistics.inFlight += 1
                    work.append(key)
                }
                shared.statistics.queriesSent += work.count
                shared.statistics.peakInFlight = max(shared.statistics.peakInFlight, shared.statistics.inFlight)
                return (work, false)
            }
            if stop {
                break
            }
            for key in work {
                self.send(key, on: channel)
            }

            let mask = UInt32(bitPattern: ares_getsock(channel, &sockets, Int32(socketLimit)))
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: self.wakeFD, events: Int16(POLLIN), revents: 0))
            for index in 0..<socketLimit {
                var events: Int16 = 0
                if mask & (1 << UInt32(index)) != 0 { events |= Int16(POLLIN) }
                if mask & (1 << UInt32(index + socketLimit)) != 0 { events |= Int16(POLLOUT) }
                if events != 0 {
                    fds.append(pollfd(fd: sockets[index], events: events, revents: 0))
                }
            }
            var timeval = timeval()
            let timeoutMS: Int32
            if let next = ares_timeout(channel, nil, &timeval) {
                let ms = Int(next.pointee.tv_sec) * 1000 + (Int(next.pointee.tv_usec) + 999) / 1000
                timeoutMS = Int32(min(max(ms, 0), Int(Int32.max)))
            } else {
                timeoutMS = -1  // nothing in flight: sleep until woken
            }

            let ready = poll(&fds, nfds_t(fds.count), timeoutMS)
            if ready < 0, errno != EINTR {
                self.logger.error("DNS resolver: poll failed", metadata: ["errno": "\(errno)"])
            }
            if fds[0].revents != 0 {
                var counter: UInt64 = 0
                _ = read(self.wakeFD, &counter, MemoryLayout<UInt64>.size)
            }
            let readMask = Int16(POLLIN) | Int16(POLLERR) | Int16(POLLHUP)
            let writeMask = Int16(POLLOUT) | Int16(POLLERR) | Int16(POLLHUP)
            for entry in fds.dropFirst() where entry.revents != 0 {
                ares_process_fd(
                    channel,
                    entry.revents & readMask != 0 && entry.events & Int16(POLLIN) != 0 ? entry.fd : ARES_SOCKET_BAD,
                    entry.revents & writeMask != 0 && entry.events & Int16(POLLOUT) != 0 ? entry.fd : ARES_SOCKET_BAD)
            }
            // Time-outs and retries.
            ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)
        }

        // Shutting down: c-ares calls back every query with ARES_ECANCELLED, then the
        // questions still queued fail too.
        ares_cancel(channel)
        let leftovers = self.shared.withLockedValue { shared -> [CheckedContinuation<QueryAnswer, Never>] in
            let all = shared.waiters.values.flatMap { $0 }
            shared.waiters.removeAll()
            shared.queue = FIFO()
            return all
        }
        for continuation in leftovers {
            continuation.resume(returning: .temporary("resolver is shut down"))
        }
        ares_destroy(channel)
        self.channel = nil
        close(self.wakeFD)
        self.logger.debug("DNS resolver stopped")
        self.exited.lock()
        self.exited.unlock(withValue: true)
    }

    private func send(_ key: QueryKey, on channel: ares_channel) {
        let context = Unmanaged.passRetained(QueryContext(engine: self, key: key)).toOpaque()
        let type: Int32
        switch key.type {
        case .mx: type = Int32(ns_t_mx.rawValue)
        case .a: type = Int32(ns_t_a.rawValue)
        case .aaaa: type = Int32(ns_t_aaaa.rawValue)
        }
        ares_query(channel, key.name, Int32(ns_c_in.rawValue), type, { argument, status, timeouts, buffer, length in
            let context = Unmanaged<QueryContext>.fromOpaque(argument!).takeRetainedValue()
            let bytes = buffer.map { UnsafeRawBufferPointer(start: $0, count: Int(max(length, 0))) }
            context.engine.completed(context.key, status: status, timeouts: Int(timeouts), response: bytes)
        }, context)
    }

    /// A c-ares callback, on the resolver thread.
    private func completed(_ key: QueryKey, status: Int32, timeouts: Int, response: UnsafeRawBufferPointer?) {
        let (answer, ttl) = Self.interpret(key, status: status, response: response)
        let cancelled = status == ARES_ECANCELLED || status == ARES_EDESTRUCTION
        let now = self.now()
        let waiters = self.shared.withLockedValue { shared -> [CheckedContinuation<QueryAnswer, Never>] in
            shared.statistics.inFlight -= 1
            if !cancelled {
                shared.cache.insert(key, answer, ttl: ttl, now: now)
            }
            return shared.waiters.removeValue(forKey: key) ?? []
        }
        self.logger.debug(
            "DNS answer",
            metadata: [
                "question": "\(key)", "answer": "\(answer)", "ttl": "\(ttl.map { "\($0)" } ?? "-")",
                "timeouts": "\(timeouts)",
            ])
        for continuation in waiters {
            continuation.resume(returning: answer)
        }
    }

    // MARK: answers

    /// The answer to `key` and its TTL from a c-ares status and raw response.
    static func interpret(_ key: QueryKey, status: Int32, response: UnsafeRawBufferPointer?) -> (QueryAnswer, Duration?) {
        let summary = response.flatMap { DNSMessageSummary($0) }
        let negativeTTL = summary?.negativeTTL.map { Duration.seconds(Int64($0)) }
        switch status {
        case ARES_SUCCESS:
            guard let response, let base = response.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
                return (.temporary("empty response"), nil)
            }
            let length = Int32(response.count)
            let parsed: (QueryAnswer, Duration?)
            switch key.type {
            case .mx: parsed = self.parseMX(base, length, summary: summary)
            case .a: parsed = self.parseA(base, length)
            case .aaaa: parsed = self.parseAAAA(base, length)
            }
            if case .noData = parsed.0 {
                return (.noData, negativeTTL)
            }
            return parsed
        case ARES_ENODATA:
            return (.noData, negativeTTL)
        case ARES_ENOTFOUND:
            return (.noSuchDomain, negativeTTL)
        case ARES_EBADNAME:
            return (.invalidName, nil)
        case ARES_ESERVFAIL:
            return (.temporary("SERVFAIL"), nil)
        case ARES_EREFUSED:
            return (.temporary("REFUSED"), nil)
        case ARES_EFORMERR:
            return (.temporary("FORMERR"), nil)
        case ARES_ENOTIMP:
            return (.temporary("NOTIMP"), nil)
        case ARES_ETIMEOUT:
            return (.temporary("timed out"), nil)
        case ARES_ECONNREFUSED:
            return (.temporary("connection refused by the DNS server"), nil)
        case ARES_ECANCELLED, ARES_EDESTRUCTION:
            return (.temporary("resolver is shut down"), nil)
        default:
            return (.temporary(self.message(status)), nil)
        }
    }

    private static func parseMX(_ buffer: UnsafePointer<UInt8>, _ length: Int32, summary: DNSMessageSummary?) -> (
        QueryAnswer, Duration?
    ) {
        var list: UnsafeMutablePointer<ares_mx_reply>?
        let status = ares_parse_mx_reply(buffer, length, &list)
        defer { if list != nil { ares_free_data(list) } }
        guard status == ARES_SUCCESS else {
            return status == ARES_ENODATA ? (.noData, nil) : (.temporary("bad MX response: \(self.message(status))"), nil)
        }
        var hosts: [MXHost] = []
        var node = list
        while let current = node {
            let name = current.pointee.host.map { String(cString: $0) } ?? ""
            hosts.append(MXHost(name: DNSName.normalized(name), preference: Int(current.pointee.priority)))
            node = current.pointee.next
        }
        guard !hosts.isEmpty else { return (.noData, nil) }
        let ttl = summary?.answerTTL(type: UInt16(ns_t_mx.rawValue)).map { Duration.seconds(Int64($0)) }
        return (.mx(hosts), ttl ?? .zero)
    }

    private static let addressLimit = 64

    private static func parseA(_ buffer: UnsafePointer<UInt8>, _ length: Int32) -> (QueryAnswer, Duration?) {
        var records = [ares_addrttl](repeating: ares_addrttl(), count: self.addressLimit)
        var count = Int32(self.addressLimit)
        let status = ares_parse_a_reply(buffer, length, nil, &records, &count)
        guard status == ARES_SUCCESS else {
            return status == ARES_ENODATA ? (.noData, nil) : (.temporary("bad A response: \(self.message(status))"), nil)
        }
        let used = records.prefix(Int(max(count, 0)))
        guard !used.isEmpty else { return (.noData, nil) }
        let addresses = used.map { IPAddressText.string($0.ipaddr) }
        let ttl = used.map { max($0.ttl, 0) }.min() ?? 0
        return (.addresses(addresses), .seconds(Int64(ttl)))
    }

    private static func parseAAAA(_ buffer: UnsafePointer<UInt8>, _ length: Int32) -> (QueryAnswer, Duration?) {
        var records = [ares_addr6ttl](repeating: ares_addr6ttl(), count: self.addressLimit)
        var count = Int32(self.addressLimit)
        let status = ares_parse_aaaa_reply(buffer, length, nil, &records, &count)
        guard status == ARES_SUCCESS else {
            return status == ARES_ENODATA ? (.noData, nil) : (.temporary("bad AAAA response: \(self.message(status))"), nil)
        }
        let used = records.prefix(Int(max(count, 0)))
        guard !used.isEmpty else { return (.noData, nil) }
        let addresses = used.map { record in
            withUnsafeBytes(of: record.ip6addr) { IPAddressText.stringIPv6(bytes: $0) }
        }
        let ttl = used.map { max($0.ttl, 0) }.min() ?? 0
        return (.addresses(addresses), .seconds(Int64(ttl)))
    }

    static func message(_ status: Int32) -> String {
        String(cString: ares_strerror(status))
    }

    // MARK: configuration

    /// The servers as c-ares' "host:port,[v6]:port" list, or nil for resolv.conf.
    static func serverList(_ servers: [String]) throws -> String? {
        guard !servers.isEmpty else { return nil }
        return try servers.map { try self.serverEntry($0) }.joined(separator: ",")
    }

    /// One server in c-ares' syntax: "192.0.2.1", "192.0.2.1:5353", "[2001:db8::1]:53".
    static func serverEntry(_ text: String) throws -> String {
        let entry = text.trimmingWhitespace()
        var host = entry
        var port: String?
        if entry.hasPrefix("[") {
            guard let close = entry.firstIndex(of: "]") else {
                throw DNSConfigurationError("DNS server \"\(text)\": missing ']'")
            }
            host = String(entry[entry.index(after: entry.startIndex)..<close])
            let rest = entry[entry.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw DNSConfigurationError("DNS server \"\(text)\": expected ':port'") }
                port = String(rest.dropFirst())
            }
        } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
            host = String(entry[..<colon])
            port = String(entry[entry.index(after: colon)...])
        }
        if let port {
            guard let number = Int(port), (1...65535).contains(number) else {
                throw DNSConfigurationError("DNS server \"\(text)\": bad port \"\(port)\"")
            }
        }
        if IPAddressText.isIPv4(host) {
            return port.map { "\(host):\($0)" } ?? host
        }
        if IPAddressText.isIPv6(host) {
            return "[\(host)]" + (port.map { ":\($0)" } ?? "")
        }
        throw DNSConfigurationError("DNS server \"\(text)\" is not an IP address (with an optional port)")
    }

    /// How many servers c-ares finds in the system configuration (at least 1).
    static func systemServerCount() -> Int {
        var probe: ares_channel?
        guard ares_init(&probe) == ARES_SUCCESS, let probe else { return 1 }
        defer { ares_destroy(probe) }
        var list: UnsafeMutablePointer<ares_addr_node>?
        guard ares_get_servers(probe, &list) == ARES_SUCCESS else { return 1 }
        defer { if list != nil { ares_free_data(list) } }
        var count = 0
        var node = list
        while let current = node {
            count += 1
            node = current.pointee.next
        }
        return max(count, 1)
    }
}

/// A first-in first-out queue: an array and a read index, compacted now and then.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    var count: Int { self.items.count - self.head }
    var isEmpty: Bool { self.count == 0 }

    mutating func append(_ element: Element) {
        self.items.append(element)
    }

    mutating func popFirst() -> Element? {
        guard self.head < self.items.count else { return nil }
        let element = self.items[self.head]
        self.head += 1
        if self.head == self.items.count {
            self.items.removeAll(keepingCapacity: true)
            self.head = 0
        } else if self.head >= 1024, self.head * 2 >= self.items.count {
            self.items.removeFirst(self.head)
            self.head = 0
        }
        return element
    }
}
