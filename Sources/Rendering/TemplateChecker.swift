/// Checks a Mustache template against the variables Herald provides, with line numbers.
///
/// swift-mustache keeps its token list internal, so this is a small scanner of the same
/// tag grammar (`{{name}}`, `{{{name}}}`, `{{&name}}`, `{{#s}}…{{/s}}`, `{{^s}}…{{/s}}`,
/// `{{! comment }}`, `{{=<% %>=}}`, `{{transform(name)}}`). The library still parses every
/// template too (`CampaignTemplate`), and its syntax errors are reported when this scanner
/// saw none, so the two can only differ in how well an error is explained.
///
/// Names resolve the way Mustache resolves them: through the stack of open sections to the
/// top-level context. Inside a section over `attributes` (or anything under it) every name
/// is accepted, because attributes are free-form JSON; inside `{{#campaign}}` the campaign
/// fields are known by their short names.
struct TemplateChecker {
    static let recipientLeaves: Set<String> = ["email", "first_name", "last_name", "name", "unsubscribe_url"]
    static let transforms: Set<String> = [
        "capitalized", "count", "empty", "enumerated", "equalzero", "even", "first", "last", "lowercased",
        "minusone", "odd", "plusone", "reversed", "sorted", "uppercased",
    ]

    let field: TemplateField
    let campaignFields: Set<String>

    /// What a name found in a scope stands for.
    private enum Scope { case root, campaign, anything, leaf }

    private enum Resolution {
        case value(Scope)   // found; the scope a section over it opens
        case group(Scope)   // found, but only meaningful as a section (campaign, attributes)
        case unknown
    }

