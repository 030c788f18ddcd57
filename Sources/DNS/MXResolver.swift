#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds where mail for a domain goes. `CAresResolver` serves production, `ZoneResolver`
/// unit tests; both share the policy below (implicit MX, null MX, error mapping), so the
/// fake behaves like the real thing.
public protocol MXResolver: Sendable {
    /// MX hosts for `domain`, sorted by preference, equal preferences shuffled.
    ///
    /// - No MX records but the domain exists with A/AAAA: the implicit MX
    ///   `[MXHost(name: domain, preference: 0)]` (RFC 5321 §5.1).
    /// - Null MX ("0 ."): throws ``DNSError/nullMX(_:)``.
    /// - NXDOMAIN: throws ``DNSError/noSuchDomain(_:reason:)``.
    /// - The domain exists without MX, A or AAAA: throws ``DNSError/noMailExchanger(_:)``
    ///   (permanent, `5.1.2`).
    /// - SERVFAIL, REFUSED, time-outs, network errors: a temporary ``DNSError``.
    /// - An address literal such as `[192.0.2.1]` or `[IPv6:2001:db8::1]` is returned as
    ///   its own single host (no DNS lookup); ``addresses(for:)`` understands it.
    ///
    /// Names are ASCII (A-labels): convert an internationalised domain to punycode first.
    func mx(for domain: String) async throws -> [MXHost]

    /// IPv4 then IPv6 addresses (as text) of a host. NXDOMAIN or no A/AAAA records:
    /// ``DNSError/noAddress(_:reason:)``; SERVFAIL, time-outs: temporary. An IP address
    /// (bare or as an SMTP address literal) is returned as is, and `localhost` is
    /// `["127.0.0.1", "::1"]` (RFC 6761) without a query.
    func addresses(for host: String) async throws -> [String]
}

// MARK: - Internal model shared by the resolvers

/// The record types Herald asks for.
enum RecordType: Hashable, Sendable, CustomStringConvertible {
    case mx, a, aaaa

    var description: String {
        switch self {
        case .mx: return "MX"
        case .a: return "A"
        case .aaaa: return "AAAA"
        }
    }
}

/// One question: a normalized name and a type.
struct QueryKey: Hashable, Sendable, CustomStringConvertible {
    var name: String
    var type: RecordType

    var description: String { "\(self.name)/\(self.type)" }
}

/// The outcome of one question, before any policy (implicit MX, null MX) is applied.
/// This is what the cache stores.
enum QueryAnswer: Hashable, Sendable {
    /// MX records as found (unsorted, may contain a null target).
    case mx([MXHost])
    /// A or AAAA addresses as text, in answer order.
    case addresses([String])
    /// NXDOMAIN.
    case noSuchDomain
    /// NOERROR without records of the asked type (NODATA).
    case noData
    /// The name is not a valid domain name (c-ares EBADNAME).
    case invalidName
    /// SERVFAIL, time-out, refused, network error: the reason in a few words.
    case temporary(String)
}

/// Something that answers single questions: c-ares, or a zone in memory.
protocol RecordSource: Sendable {
    func answer(_ key: QueryKey) async -> QueryAnswer
}

// MARK: - Names

enum DNSName {
    /// Lower-case (ASCII), surrounding white space and one trailing dot removed.
    static func normalized(_ name: String) -> String {
        var result = name.trimmingWhitespace().lowercased()
        if result.hasSuffix("."), result != "." {
            result.removeLast()
        }
        return result
    }

    /// The normalized name, or nil when it cannot be a domain name (empty, too long,
    /// an empty or over-long label).
    static func validated(_ name: String) -> String? {
        let result = self.normalized(name)
        guard !result.isEmpty, result != ".", result.utf8.count <= 253 else { return nil }
        for label in result.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63 else { return nil }
        }
        return result
    }

    /// The IP address inside `text` if it is an IP address: bare ("192.0.2.1", "::1"),
    /// bracketed ("[::1]") or an SMTP address literal ("[192.0.2.1]", "[IPv6:::1]").
    static func ipLiteral(_ text: String) -> String? {
        var inner = text.trimmingWhitespace()
        if inner.hasPrefix("["), inner.hasSuffix("]") {
            inner = String(inner.dropFirst().dropLast())
            if inner.lowercased().hasPrefix("ipv6:") {
                inner = String(inner.dropFirst(5))
            }
        }
        return IPAddressText.canonical(inner)
    }

    /// True for an SMTP address literal such as "[192.0.2.1]".
    static func isAddressLiteral(_ text: String) -> Bool {
        let trimmed = text.trimmingWhitespace()
        return trimmed.hasPrefix("[") && self.ipLiteral(trimmed) != nil
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = self.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}

