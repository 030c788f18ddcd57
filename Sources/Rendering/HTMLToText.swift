/// A plain-text rendering of an HTML e-mail body, for the text/plain part of campaigns
/// that only have an HTML template.
///
/// - Tags are removed; `script`, `style`, `head`, `title` and `template` are dropped with
///   their content, as are comments, `<!DOCTYPE>` and processing instructions.
/// - Character references are decoded (named ones for Latin-1, typography and common
///   symbols, and every numeric one); `&nbsp;` becomes a plain space; zero-width
///   characters and soft hyphens (preheader padding) are dropped.
/// - White space collapses to single spaces, except inside `<pre>`.
/// - Paragraph-like blocks (`p`, `h1`–`h6`, `ul`, `ol`, `table`, `blockquote`, …) are
///   separated by a blank line; `br`, `div`, `tr`, `li` start a new line; list items
///   start with "- " (or "1. ", "2. " in an `ol`), indented two spaces per nesting level.
/// - A link keeps its target: `<a href="https://x.test/">Read more</a>` becomes
///   `Read more (https://x.test/)`; when the text already is the URL (or the address of a
///   `mailto:` link) it is not repeated; `#…` and `javascript:` targets are dropped.
/// - An image contributes its `alt` text; `<hr>` becomes a line of dashes.
/// Lines end with "\n"; there is no trailing space on a line and no leading or trailing
/// blank line.
public func htmlToText(_ html: String) -> String {
    var converter = HTMLToTextConverter(Array(html.utf8))
    return converter.run()
}

struct HTMLToTextConverter {
    private let b: [UInt8]
    private var i = 0
    private var out: [UInt8] = []
    private var pendingSpace = false
    private var pendingBreaks = 0
    private var pendingPrefix: [UInt8] = []
    private var preDepth = 0
    private var lists: [(ordered: Bool, counter: Int)] = []
    private var links: [(href: String?, start: Int)] = []

    init(_ bytes: [UInt8]) {
        self.b = bytes
        out.reserveCapacity(bytes.count / 2)
    }

