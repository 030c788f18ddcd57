/// One mail exchanger of a domain: a host name and its MX preference (lower is tried first).
///
/// Names are lower-cased and carry no trailing dot. An empty `name` is the root name ".",
/// which only appears in a null MX record (RFC 7505); resolvers never return such a host,
/// they throw ``DNSError/nullMX(_:)`` instead.
public struct MXHost: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var preference: Int

    public init(name: String, preference: Int) {
        self.name = name
        self.preference = preference
    }

    public var description: String { "\(self.preference) \(self.name.isEmpty ? "." : self.name)" }

    /// True for the root target "." of a null MX record.
    public var isNullTarget: Bool { self.name.isEmpty || self.name == "." }
}

// MARK: - Pure helpers (no DNS), shared by every resolver and tested on their own.

extension MXHost {
    /// `hosts` ordered by ascending preference, each group of equal preference shuffled
    /// with `generator` (RFC 5321 §5.1: "randomize them to spread the load").
    public static func sortedByPreference<G: RandomNumberGenerator>(
        _ hosts: [MXHost], using generator: inout G
    ) -> [MXHost] {
        // Group explicitly rather than shuffle-then-stable-sort, so the result does not
        // depend on the stability of the standard library's sort.
        let groups = Dictionary(grouping: hosts, by: \.preference)
        var result: [MXHost] = []
        result.reserveCapacity(hosts.count)
        for preference in groups.keys.sorted() {
            result += groups[preference]!.shuffled(using: &generator)
        }
        return result
    }

    /// ``sortedByPreference(_:using:)`` with the system's random number generator.
    public static func sortedByPreference(_ hosts: [MXHost]) -> [MXHost] {
        var generator = SystemRandomNumberGenerator()
        return self.sortedByPreference(hosts, using: &generator)
    }
}

/// True when an MX answer is a null MX (RFC 7505 §3: a single record "0 ." saying the
/// domain accepts no mail). Several records that all target "." count as null MX too;
/// a "." mixed with real exchangers is a misconfiguration that resolvers ignore (they
/// drop the "." entry and use the others), as delivering is then still possible.
public func isNullMX(_ hosts: [MXHost]) -> Bool {
    !hosts.isEmpty && hosts.allSatisfy(\.isNullTarget)
}

/// The MX "site" of a domain: its mail exchangers' names, lower-cased, without trailing
/// dots, deduplicated, sorted and joined by commas, e.g. `"mx1.example.net,mx2.example.net"`.
/// Domains hosted by the same exchangers share one site, and so one throttling bucket.
/// Null targets are left out; an empty list gives "".
public func mxSite(for hosts: [MXHost]) -> String {
    let names = Set(hosts.filter { !$0.isNullTarget }.map { DNSName.normalized($0.name) })
    return names.sorted().joined(separator: ",")
}

/// A small, fast, seedable generator (SplitMix64) so that tests and fakes can make the
/// shuffle among equal MX preferences reproducible. Not for anything security-related.
public struct SeededRandomNumberGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
