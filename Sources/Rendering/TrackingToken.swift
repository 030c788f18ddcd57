import Foundation

/// The signed identity in an open-tracking image (`/t/o/<token>`) or a tracked link
/// (`/t/c/<token>`): which tenant's campaign, which subscriber, and for a link the target
/// URL itself, so the redirect needs no lookup and no one can make Herald redirect to a
/// URL it did not put into a message (no open redirect).
///
/// `token = base64url(payload) "." base64url(first 16 bytes of HMAC-SHA256(key, context ‖ payload))`.
/// The payload is a version byte, the kind (`o` or `c`), the campaign and subscriber ids
/// as 8 bytes each, and the tenant and the URL as length-prefixed UTF-8. A 128-bit MAC
/// keeps links short and is far beyond guessing; the decoders are strict (one valid text
/// per token), so an altered character is a 404.
public struct TrackingToken: Sendable, Hashable {
    public enum Kind: UInt8, Sendable { case open = 0x6F, click = 0x63 }

    public var kind: Kind
    public var tenant: String
    public var campaign: Int64
    public var subscriber: Int64
    /// The link's target (clicks only; empty for opens).
    public var url: String

    public init(kind: Kind, tenant: String, campaign: Int64, subscriber: Int64, url: String = "") {
        self.kind = kind
        self.tenant = tenant
        self.campaign = campaign
        self.subscriber = subscriber
        self.url = url
    }

    private static let version: UInt8 = 1
    private static let context = Array("herald/track/v1\0".utf8)
    private static let macLength = 16
    /// Longer URLs are left untracked (a token must fit in a URL itself).
    public static let maxURLLength = 2000

    public func make(key: [UInt8]) -> String {
        precondition(key.count >= UnsubscribeToken.minimumKeyLength, "tracking key too short")
        var payload: [UInt8] = [Self.version, kind.rawValue]
        for n in [campaign, subscriber] {
            for shift in stride(from: 56, through: 0, by: -8) { payload.append(UInt8(truncatingIfNeeded: n >> Int64(shift))) }
        }
        for text in [tenant, url] {
            let utf8 = Array(text.utf8)
            precondition(utf8.count <= 0xFFFF, "tracking token field too long")
            payload += [UInt8(utf8.count >> 8), UInt8(utf8.count & 0xFF)] + utf8
        }
        let mac = Crypto.hmacSHA256(key: key, Self.context, payload).prefix(Self.macLength)
        return String(decoding: Base64URL.encode(payload) + [UInt8(ascii: ".")] + Base64URL.encode(mac), as: UTF8.self)
    }

    /// The fields of a genuine token of `kind`, or nil for anything else.
    public static func verify(_ token: String, kind: Kind, keys: [[UInt8]]) -> TrackingToken? {
        let bytes = Array(token.utf8)
        guard bytes.count <= 4096 else { return nil }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Base64URL.decode(parts[0]), let mac = Base64URL.decode(parts[1]),
              mac.count == macLength
        else { return nil }
        var genuine = false
        for key in keys where key.count >= UnsubscribeToken.minimumKeyLength {
            let expected = Array(Crypto.hmacSHA256(key: key, context, payload).prefix(macLength))
            if Crypto.constantTimeEqual(expected, mac) { genuine = true }
        }
        guard genuine, let parsed = parse(payload), parsed.kind == kind else { return nil }
        return parsed
    }

    private static func parse(_ p: [UInt8]) -> TrackingToken? {
        guard p.count >= 2 + 16 + 4, p[0] == version, let kind = Kind(rawValue: p[1]) else { return nil }
        var i = 2
        func number() -> Int64 {
            var n: UInt64 = 0
            for k in 0..<8 { n = n << 8 | UInt64(p[i + k]) }
            i += 8
            return Int64(bitPattern: n)
        }
        func text() -> String? {
            guard i + 2 <= p.count else { return nil }
            let length = Int(p[i]) << 8 | Int(p[i + 1])
            i += 2
            guard i + length <= p.count, let s = String(validating: p[i..<(i + length)], as: UTF8.self) else { return nil }
            i += length
            return s
        }
        let campaign = number(), subscriber = number()
        guard let tenant = text(), let url = text(), i == p.count else { return nil }
        return TrackingToken(kind: kind, tenant: tenant, campaign: campaign, subscriber: subscriber, url: url)
    }
}

