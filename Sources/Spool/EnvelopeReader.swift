import Foundation

/// A decoder written for the `.env` format alone, for speed: recovery reads every
/// envelope of the spool at start-up (a million of them after an outage), and the queue
/// manager one per delivery attempt. It reads the bytes in one pass, straight into an
/// ``Envelope``, without building a tree and without Foundation's `JSONDecoder`.
///
/// It accepts a subset of what `JSONDecoder` accepts, and gives the same envelope
/// for what it accepts: anything it does not handle (a number that is not a plain
/// integer, a missing member, invalid UTF-8, an unknown state …) throws
/// ``Unsupported``, and ``EnvelopeCoding/decode(_:)`` then hands the file to
/// `JSONDecoder`, which decodes it or says what is wrong with it. Members it does not
/// know are skipped, as `JSONDecoder` skips them; a member given twice is left to it.
struct EnvelopeReader {
    /// The file is outside this reader's subset (or not JSON at all).
    struct Unsupported: Error {}

    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    static func decode(_ bytes: [UInt8]) throws(Unsupported) -> Envelope {
        let result: Result<Envelope, Unsupported> = bytes.withUnsafeBufferPointer { buffer in
            var reader = EnvelopeReader(buffer)
            do throws(Unsupported) {
                let envelope = try reader.envelope()
                reader.skipSpace()
                guard reader.index == buffer.count else { throw Unsupported() }
                return .success(envelope)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: the envelope's members

    private mutating func envelope() throws(Unsupported) -> Envelope {
        var version: Int?, id: QueueID?, arrival: Date?, sender: String?, size: Int?
        var origin: EnvelopeOrigin?, smtputf8: Bool?, messageFile: MessageFileInfo?
        var recipients: [EnvelopeRecipient]?
        var tenant: String?, campaign: String?, body: String?, dsnRet: String?, dsnEnvid: String?
        var sendPolicy: SendPolicy?
        try beginObject()
        var seen: [String] = []
        while let key = try nextKey(&seen) {
            switch key {
            case "version": version = try int()
            case "id": id = try queueID()
            case "arrival": arrival = try date()
            case "sender": sender = try string()
            case "size": size = try int()
            case "origin": origin = try self.origin()
            case "smtputf8": smtputf8 = try bool()
            case "messageFile": messageFile = try self.messageFile()
            case "recipients": recipients = try array { (r: inout Self) throws(Unsupported) in try r.recipient() }
            case "tenant": tenant = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "campaign": campaign = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "body": body = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "dsnRet": dsnRet = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "dsnEnvid": dsnEnvid = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "sendPolicy": sendPolicy = try optional { (r: inout Self) throws(Unsupported) in try r.sendPolicy() }
            default: try skipValue()
            }
        }
        guard let version, let id, let arrival, let sender, let size, let origin, let smtputf8, let messageFile,
              let recipients
        else { throw Unsupported() }
        var envelope = Envelope(id: id, arrival: arrival, sender: sender, origin: origin, recipients: recipients,
                                body: body, smtputf8: smtputf8, dsnRet: dsnRet, dsnEnvid: dsnEnvid, tenant: tenant,
                                campaign: campaign, sendPolicy: sendPolicy)
        // The initializer rounds the arrival to the microsecond; a decoded date is kept
        // as parsed, which it already is.
        envelope.arrival = arrival
        envelope.version = version
        envelope.size = size
        envelope.messageFile = messageFile
        return envelope
    }

    private mutating func origin() throws(Unsupported) -> EnvelopeOrigin {
        var listener: String?, clientAddress: String?, authenticatedUser: String?, helo: String?, tls: Bool?
        try beginObject()
        var seen: [String] = []
        while let key = try nextKey(&seen) {
            switch key {
            case "listener": listener = try string()
            case "clientAddress": clientAddress = try string()
            case "authenticatedUser":
                authenticatedUser = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "helo": helo = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "tls": tls = try bool()
            default: try skipValue()
            }
        }
        guard let listener, let clientAddress, let tls else { throw Unsupported() }
        return EnvelopeOrigin(listener: listener, clientAddress: clientAddress, authenticatedUser: authenticatedUser,
                              helo: helo, tls: tls)
    }

    private mutating func messageFile() throws(Unsupported) -> MessageFileInfo {
        var size: Int?, checksum: String?
        try beginObject()
        var seen: [String] = []
        while let key = try nextKey(&seen) {
            switch key {
            case "size": size = try int()
            case "checksum": checksum = try string()
            default: try skipValue()
            }
        }
        guard let size, let checksum else { throw Unsupported() }
        return MessageFileInfo(size: size, checksum: checksum)
    }

    private mutating func recipient() throws(Unsupported) -> EnvelopeRecipient {
        var address: String?, state: RecipientState?, attempts: Int?, nextAttempt: Date?, lastReply: String?
        var notify: [String]?, orcpt: String?
        try beginObject()
        var seen: [String] = []
        while let key = try nextKey(&seen) {
            switch key {
            case "address": address = try string()
            case "state":
                guard let known = RecipientState(rawValue: try string()) else { throw Unsupported() }
                state = known
            case "attempts": attempts = try int()
            case "nextAttempt": nextAttempt = try optional { (r: inout Self) throws(Unsupported) in try r.date() }
            case "lastReply": lastReply = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "notify":
                notify = try optional { (r: inout Self) throws(Unsupported) in
                    try r.array { (e: inout Self) throws(Unsupported) in try e.string() }
                }
            case "orcpt": orcpt = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            default: try skipValue()
            }
        }
        guard let address, let state, let attempts else { throw Unsupported() }
        var recipient = EnvelopeRecipient(address: address, notify: notify, orcpt: orcpt)
        recipient.state = state
        recipient.attempts = attempts
        recipient.nextAttempt = nextAttempt
        recipient.lastReply = lastReply
        return recipient
    }

    private mutating func sendPolicy() throws(Unsupported) -> SendPolicy {
        var policy = SendPolicy()
        try beginObject()
        var seen: [String] = []
        while let key = try nextKey(&seen) {
            switch key {
            case "rate":
                policy.rate = try optional { (r: inout Self) throws(Unsupported) in
                    guard let rate = Rate(try r.string()) else { throw Unsupported() }
                    return rate
                }
            case "rateKey": policy.rateKey = try optional { (r: inout Self) throws(Unsupported) in try r.string() }
            case "window": policy.window = try optional { (r: inout Self) throws(Unsupported) in try r.window() }
            case "maxAttempts": policy.maxAttempts = try optional { (r: inout Self) throws(Unsupported) in try r.int() }
            default: try skipValue()
            }
        }
        return policy
    }

    private mutating func window() throws(Unsupported) -> SendWindow {
        var start: String?, end: String?, timeZone: String?, days: [String]?
        try beginObject()
        var seen: [String] = []
        while let key = try nextKey(&seen) {
            switch key {
            case "start": start = try string()
            case "end": end = try string()
            case "timeZone": timeZone = try string()
            case "days":
                days = try optional { (r: inout Self) throws(Unsupported) in
                    try r.array { (e: inout Self) throws(Unsupported) in try e.string() }
                }
            default: try skipValue()
            }
        }
        guard let start, let end, let timeZone,
              let window = try? SendWindow(start: start, end: end, timeZone: timeZone, days: days)
        else { throw Unsupported() }
        return window
    }

    private mutating func queueID() throws(Unsupported) -> QueueID {
        guard let id = QueueID(try string()) else { throw Unsupported() }
        return id
    }

    private mutating func date() throws(Unsupported) -> Date {
        guard let date = SpoolDate.parse(try string()) else { throw Unsupported() }
        return date
    }

    // MARK: JSON

    private static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// The next byte that is not white space, consumed.
    private mutating func take() throws(Unsupported) -> UInt8 {
        skipSpace()
        guard index < bytes.count else { throw Unsupported() }
        defer { index += 1 }
        return bytes[index]
    }

    private mutating func peek() -> UInt8? {
        skipSpace()
        return index < bytes.count ? bytes[index] : nil
    }

    private mutating func expect(_ byte: UInt8) throws(Unsupported) {
        guard try take() == byte else { throw Unsupported() }
    }

    private mutating func literal(_ word: StaticString) throws(Unsupported) {
        skipSpace()
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Unsupported() }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
            throw Unsupported()
        }
        index += count
    }

    /// An object's members are read with ``nextKey()`` until it answers nil.
    private mutating func beginObject() throws(Unsupported) {
        try expect(UInt8(ascii: "{"))
        afterOpening = true
    }

    /// Whether the reader stands just inside `{` or `[` (no comma is due yet).
    private var afterOpening = false

    /// The next member's key, as ``nextKey()``, refusing a key the object has given
    /// before: `JSONDecoder` keeps a repeated member's first value, and whether it
    /// would have read that first value is for it to say.
    private mutating func nextKey(_ seen: inout [String]) throws(Unsupported) -> String? {
        guard let key = try nextKey() else { return nil }
        guard !seen.contains(key) else { throw Unsupported() }
        seen.append(key)
        return key
    }

    /// The next member's key with its `:` consumed, or nil once the object's `}` is.
    private mutating func nextKey() throws(Unsupported) -> String? {
        let first = afterOpening
        afterOpening = false
        switch try take() {
        case UInt8(ascii: "}"): return nil
        case UInt8(ascii: ","): guard !first else { throw Unsupported() }
        case Self.quote:
            guard first else { throw Unsupported() }
            index -= 1
        default: throw Unsupported()
        }
        let key = try string()
        try expect(UInt8(ascii: ":"))
        return key
    }

    private mutating func array<Element>(
        _ element: (inout Self) throws(Unsupported) -> Element
    ) throws(Unsupported) -> [Element] {
        try expect(UInt8(ascii: "["))
        var result: [Element] = []
        if peek() == UInt8(ascii: "]") {
            index += 1
            return result
        }
        while true {
            result.append(try element(&self))
            switch try take() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return result
            default: throw Unsupported()
            }
        }
    }

