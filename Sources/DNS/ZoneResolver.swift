import NIOConcurrencyHelpers

/// An ``MXResolver`` answering from a zone written in the test, for unit tests of the
/// modules that resolve mail exchangers. It applies the same policy as ``CAresResolver``
/// (implicit MX, null MX, error mapping), only the questions are answered from memory.
///
/// The zone text is a small subset of RFC 1035 master files, one record per line:
/// ```
/// $ORIGIN example.com.
/// @            300 MX 10 mx1               ; relative names get the origin
/// @            300 MX 20 mx2.other.test.   ; absolute names end with a dot
/// mx1          300 A    127.0.0.1
///              300 AAAA ::1                ; no owner: same as the line above
/// null.test.   300 MX 0 .                  ; null MX (RFC 7505)
/// nomx.test.   300 TXT "exists, no MX and no address"
/// servfail.test. SERVFAIL                  ; every question fails temporarily
/// slow.test.     TIMEOUT                   ; same, reported as a time-out (no waiting)
/// ```
/// TTL and class `IN` are optional and ignored; `$TTL` is accepted. Types: MX, A, AAAA,
/// TXT (content ignored: it makes a name exist) and the pseudo-types SERVFAIL and
/// TIMEOUT, which also apply to every name under the one given. A name without records
/// but with records below it exists (NODATA); any other name is NXDOMAIN.
public struct ZoneResolver: MXResolver {
    private let zone: Zone
    private let generator: NIOLockedValueBox<SeededRandomNumberGenerator>?

    /// - Parameter seed: makes the shuffle among equal MX preferences reproducible;
    ///   nil uses the system's random numbers.
    public init(zone: String, seed: UInt64? = nil) throws {
        self.zone = try Zone(parsing: zone)
        self.generator = seed.map { NIOLockedValueBox(SeededRandomNumberGenerator(seed: $0)) }
    }

    public func mx(for domain: String) async throws -> [MXHost] {
        let hosts = try await Resolution.mxHosts(for: domain, source: self.zone)
        if let generator = self.generator {
            return generator.withLockedValue { MXHost.sortedByPreference(hosts, using: &$0) }
        }
        return MXHost.sortedByPreference(hosts)
    }

    public func addresses(for host: String) async throws -> [String] {
        try await Resolution.addresses(for: host, source: self.zone)
    }
}

/// A syntax error in a ``ZoneResolver`` zone, with its line number.
public struct ZoneParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String

    public var description: String { "zone line \(self.line): \(self.message)" }
}

/// The parsed zone: records by owner name.
struct Zone: RecordSource {
    enum Failure: Hashable, Sendable {
        case servfail, timeout
    }

    struct Node: Hashable, Sendable {
        var mx: [MXHost] = []
        var a: [String] = []
        var aaaa: [String] = []
    }

    private(set) var nodes: [String: Node] = [:]
    private(set) var failures: [String: Failure] = [:]
    /// Every name that has records, and all their ancestors (empty non-terminals exist).
    private(set) var existing: Set<String> = []

    init(parsing text: String) throws {
        var origin = ""
        var previousOwner: String?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = Self.stripComment(String(rawLine))
            var tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard !tokens.isEmpty else { continue }
            func fail(_ message: String) -> ZoneParseError { ZoneParseError(line: lineNumber, message: message) }

            if tokens[0].uppercased() == "$ORIGIN" {
                guard tokens.count == 2, tokens[1].hasSuffix(".") else { throw fail("$ORIGIN needs one absolute name") }
                origin = DNSName.normalized(tokens[1])
                continue
            }
            if tokens[0].uppercased() == "$TTL" {
                continue
            }

            let owner: String
            if line.first == " " || line.first == "\t" {
                guard let previousOwner else { throw fail("a record without owner needs a previous line") }
                owner = previousOwner
            } else {
                owner = Self.absolute(tokens.removeFirst(), origin: origin)
            }
            previousOwner = owner
            if let first = tokens.first, first.allSatisfy(\.isNumber) { tokens.removeFirst() }  // TTL
            if let first = tokens.first, first.uppercased() == "IN" { tokens.removeFirst() }
            guard !tokens.isEmpty else { throw fail("missing record type") }
            let type = tokens.removeFirst().uppercased()
            switch type {
            case "MX":
                guard tokens.count == 2, let preference = Int(tokens[0]), (0...65535).contains(preference) else {
                    throw fail("MX needs a preference (0-65535) and a host")
                }
                let host = tokens[1] == "." ? "" : Self.absolute(tokens[1], origin: origin)
                self.nodes[owner, default: Node()].mx.append(MXHost(name: host, preference: preference))
            case "A":
                guard tokens.count == 1, IPAddressText.isIPv4(tokens[0]) else { throw fail("A needs one IPv4 address") }
                self.nodes[owner, default: Node()].a.append(IPAddressText.canonical(tokens[0])!)
            case "AAAA":
                guard tokens.count == 1, IPAddressText.isIPv6(tokens[0]) else { throw fail("AAAA needs one IPv6 address") }
                self.nodes[owner, default: Node()].aaaa.append(IPAddressText.canonical(tokens[0])!)
            case "TXT":
                self.nodes[owner] = self.nodes[owner] ?? Node()
            case "SERVFAIL":
                self.failures[owner] = .servfail
            case "TIMEOUT":
                self.failures[owner] = .timeout
            default:
                throw fail("unsupported record type \(type) (use MX, A, AAAA, TXT, SERVFAIL or TIMEOUT)")
            }
        }
        for name in self.nodes.keys {
            var labels = name.split(separator: ".").map(String.init)
            while !labels.isEmpty {
                self.existing.insert(labels.joined(separator: "."))
                labels.removeFirst()
            }
        }
    }

    func answer(_ key: QueryKey) async -> QueryAnswer {
        self.lookup(key)
    }

    func lookup(_ key: QueryKey) -> QueryAnswer {
        let name = DNSName.normalized(key.name)
        if let failure = self.failure(for: name) {
            switch failure {
            case .servfail: return .temporary("SERVFAIL")
            case .timeout: return .temporary("timed out")
            }
        }
        guard let node = self.nodes[name] else {
            return self.existing.contains(name) ? .noData : .noSuchDomain
        }
        switch key.type {
        case .mx: return node.mx.isEmpty ? .noData : .mx(node.mx)
        case .a: return node.a.isEmpty ? .noData : .addresses(node.a)
        case .aaaa: return node.aaaa.isEmpty ? .noData : .addresses(node.aaaa)
        }
    }

    /// A SERVFAIL/TIMEOUT pseudo-record on the name or one of its ancestors.
    private func failure(for name: String) -> Failure? {
        var labels = name.split(separator: ".")[...]
        while !labels.isEmpty {
            if let failure = self.failures[labels.joined(separator: ".")] {
                return failure
            }
            labels = labels.dropFirst()
        }
        return nil
    }

    private static func absolute(_ name: String, origin: String) -> String {
        if name == "@" {
            return origin
        }
        if name.hasSuffix(".") {
            return DNSName.normalized(name)
        }
        return DNSName.normalized(origin.isEmpty ? name : "\(name).\(origin)")
    }

    /// The line without a `;` comment (a `;` inside double quotes is kept).
    private static func stripComment(_ line: String) -> String {
        var quoted = false
        var result = ""
        for character in line {
            if character == "\"" { quoted.toggle() }
            if character == ";", !quoted { break }
            result.append(character)
        }
        return result
    }
}
