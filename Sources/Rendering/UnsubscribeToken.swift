/// The signed identity in an unsubscribe link (`/u/<token>`) and in `List-Unsubscribe`.
///
/// `token = base64url(payload) "." base64url(HMAC-SHA256(key, context ‖ payload))`, no padding.
/// The payload is a version byte and the four fields (tenant, subscriber, list, campaign)
/// each as a tag and its bytes: a UUID in canonical lower- or upper-case text form is
/// stored as its 16 bytes, a canonical decimal number as 8 bytes, anything else as a
/// length-prefixed UTF-8 string; an absent campaign as a single tag. So a token for
/// UUID ids is about 140 characters.
///
/// Properties:
/// - unforgeable without the key: the full 256-bit MAC is checked, with `CRYPTO_memcmp`;
/// - unguessable: ids cannot be enumerated into valid tokens without the MAC;
/// - tamper-evident: any changed character makes verification fail — the decoders are
///   strict (alphabet, no padding, no non-zero trailing bits, re-encoding must give the
///   same text), so there is exactly one valid text per token;
/// - a token for one subscriber cannot be edited into another's (the payload is signed);
/// - no expiry: unsubscribe links must keep working in old mail. Rotate the key by
///   verifying with the new and the old key (`verify(_:keys:)`).
/// The MAC input starts with a fixed context string, so a key shared with another use
/// cannot be used to produce tokens there or here.
public struct UnsubscribeToken: Sendable, Hashable {
    public var tenant: String
    public var subscriber: String
    public var list: String
    public var campaign: String?

    public init(subscriber: String, list: String, campaign: String?, tenant: String) {
        self.subscriber = subscriber
        self.list = list
        self.campaign = campaign
        self.tenant = tenant
    }

    /// Keys shorter than this are refused (a programming or configuration error).
    public static let minimumKeyLength = 16
    private static let version: UInt8 = 1
    private static let context = Array("herald/unsubscribe/v1\0".utf8)

    /// The token for these fields. `key` is the tenant-independent secret from config
    /// (at least 16 bytes, ideally 32 random bytes).
    public static func make(subscriber: String, list: String, campaign: String?, tenant: String, key: [UInt8]) -> String {
        UnsubscribeToken(subscriber: subscriber, list: list, campaign: campaign, tenant: tenant).make(key: key)
    }

    public func make(key: [UInt8]) -> String {
        precondition(key.count >= Self.minimumKeyLength, "unsubscribe key shorter than \(Self.minimumKeyLength) bytes")
        var payload: [UInt8] = [Self.version]
        for field in [tenant, subscriber, list] { Self.append(field, to: &payload) }
        if let campaign { Self.append(campaign, to: &payload) } else { payload.append(Tag.absent.rawValue) }
        let mac = Crypto.hmacSHA256(key: key, Self.context, payload)
        return String(decoding: Base64URL.encode(payload) + [UInt8(ascii: ".")] + Base64URL.encode(mac), as: UTF8.self)
    }

    /// The fields of a genuine token, or nil for anything else (malformed, altered, or
    /// signed with another key).
    public static func verify(_ token: String, key: [UInt8]) -> UnsubscribeToken? {
        verify(token, keys: [key])
    }

    /// As `verify(_:key:)`, accepting a token signed with any of `keys` (key rotation).
    public static func verify(_ token: String, keys: [[UInt8]]) -> UnsubscribeToken? {
        let bytes = Array(token.utf8)
        guard bytes.count <= 2048 else { return nil }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Base64URL.decode(parts[0]), let mac = Base64URL.decode(parts[1]),
              mac.count == 32, !payload.isEmpty
        else { return nil }
        var genuine = false
        for key in keys where key.count >= minimumKeyLength {
            // Every key is tried (no early exit), so timing does not tell which one matched.
            if Crypto.constantTimeEqual(Crypto.hmacSHA256(key: key, context, payload), mac) { genuine = true }
        }
        guard genuine else { return nil }
        return parse(payload)
    }

    private enum Tag: UInt8 {
        case absent = 0, lowerUUID = 1, upperUUID = 2, number = 3, string = 4
    }