    func check(_ source: String) -> [TemplateIssue] {
        let b = Array(source.utf8)
        var open: [UInt8] = Array("{{".utf8)
        var close: [UInt8] = Array("}}".utf8)
        var issues: [TemplateIssue] = []
        var sections: [(name: String, line: Int, scope: Scope)] = []
        var i = 0
        var line = 1

        func newlines(_ from: Int, _ to: Int) -> Int {
            var n = 0
            var k = from
            while k < to { if b[k] == 0x0A { n += 1 }; k += 1 }
            return n
        }
        func syntax(_ detail: String, _ at: Int) { issues.append(TemplateIssue(field: field, line: at, kind: .syntax(detail))) }

        while let start = Self.find(open, in: b, from: i) {
            line += newlines(i, start)
            let tagLine = line
            var j = start + open.count
            guard j < b.count else { syntax("unclosed tag \"\(String(decoding: open, as: UTF8.self))\"", tagLine); return issues }
            let sigil = b[j]
            let content: String
            let end: Int  // index just past the tag
            switch sigil {
            case UInt8(ascii: "{"):
                guard let k = Self.find([UInt8(ascii: "}")] + close, in: b, from: j + 1) else {
                    syntax("unclosed tag \"{{{\"", tagLine); return issues
                }
                content = String(decoding: b[(j + 1)..<k], as: UTF8.self)
                end = k + 1 + close.count
            case UInt8(ascii: "="):
                guard let k = Self.find([UInt8(ascii: "=")] + close, in: b, from: j + 1) else {
                    syntax("unclosed delimiter change", tagLine); return issues
                }
                let parts = b[(j + 1)..<k].split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D })
                guard parts.count == 2, !parts.contains(where: { $0.contains(UInt8(ascii: "=")) }) else {
                    syntax("bad delimiter change \"\(String(decoding: b[start..<(k + 1 + close.count)], as: UTF8.self))\"", tagLine)
                    return issues
                }
                let tagEnd = k + 1 + close.count
                open = Array(parts[0])
                close = Array(parts[1])
                line += newlines(start, tagEnd)
                i = tagEnd
                continue
            default:
                if sigil == UInt8(ascii: "!") || Self.sigils.contains(sigil) { j += 1 }
                guard let k = Self.find(close, in: b, from: j) else {
                    syntax(sigil == UInt8(ascii: "!") ? "unclosed comment" : "unclosed tag", tagLine); return issues
                }
                content = String(decoding: b[j..<k], as: UTF8.self)
                end = k + close.count
            }
            line += newlines(start, end)
            i = end
            let tagText = String(decoding: b[start..<end], as: UTF8.self)
            if sigil == UInt8(ascii: "!") { continue }
            if [UInt8(ascii: ">"), UInt8(ascii: "<"), UInt8(ascii: "$"), UInt8(ascii: "%")].contains(sigil) {
                issues.append(TemplateIssue(field: field, line: tagLine, kind: .unsupportedTag(tagText)))
                continue
            }
            let trimmed = content.heraldTrimmed
            guard let (name, transforms) = Self.parseName(trimmed) else {
                syntax(trimmed.isEmpty ? "empty tag \"\(tagText)\"" : "invalid tag \"\(tagText)\"", tagLine)
                continue
            }
            var transformOK = true
            for t in transforms where !Self.transforms.contains(t) {
                issues.append(TemplateIssue(field: field, line: tagLine, kind: .unknownTransform(t)))
                transformOK = false
            }
            switch sigil {
            case UInt8(ascii: "#"), UInt8(ascii: "^"):
                var scope = Scope.anything
                switch resolve(name, sections.map(\.scope)) {
                case .value(let s), .group(let s): scope = s
                case .unknown:
                    if transformOK { issues.append(unknown(name, tagLine, sections.map(\.scope))) }
                }
                sections.append((trimmed, tagLine, scope))
            case UInt8(ascii: "/"):
                guard let top = sections.popLast() else {
                    syntax("\"\(tagText)\" closes a section that was never opened", tagLine)
                    continue
                }
                if top.name != trimmed {
                    syntax("\"\(tagText)\" does not close \"{{#\(top.name)}}\" opened on line \(top.line)", tagLine)
                }
            default:
                switch resolve(name, sections.map(\.scope)) {
                case .value: break
                case .group:
                    if transforms.isEmpty { issues.append(TemplateIssue(field: field, line: tagLine, kind: .notAValue(name))) }
                case .unknown:
                    if transformOK { issues.append(unknown(name, tagLine, sections.map(\.scope))) }
                }
            }
        }
        for s in sections.reversed() {
            syntax("section \"{{#\(s.name)}}\" opened on line \(s.line) is never closed", s.line)
        }
        return issues
    }

    private static let sigils: Set<UInt8> = Set("#^/&><$%".utf8)

    /// `name` or `t1(t2(name))` → (name, [t1, t2]); nil when not a valid tag name.
    static func parseName(_ text: String) -> (String, [String])? {
        let nameChars = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-_?*")
        var rest = Substring(text)
        var transforms: [String] = []
        while let paren = rest.firstIndex(of: "(") {
            let t = rest[..<paren]
            guard !t.isEmpty, t.allSatisfy({ nameChars.contains($0) }), rest.last == ")" else { return nil }
            transforms.append(String(t))
            rest = rest[rest.index(after: paren)..<rest.index(before: rest.endIndex)]
        }
        guard !rest.isEmpty, rest.allSatisfy({ nameChars.contains($0) }) else { return nil }
        return (String(rest), transforms)
    }

    private func resolve(_ name: String, _ stack: [Scope]) -> Resolution {
        if name == "." { return stack.isEmpty ? .unknown : .value(stack.last == .anything ? .anything : .leaf) }
        if name.hasPrefix(".") {
            let path = name.dropFirst().split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            return resolve(path, in: stack.last ?? .root)
        }
        let path = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !path.contains(where: \.isEmpty) else { return .unknown }
        for scope in stack.reversed() + [.root] {
            if case let r = resolve(path, in: scope), !isUnknown(r) { return r }
        }
        return .unknown
    }

    private func isUnknown(_ r: Resolution) -> Bool {
        if case .unknown = r { return true }
        return false
    }

    private func resolve(_ path: [String], in scope: Scope) -> Resolution {
        guard let first = path.first, !path.contains(where: \.isEmpty) else { return .unknown }
        let rest = path.dropFirst()
        switch scope {
        case .anything:
            return .value(.anything)
        case .leaf:
            return .unknown
        case .campaign:
            return campaignFields.contains(path.joined(separator: ".")) ? .value(.leaf) : .unknown
        case .root:
            if Self.recipientLeaves.contains(first) { return rest.isEmpty ? .value(.leaf) : .unknown }
            if first == "attributes" { return rest.isEmpty ? .group(.anything) : .value(.anything) }
            if first == "campaign" {
                if rest.isEmpty { return .group(.campaign) }
                return campaignFields.contains(rest.joined(separator: ".")) ? .value(.leaf) : .unknown
            }
            return .unknown
        }
    }

    private func unknown(_ name: String, _ line: Int, _ stack: [Scope]) -> TemplateIssue {
        var candidates = Self.recipientLeaves.union(campaignFields.map { "campaign." + $0 })
        if stack.contains(.campaign) { candidates.formUnion(campaignFields) }
        let best = candidates.map { ($0, Self.distance($0, name)) }.min { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        var suggestion: String?
        if let best, best.1 <= max(1, min(3, name.count / 3)) { suggestion = best.0 }
        if suggestion == nil, !name.contains("."), !name.isEmpty, name != "." { suggestion = "attributes." + name }
        return TemplateIssue(field: field, line: line, kind: .unknownVariable(name), suggestion: suggestion)
    }

    /// Levenshtein distance (names are short).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count else { return nil }
        let first = needle[0]
        var i = from
        let last = hay.count - needle.count
        while i <= last {
            if hay[i] == first {
                var k = 1
                while k < needle.count && hay[i + k] == needle[k] { k += 1 }
                if k == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}

extension String {
    var heraldTrimmed: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