/// Open and click tracking applied to a rendered HTML part.
public enum LinkTracking {
    /// Rewrites the `href` of every `<a>` whose target is an `http:` or `https:` URL to
    /// `click(url)` (the URL as the recipient would have followed it: character references
    /// decoded), except targets for which `click` returns nil; leaves `mailto:`, `tel:`,
    /// `#anchors` and relative links alone. With `openImage`, appends a 1×1 image of that
    /// URL before `</body>` (or at the end). The rest of the HTML is kept byte for byte.
    public static func apply(html: String, click: ((String) -> String?)?, openImage: String?) -> String {
        var out = click.map { rewriteLinks(html, $0) } ?? html
        if let openImage {
            let image = "<img src=\"\(escapeAttribute(openImage))\" width=\"1\" height=\"1\" alt=\"\" "
                + "style=\"display:block;border:0;width:1px;height:1px\">"
            if let body = out.range(of: "</body", options: [.caseInsensitive, .backwards]) {
                out.insert(contentsOf: image, at: body.lowerBound)
            } else {
                out += image
            }
        }
        return out
    }

    static func rewriteLinks(_ html: String, _ click: (String) -> String?) -> String {
        let s = Array(html.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(s.count + 256)
        var i = 0
        var copied = 0
        while i < s.count {
            // An <a …> start tag: `<a` followed by white space.
            guard s[i] == UInt8(ascii: "<"), i + 2 < s.count, s[i + 1] | 0x20 == UInt8(ascii: "a"),
                  isSpace(s[i + 2])
            else { i += 1; continue }
            guard let end = s[i...].firstIndex(of: UInt8(ascii: ">")) else { break }
            var j = i + 2
            while j < end {
                // attribute name
                while j < end, isSpace(s[j]) { j += 1 }
                let nameStart = j
                while j < end, !isSpace(s[j]), s[j] != UInt8(ascii: "="), s[j] != UInt8(ascii: "/") { j += 1 }
                let name = String(decoding: s[nameStart..<j], as: UTF8.self).lowercased()
                while j < end, isSpace(s[j]) { j += 1 }
                guard j < end, s[j] == UInt8(ascii: "=") else {
                    if j == nameStart { j += 1 }
                    continue
                }
                j += 1
                while j < end, isSpace(s[j]) { j += 1 }
                var valueStart = j, valueEnd = j
                if j < end, s[j] == UInt8(ascii: "\"") || s[j] == UInt8(ascii: "'") {
                    let quote = s[j]
                    valueStart = j + 1
                    valueEnd = s[valueStart..<end].firstIndex(of: quote) ?? end
                    j = min(end, valueEnd + 1)
                } else {
                    while j < end, !isSpace(s[j]) { j += 1 }
                    valueEnd = j
                }
                guard name == "href" else { continue }
                let raw = String(decoding: s[valueStart..<valueEnd], as: UTF8.self)
                let target = HTMLToTextConverter.decodeReferences(s[valueStart..<valueEnd]).trimmingCharacters(in: .whitespaces)
                let lower = target.lowercased()
                guard lower.hasPrefix("http://") || lower.hasPrefix("https://"),
                      target.utf8.count <= TrackingToken.maxURLLength,
                      let replacement = click(target), replacement != raw
                else { break }
                out += s[copied..<valueStart]
                out += Array(escapeAttribute(replacement).utf8)
                copied = valueEnd
                break
            }
            i = end + 1
        }
        out += s[copied...]
        return String(decoding: out, as: UTF8.self)
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0C }

    static func escapeAttribute(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(ch)
            }
        }
        return out
    }
}