    private static func append(_ field: String, to payload: inout [UInt8]) {
        let utf8 = Array(field.utf8)
        if let uuid = uuidBytes(utf8) {
            payload.append(utf8.contains(where: { (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) })
                ? Tag.lowerUUID.rawValue : Tag.upperUUID.rawValue)
            payload += uuid
        } else if let number = UInt64(field), String(number) == field {
            payload.append(Tag.number.rawValue)
            for shift in stride(from: 56, through: 0, by: -8) { payload.append(UInt8(truncatingIfNeeded: number >> UInt64(shift))) }
        } else {
            precondition(utf8.count <= 0xFFFF, "unsubscribe token field longer than 65535 bytes")
            payload.append(Tag.string.rawValue)
            payload.append(UInt8(utf8.count >> 8))
            payload.append(UInt8(utf8.count & 0xFF))
            payload += utf8
        }
    }

    private static func parse(_ p: [UInt8]) -> UnsubscribeToken? {
        guard p.first == version else { return nil }
        var i = 1
        func field(allowAbsent: Bool) -> String?? {
            guard i < p.count, let tag = Tag(rawValue: p[i]) else { return .none }
            i += 1
            switch tag {
            case .absent:
                return allowAbsent ? .some(nil) : .none
            case .lowerUUID, .upperUUID:
                guard i + 16 <= p.count else { return .none }
                defer { i += 16 }
                return .some(uuidText(p[i..<(i + 16)], upper: tag == .upperUUID))
            case .number:
                guard i + 8 <= p.count else { return .none }
                var n: UInt64 = 0
                for k in 0..<8 { n = n << 8 | UInt64(p[i + k]) }
                i += 8
                return .some(String(n))
            case .string:
                guard i + 2 <= p.count else { return .none }
                let length = Int(p[i]) << 8 | Int(p[i + 1])
                i += 2
                guard i + length <= p.count, let s = String(validating: p[i..<(i + length)], as: UTF8.self) else { return .none }
                i += length
                return .some(s)
            }
        }
        guard case let .some(tenant?) = field(allowAbsent: false),
              case let .some(subscriber?) = field(allowAbsent: false),
              case let .some(list?) = field(allowAbsent: false),
              case let .some(campaign) = field(allowAbsent: true),
              i == p.count
        else { return nil }
        return UnsubscribeToken(subscriber: subscriber, list: list, campaign: campaign, tenant: tenant)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// The 16 bytes of a UUID written `8-4-4-4-12` in one consistent case.
    private static func uuidBytes(_ s: [UInt8]) -> [UInt8]? {
        guard s.count == 36 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var sawLower = false, sawUpper = false
        var k = 0
        while k < 36 {
            if k == 8 || k == 13 || k == 18 || k == 23 {
                guard s[k] == UInt8(ascii: "-") else { return nil }
                k += 1
                continue
            }
            func nibble(_ c: UInt8) -> UInt8? {
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): sawLower = true; return c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): sawUpper = true; return c - UInt8(ascii: "A") + 10
                default: return nil
                }
            }
            guard let hi = nibble(s[k]), let lo = nibble(s[k + 1]) else { return nil }
            out.append(hi << 4 | lo)
            k += 2
        }
        // Mixed case would not survive the round trip: keep it as a string.
        if sawLower && sawUpper { return nil }
        return out
    }

    private static func uuidText(_ b: ArraySlice<UInt8>, upper: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (n, byte) in b.enumerated() {
            if n == 4 || n == 6 || n == 8 || n == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        }
        let text = String(decoding: out, as: UTF8.self)
        return upper ? text.uppercased() : text
    }
}

/// base64url without padding (RFC 4648 §5), with a strict decoder.
enum Base64URL {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    static func encode(_ bytes: some Collection<UInt8>) -> [UInt8] {
        MIME.base64(bytes, alphabet: alphabet, pad: false)
    }

    /// The bytes, or nil unless `text` is the canonical encoding of them.
    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for c in text {
            let v = values[Int(c)]
            guard v != 0xFF else { return nil }
            buffer = buffer << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        // Left-over bits must be zero, or two texts would decode to the same bytes.
        guard buffer == 0 else { return nil }
        return out
    }
}