    /// `null` as nil, anything else as `value` reads it.
    private mutating func optional<Value>(
        _ value: (inout Self) throws(Unsupported) -> Value
    ) throws(Unsupported) -> Value? {
        if peek() == UInt8(ascii: "n") {
            try literal("null")
            return nil
        }
        return try value(&self)
    }

    private mutating func bool() throws(Unsupported) -> Bool {
        switch peek() {
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        default: throw Unsupported()
        }
    }

    /// An integer written as one: an optional minus and digits, no leading zero, no
    /// fraction or exponent, within `Int`.
    private mutating func int() throws(Unsupported) -> Int {
        skipSpace()
        var negative = false
        if index < bytes.count && bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        let start = index
        var value = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let digit = Int(bytes[index] - UInt8(ascii: "0"))
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !o1, !o2 else { throw Unsupported() }
            value = sum
            index += 1
        }
        let digits = index - start
        guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { throw Unsupported() }
        if index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): throw Unsupported()
            default: break
            }
        }
        return value
    }

    /// A string; escapes decoded, the result valid UTF-8.
    private mutating func string() throws(Unsupported) -> String {
        try expect(Self.quote)
        let start = index
        var ascii = true
        // The common case: no escape, read in place.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == Self.quote {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                // ASCII is valid UTF-8 as it stands (and the cheap way to a String).
                let text = ascii ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self)
                index += 1
                guard let text else { throw Unsupported() }
                return text
            }
            if byte == Self.backslash { break }
            guard byte >= 0x20 else { throw Unsupported() }
            ascii = ascii && byte < 0x80
            index += 1
        }
        var decoded = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case Self.quote:
                guard let text = String(validating: decoded, as: UTF8.self) else { throw Unsupported() }
                return text
            case Self.backslash:
                guard index < bytes.count else { throw Unsupported() }
                let escape = bytes[index]
                index += 1
                switch escape {
                case Self.quote, Self.backslash, UInt8(ascii: "/"): decoded.append(escape)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"): try unicodeEscape(into: &decoded)
                default: throw Unsupported()
                }
            default:
                guard byte >= 0x20 else { throw Unsupported() }
                decoded.append(byte)
            }
        }
        throw Unsupported()
    }

    /// `\uXXXX` (the `\u` consumed), with a following low surrogate for a high one.
    private mutating func unicodeEscape(into decoded: inout [UInt8]) throws(Unsupported) {
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar) {
            guard index + 1 < bytes.count, bytes[index] == Self.backslash, bytes[index + 1] == UInt8(ascii: "u")
            else { throw Unsupported() }
            index += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw Unsupported() }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw Unsupported() }
        decoded.append(contentsOf: UTF8.encode(unicode)!)
    }

    private mutating func hex4() throws(Unsupported) -> UInt32 {
        guard index + 4 <= bytes.count else { throw Unsupported() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw Unsupported()
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// Skips a value of any kind (a member this reader does not know).
    private mutating func skipValue() throws(Unsupported) {
        switch peek() {
        case Self.quote: _ = try string()
        case UInt8(ascii: "{"):
            try beginObject()
            while try nextKey() != nil { try skipValue() }
        case UInt8(ascii: "["): _ = try array { (r: inout Self) throws(Unsupported) in try r.skipValue() }
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try bool()
        case UInt8(ascii: "n"): try literal("null")
        default: try skipNumber()
        }
    }

    /// Any JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    private mutating func skipNumber() throws(Unsupported) {
        skipSpace()
        func isDigit(_ i: Int) -> Bool {
            i < bytes.count && bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9")
        }
        func digits() throws(Unsupported) {
            guard isDigit(index) else { throw Unsupported() }
            while isDigit(index) { index += 1 }
        }
        if index < bytes.count && bytes[index] == UInt8(ascii: "-") { index += 1 }
        if index < bytes.count && bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            try digits()
        }
        if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
            index += 1
            try digits()
        }
        if index < bytes.count && (bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")) {
            index += 1
            if index < bytes.count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) {
                index += 1
            }
            try digits()
        }
    }
}