    mutating func run() -> String {
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "<") {
                parseMarkup()
            } else if c == UInt8(ascii: "&") {
                decodeReference()
            } else {
                text(byte: c)
                i += 1
            }
        }
        return Self.tidy(out)
    }

    // MARK: output

    private mutating func flushPending() {
        if pendingBreaks > 0 {
            if !out.isEmpty {
                for _ in 0..<min(pendingBreaks, 2) { out.append(0x0A) }
            }
            pendingBreaks = 0
            pendingSpace = false
        } else if pendingSpace {
            if !out.isEmpty && out.last != 0x0A { out.append(0x20) }
            pendingSpace = false
        }
        if !pendingPrefix.isEmpty {
            out += pendingPrefix
            pendingPrefix = []
        }
    }

    private var atLineStart: Bool { out.isEmpty || out.last == 0x0A }

    private mutating func emit(_ bytes: some Sequence<UInt8>) {
        flushPending()
        out.append(contentsOf: bytes)
    }

    private mutating func emit(byte: UInt8) {
        if pendingBreaks > 0 || pendingSpace || !pendingPrefix.isEmpty { flushPending() }
        out.append(byte)
    }

    private mutating func text(byte c: UInt8) {
        if preDepth > 0 {
            if c == 0x0D { return }
            if c == 0x0A {
                flushPending()
                out.append(0x0A)
                return
            }
            emit(byte: c)
            return
        }
        switch c {
        case 0x20, 0x09, 0x0A, 0x0D, 0x0C:
            if pendingBreaks == 0 && !atLineStart { pendingSpace = true }
        case 0..<0x20, 0x7F:
            break  // other controls
        default:
            emit(byte: c)
        }
    }

    private mutating func text(scalar: Unicode.Scalar) {
        switch scalar.value {
        case 0x20, 0x09, 0x0A, 0x0D, 0x0C, 0xA0, 0x2002, 0x2003, 0x2009:
            if preDepth > 0 { emit(byte: 0x20) } else if pendingBreaks == 0 && !atLineStart { pendingSpace = true }
        case 0xAD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x034F:
            break  // invisible: soft hyphen, zero-width characters
        case 0..<0x20, 0x7F..<0xA0:
            break  // controls
        default:
            emit(String(scalar).utf8)
        }
    }

    private mutating func requestBreak(_ n: Int) {
        pendingBreaks = max(pendingBreaks, n)
        pendingSpace = false
    }

    // MARK: markup

    private mutating func parseMarkup() {
        // Comment, doctype, processing instruction, CDATA.
        if starts(with: "<!--") {
            i = find("-->", from: i + 4).map { $0 + 3 } ?? b.count
            return
        }
        if starts(with: "<![CDATA[") {
            let end = find("]]>", from: i + 9) ?? b.count
            for k in (i + 9)..<end { text(byte: b[k]) }
            i = min(b.count, end + 3)
            return
        }
        if starts(with: "<!") || starts(with: "<?") {
            i = find(">", from: i + 2).map { $0 + 1 } ?? b.count
            return
        }
        var k = i + 1
        let closing = k < b.count && b[k] == UInt8(ascii: "/")
        if closing { k += 1 }
        let nameStart = k
        while k < b.count, Self.isNameByte(b[k]) { k += 1 }
        guard k > nameStart else {
            // Not a tag ("a < b"): the "<" is text.
            text(byte: b[i])
            i += 1
            return
        }
        let name = String(decoding: b[nameStart..<k], as: UTF8.self).lowercased()
        // Attributes up to the closing ">", honouring quotes; only links and images need theirs.
        let tag = Self.tags[name] ?? .other
        let wanted = !closing && (tag == .a || tag == .img)
        var attributes: [String: String] = [:]
        var selfClosing = false
        while k < b.count, b[k] != UInt8(ascii: ">") {
            let c = b[k]
            if c == UInt8(ascii: "/") { selfClosing = true; k += 1; continue }
            if Self.isSpace(c) { k += 1; continue }
            selfClosing = false
            let attrStart = k
            while k < b.count, !Self.isSpace(b[k]), b[k] != UInt8(ascii: "="), b[k] != UInt8(ascii: ">"),
                  !(b[k] == UInt8(ascii: "/") && k + 1 < b.count && b[k + 1] == UInt8(ascii: ">")) { k += 1 }
            let attrEnd = k
            while k < b.count, Self.isSpace(b[k]) { k += 1 }
            var valueRange = k..<k
            if k < b.count, b[k] == UInt8(ascii: "=") {
                k += 1
                while k < b.count, Self.isSpace(b[k]) { k += 1 }
                if k < b.count, b[k] == UInt8(ascii: "\"") || b[k] == UInt8(ascii: "'") {
                    let quote = b[k]
                    let vStart = k + 1
                    k = vStart
                    while k < b.count, b[k] != quote { k += 1 }
                    valueRange = vStart..<min(k, b.count)
                    if k < b.count { k += 1 }
                } else {
                    let vStart = k
                    while k < b.count, !Self.isSpace(b[k]), b[k] != UInt8(ascii: ">") { k += 1 }
                    valueRange = vStart..<k
                }
            }
            if wanted {
                let attrName = String(decoding: b[attrStart..<attrEnd], as: UTF8.self).lowercased()
                if !attrName.isEmpty, attributes[attrName] == nil {
                    attributes[attrName] = Self.decodeReferences(b[valueRange])
                }
            }
        }
        i = min(b.count, k + 1)
        if closing { closeTag(tag) } else { openTag(tag, name, attributes, selfClosing: selfClosing) }
    }

    private enum Tag { case raw, br, paragraph, list, li, line, pre, hr, cell, img, a, other }

    private static let tags: [String: Tag] = {
        var t: [String: Tag] = ["br": .br, "ul": .list, "ol": .list, "li": .li, "pre": .pre, "hr": .hr, "td": .cell,
                                "th": .cell, "img": .img, "a": .a]
        for n in ["script", "style", "head", "title", "template"] { t[n] = .raw }
        for n in ["p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "dl", "figure", "address"] { t[n] = .paragraph }
        for n in ["div", "tr", "section", "article", "header", "footer", "nav", "main", "aside", "center", "dt", "dd",
                  "caption", "figcaption", "form", "fieldset", "tbody", "thead", "tfoot"] { t[n] = .line }
        return t
    }()

    private mutating func openTag(_ tag: Tag, _ name: String, _ attributes: [String: String], selfClosing: Bool) {
        switch tag {
        case .raw:
            if !selfClosing { skipRawContent(until: name) }
        case .br:
            pendingSpace = false
            if !out.isEmpty || !pendingPrefix.isEmpty { pendingBreaks = min(pendingBreaks + 1, 2) }
        case .paragraph:
            requestBreak(2)
        case .list:
            requestBreak(lists.isEmpty ? 2 : 1)
            lists.append((name == "ol", 0))
        case .li:
            requestBreak(1)
            let depth = max(lists.count, 1)
            var prefix = Array(repeating: UInt8(ascii: " "), count: 2 * (depth - 1))
            if let last = lists.last, last.ordered {
                lists[lists.count - 1].counter += 1
                prefix += Array("\(lists[lists.count - 1].counter). ".utf8)
            } else {
                prefix += Array("- ".utf8)
            }
            pendingPrefix = prefix
        case .line:
            requestBreak(1)
        case .pre:
            requestBreak(2)
            preDepth += 1
        case .hr:
            requestBreak(1)
            emit(Array("----------------------------------------".utf8))
            requestBreak(1)
        case .cell:
            if pendingBreaks == 0 && !atLineStart { pendingSpace = true }
        case .img:
            if let alt = attributes["alt"], !alt.isEmpty {
                for scalar in alt.unicodeScalars { text(scalar: scalar) }
            }
        case .a:
            // Breaks and a list prefix go out first, so the link text starts at `out.count`
            // (a pending space stays pending and is trimmed off the link text).
            if pendingBreaks > 0 || !pendingPrefix.isEmpty {
                let space = pendingSpace
                flushPending()
                pendingSpace = space && !atLineStart
            }
            links.append((attributes["href"]?.heraldTrimmed, out.count))
        case .other:
            break
        }
    }

    private mutating func closeTag(_ tag: Tag) {
        switch tag {
        case .paragraph:
            requestBreak(2)
        case .list:
            if !lists.isEmpty { lists.removeLast() }
            requestBreak(lists.isEmpty ? 2 : 1)
        case .li, .line:
            requestBreak(1)
        case .pre:
            preDepth = max(0, preDepth - 1)
            requestBreak(2)
        case .cell:
            if pendingBreaks == 0 && !atLineStart { pendingSpace = true }
        case .a:
            guard let link = links.popLast() else { return }
            closeLink(href: link.href, start: link.start)
        case .raw, .br, .hr, .img, .other:
            break
        }
    }

    private mutating func closeLink(href: String?, start: Int) {
        guard let href, !href.isEmpty else { return }
        let lower = href.lowercased()
        if lower.hasPrefix("#") || lower.hasPrefix("javascript:") { return }
        let linkText = String(decoding: out[min(start, out.count)...], as: UTF8.self).heraldTrimmed
        if linkText == href { return }
        if lower.hasPrefix("mailto:"), linkText == String(href.dropFirst(7)) { return }
        // "https://x.test/" shown as "x.test" or "https://x.test": the text already is the URL.
        func bare(_ s: String) -> String {
            var s = Substring(s.lowercased())
            for p in ["https://", "http://"] where s.hasPrefix(p) { s = s.dropFirst(p.count) }
            while s.hasSuffix("/") { s = s.dropLast() }
            return String(s)
        }
        if !linkText.isEmpty, bare(linkText) == bare(href) { return }
        if linkText.isEmpty {
            emit(Array(href.utf8))
        } else {
            // Right after the link text, even when a space or a break is pending after it.
            let space = pendingSpace
            out += Array(" (\(href))".utf8)
            pendingSpace = space
        }
    }

    private mutating func skipRawContent(until name: String) {
        let needle = Array("</\(name)".utf8)
        var k = i
        while k + needle.count <= b.count {
            if b[k] == UInt8(ascii: "<"), Self.equalsIgnoringCase(b[k..<(k + needle.count)], needle) {
                i = find(">", from: k).map { $0 + 1 } ?? b.count
                return
            }
            k += 1
        }
        i = b.count
    }

    // MARK: references

    private mutating func decodeReference() {
        if let (scalars, length) = Self.reference(at: i, in: b) {
            for s in scalars { text(scalar: s) }
            i += length
        } else {
            text(byte: b[i])
            i += 1
        }
    }

    /// The character reference at `at` (which holds "&"): its scalars and its length.
    static func reference(at: Int, in b: [UInt8]) -> ([Unicode.Scalar], Int)? {
        var k = at + 1
        guard k < b.count else { return nil }
        if b[k] == UInt8(ascii: "#") {
            k += 1
            var hex = false
            if k < b.count, b[k] == UInt8(ascii: "x") || b[k] == UInt8(ascii: "X") { hex = true; k += 1 }
            let digitsStart = k
            var value: UInt32 = 0
            while k < b.count, k - digitsStart < 8 {
                let c = b[k]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f") where hex: d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F") where hex: d = UInt32(c - UInt8(ascii: "A") + 10)
                default: d = UInt32.max
                }
                if d == UInt32.max { break }
                value = value * (hex ? 16 : 10) + d
                k += 1
            }
            guard k > digitsStart else { return nil }
            if k < b.count, b[k] == UInt8(ascii: ";") { k += 1 }
            // Windows-1252 numeric references (&#150;) are what authors mean by them.
            if (0x80...0x9F).contains(value), let mapped = windows1252[value] { value = mapped }
            let scalar = Unicode.Scalar(value) ?? Unicode.Scalar(0xFFFD)!
            return ([value == 0 ? Unicode.Scalar(0xFFFD)! : scalar], k - at)
        }
        let nameStart = k
        while k < b.count, k - nameStart < 32,
              (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b[k]) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b[k])
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[k]) { k += 1 }
        guard k > nameStart else { return nil }
        let name = String(decoding: b[nameStart..<k], as: UTF8.self)
        if k < b.count, b[k] == UInt8(ascii: ";") {
            guard let value = namedReferences[name], let s = Unicode.Scalar(value) else { return nil }
            return ([s], k + 1 - at)
        }
        // The few references browsers accept without ";".
        if let value = legacyReferences[name], let s = Unicode.Scalar(value) { return ([s], k - at) }
        return nil
    }

    static func decodeReferences(_ slice: ArraySlice<UInt8>) -> String {
        guard slice.contains(UInt8(ascii: "&")) else { return String(decoding: slice, as: UTF8.self) }
        let bytes = Array(slice)
        var result = String.UnicodeScalarView()
        var k = 0
        var plainStart = 0
        var plain: [UInt8] = []
        while k < bytes.count {
            if bytes[k] == UInt8(ascii: "&"), let (scalars, length) = reference(at: k, in: bytes) {
                plain += bytes[plainStart..<k]
                result.append(contentsOf: String(decoding: plain, as: UTF8.self).unicodeScalars)
                plain = []
                result.append(contentsOf: scalars)
                k += length
                plainStart = k
            } else {
                k += 1
            }
        }
        plain += bytes[plainStart..<bytes.count]
        result.append(contentsOf: String(decoding: plain, as: UTF8.self).unicodeScalars)
        return String(result)
    }

    // MARK: helpers

    /// Trailing spaces off every line, at most one blank line in a row, none at either end.
    static func tidy(_ bytes: [UInt8]) -> String {
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var blank = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            var end = line.endIndex
            while end > line.startIndex, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
            if end == line.startIndex {
                blank += 1
                continue
            }
            if !result.isEmpty { result += blank > 0 ? [0x0A, 0x0A] : [0x0A] }
            blank = 0
            result += line[line.startIndex..<end]
        }
        return String(decoding: result, as: UTF8.self)
    }

    private func starts(with s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        guard i + n <= b.count else { return false }
        return s.withUTF8Buffer { p in
            for k in 0..<n where Self.lower(b[i + k]) != Self.lower(p[k]) { return false }
            return true
        }
    }

    private func find(_ s: StaticString, from: Int) -> Int? {
        s.withUTF8Buffer { TemplateChecker.find(Array($0), in: b, from: from) }
    }

    static func equalsIgnoringCase(_ a: ArraySlice<UInt8>, _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where lower(x) != lower(y) { return false }
        return true
    }

    static func lower(_ c: UInt8) -> UInt8 { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) ? c + 32 : c }

    static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0C }

    static func isNameByte(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "-") || c == UInt8(ascii: ":")
    }

    static let windows1252: [UInt32: UInt32] = [
        0x80: 0x20AC, 0x82: 0x201A, 0x83: 0x0192, 0x84: 0x201E, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021,
        0x88: 0x02C6, 0x89: 0x2030, 0x8A: 0x0160, 0x8B: 0x2039, 0x8C: 0x0152, 0x8E: 0x017D, 0x91: 0x2018,
        0x92: 0x2019, 0x93: 0x201C, 0x94: 0x201D, 0x95: 0x2022, 0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02DC,
        0x99: 0x2122, 0x9A: 0x0161, 0x9B: 0x203A, 0x9C: 0x0153, 0x9E: 0x017E, 0x9F: 0x0178,
    ]

    static let legacyReferences: [String: UInt32] = [
        "amp": 0x26, "lt": 0x3C, "gt": 0x3E, "quot": 0x22, "nbsp": 0xA0, "copy": 0xA9, "reg": 0xAE,
        "AMP": 0x26, "LT": 0x3C, "GT": 0x3E, "QUOT": 0x22,
    ]

    static let namedReferences: [String: UInt32] = {
        var table: [String: UInt32] = [
            "amp": 0x26, "lt": 0x3C, "gt": 0x3E, "quot": 0x22, "apos": 0x27,
            "AMP": 0x26, "LT": 0x3C, "GT": 0x3E, "QUOT": 0x22,
            "OElig": 0x152, "oelig": 0x153, "Scaron": 0x160, "scaron": 0x161, "Yuml": 0x178, "fnof": 0x192,
            "circ": 0x2C6, "tilde": 0x2DC, "ensp": 0x2002, "emsp": 0x2003, "thinsp": 0x2009, "zwnj": 0x200C,
            "zwj": 0x200D, "lrm": 0x200E, "rlm": 0x200F, "ndash": 0x2013, "mdash": 0x2014, "lsquo": 0x2018,
            "rsquo": 0x2019, "sbquo": 0x201A, "ldquo": 0x201C, "rdquo": 0x201D, "bdquo": 0x201E,
            "dagger": 0x2020, "Dagger": 0x2021, "bull": 0x2022, "hellip": 0x2026, "permil": 0x2030,
            "prime": 0x2032, "Prime": 0x2033, "lsaquo": 0x2039, "rsaquo": 0x203A, "oline": 0x203E,
            "frasl": 0x2044, "euro": 0x20AC, "trade": 0x2122, "larr": 0x2190, "uarr": 0x2191, "rarr": 0x2192,
            "darr": 0x2193, "harr": 0x2194, "lArr": 0x21D0, "rArr": 0x21D2, "hArr": 0x21D4, "minus": 0x2212,
            "le": 0x2264, "ge": 0x2265, "ne": 0x2260, "asymp": 0x2248, "infin": 0x221E, "check": 0x2713,
            "spades": 0x2660, "clubs": 0x2663, "hearts": 0x2665, "diams": 0x2666, "star": 0x2606,
            "starf": 0x2605, "loz": 0x25CA, "Alpha": 0x391, "alpha": 0x3B1, "beta": 0x3B2, "gamma": 0x3B3,
            "delta": 0x3B4, "pi": 0x3C0, "mu": 0x3BC, "Omega": 0x3A9, "omega": 0x3C9, "sigma": 0x3C3,
            "NewLine": 0x0A, "Tab": 0x09, "nbsp": 0xA0,
        ]
        // Latin-1 supplement, U+00A1…U+00FF, in code point order.
        let latin1 = [
            "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy", "ordf", "laquo", "not",
            "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute", "micro", "para", "middot", "cedil",
            "sup1", "ordm", "raquo", "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",
            "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave",
            "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times",
            "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute",
            "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc", "euml", "igrave",
            "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml", "divide",
            "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml",
        ]
        for (offset, name) in latin1.enumerated() { table[name] = 0xA1 + UInt32(offset) }
        return table
    }()
}
