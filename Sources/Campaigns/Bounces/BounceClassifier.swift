/// One class of the bounce classification table (`conf/bounce-classes.toml`).
public struct BounceClass: Sendable, Equatable {
    /// `bad-mailbox`, `bad-domain`, `mailbox-full`, `policy`, `too-large`, `transient`,
    /// or any name the table adds.
    public var category: String
    /// A hard bounce suppresses the address at once; soft ones count toward the limit.
    public var hard: Bool
    /// Enhanced status codes (`5.1.1`), or prefixes of them ending in a dot (`5.7.`).
    public var statuses: [String]
    /// Phrases looked for in the diagnostic text, case-insensitively.
    public var phrases: [String]

    public init(category: String, hard: Bool, statuses: [String] = [], phrases: [String] = []) {
        self.category = category
        self.hard = hard
        self.statuses = statuses
        self.phrases = phrases.map { $0.lowercased() }
    }
}

/// Sorts a bounce into a category a postmaster knows, from its enhanced status code and
/// its text, with the table of ``BounceClass``es (a data file, extended without code).
///
/// The text decides first (it says more than the code: `550 5.7.1 mailbox unavailable`
/// is about the mailbox): the first class, in table order, with a phrase found in the
/// text. Then the code: the class with the longest matching status (an exact `5.2.2`
/// beats a prefix `5.2.`; a tie goes to the earlier class). Otherwise the bounce is
/// `unknown`, soft: an unrecognised refusal is not taken as proof that the address is
/// bad, but repeated ones reach the soft-bounce limit.
public struct BounceClassifier: Sendable {
    public let classes: [BounceClass]

    public init(classes: [BounceClass]) {
        self.classes = classes
    }

    public struct Verdict: Sendable, Equatable {
        public var category: String
        public var hard: Bool
    }

    public static let unknown = Verdict(category: "unknown", hard: false)

    public func classify(status: String?, text: String) -> Verdict {
        let lowered = text.lowercased()
        if !lowered.isEmpty {
            for c in classes where c.phrases.contains(where: { !$0.isEmpty && lowered.contains($0) }) {
                return Verdict(category: c.category, hard: c.hard)
            }
        }
        guard let status else { return Self.unknown }
        var best: (length: Int, verdict: Verdict)?
        for c in classes {
            for s in c.statuses where Self.matches(pattern: s, status: status) && s.count > (best?.length ?? 0) {
                best = (s.count, Verdict(category: c.category, hard: c.hard))
            }
        }
        return best?.verdict ?? Self.unknown
    }

    /// `5.1.1` matches `5.1.1` only; `5.1.` matches every `5.1.x`; `5.` every `5.x.y`.
    static func matches(pattern: String, status: String) -> Bool {
        pattern.hasSuffix(".") ? status.hasPrefix(pattern) : status == pattern
    }
}