/// Text <-> binary IP addresses through `inet_pton` / `inet_ntop`.
enum IPAddressText {
    /// The canonical text of an IPv4 or IPv6 address, or nil if `text` is not one.
    static func canonical(_ text: String) -> String? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return self.string(v4)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return self.string(v6)
        }
        return nil
    }

    static func isIPv4(_ text: String) -> Bool {
        var v4 = in_addr()
        return inet_pton(AF_INET, text, &v4) == 1
    }

    static func isIPv6(_ text: String) -> Bool {
        var v6 = in6_addr()
        return inet_pton(AF_INET6, text, &v6) == 1
    }

    static func string(_ address: in_addr) -> String {
        var address = address
        return self.format(family: AF_INET, &address, capacity: Int(INET_ADDRSTRLEN))
    }

    static func string(_ address: in6_addr) -> String {
        var address = address
        return self.format(family: AF_INET6, &address, capacity: Int(INET6_ADDRSTRLEN))
    }

    /// Formats 16 raw bytes of an IPv6 address.
    static func stringIPv6(bytes: UnsafeRawBufferPointer) -> String {
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix(16))) }
        return self.string(address)
    }

    private static func format(family: Int32, _ address: UnsafeRawPointer, capacity: Int) -> String {
        var buffer = [CChar](repeating: 0, count: capacity + 1)
        guard inet_ntop(family, address, &buffer, socklen_t(capacity)) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

// MARK: - The policy: implicit MX, null MX, error mapping

enum Resolution {
    /// MX hosts of `domain`, unsorted (the caller sorts with its own generator).
    static func mxHosts(for domain: String, source: some RecordSource) async throws -> [MXHost] {
        if DNSName.isAddressLiteral(domain) {
            return [MXHost(name: domain.trimmingWhitespace(), preference: 0)]
        }
        guard let name = DNSName.validated(domain) else {
            throw DNSError.noSuchDomain(DNSName.normalized(domain), reason: "not a valid domain name")
        }
        switch await source.answer(QueryKey(name: name, type: .mx)) {
        case .mx(let hosts) where !hosts.isEmpty:
            if isNullMX(hosts) {
                throw DNSError.nullMX(name)
            }
            return hosts.filter { !$0.isNullTarget }
        case .mx, .noData, .addresses:
            return try await self.implicitMX(for: name, source: source)
        case .noSuchDomain:
            throw DNSError.noSuchDomain(name)
        case .invalidName:
            throw DNSError.noSuchDomain(name, reason: "not a valid domain name")
        case .temporary(let reason):
            throw DNSError.temporary("MX lookup: \(reason)", name: name)
        }
    }

    /// RFC 5321 §5.1: without MX records, the domain itself is the mail exchanger if it
    /// has an address.
    private static func implicitMX(for name: String, source: some RecordSource) async throws -> [MXHost] {
        async let v4 = source.answer(QueryKey(name: name, type: .a))
        async let v6 = source.answer(QueryKey(name: name, type: .aaaa))
        let answers = await [v4, v6]
        if answers.contains(where: { if case .addresses(let list) = $0 { return !list.isEmpty } else { return false } }) {
            return [MXHost(name: name, preference: 0)]
        }
        for answer in answers {
            if case .temporary(let reason) = answer {
                throw DNSError.temporary("address lookup for implicit MX: \(reason)", name: name)
            }
        }
        if answers.contains(.noSuchDomain) {
            // The name vanished between the MX and the A query.
            throw DNSError.noSuchDomain(name)
        }
        throw DNSError.noMailExchanger(name)
    }

    /// IPv4 then IPv6 addresses of `host`.
    static func addresses(for host: String, source: some RecordSource) async throws -> [String] {
        if let literal = DNSName.ipLiteral(host) {
            return [literal]
        }
        guard let name = DNSName.validated(host) else {
            throw DNSError.noAddress(DNSName.normalized(host), reason: "not a valid host name")
        }
        if name == "localhost" {
            return ["127.0.0.1", "::1"]
        }
        async let v4 = source.answer(QueryKey(name: name, type: .a))
        async let v6 = source.answer(QueryKey(name: name, type: .aaaa))
        let answers = await [v4, v6]
        var result: [String] = []
        for answer in answers {
            if case .addresses(let list) = answer {
                result += list
            }
        }
        if !result.isEmpty {
            // One family may have failed temporarily; the other is enough to try.
            return result
        }
        for answer in answers {
            if case .temporary(let reason) = answer {
                throw DNSError.temporary("address lookup: \(reason)", name: name)
            }
        }
        if answers.contains(.noSuchDomain) {
            throw DNSError.noAddress(name, reason: "NXDOMAIN")
        }
        if answers.contains(.invalidName) {
            throw DNSError.noAddress(name, reason: "not a valid host name")
        }
        throw DNSError.noAddress(name)
    }
}
