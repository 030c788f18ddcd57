import Foundation

/// An encoder written for the `.env` format alone, for speed: every message the spool
/// accepts, and every state change of one, writes an envelope. It appends the bytes in
/// one pass, straight from the ``Envelope``, without Foundation's `JSONEncoder`.
///
/// Its output is byte for byte what ``EnvelopeCoding/encodeWithFoundation(_:)`` writes
/// (the reference, kept for the tests): members in sorted key order, two spaces of
/// indentation per level, `" : "` between key and value, an empty array or object as
/// an opening bracket, an empty line and the closing bracket, members whose value is nil
/// left out, integers in decimal, dates as ``SpoolDate/format(_:)`` writes them, and
/// strings escaped as that encoder escapes them: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, other control characters (U+0000 to U+001F) as `\u00xx` in lowercase hex,
/// everything else (`/`, DEL, U+2028, non-ASCII) as raw UTF-8. It takes every envelope:
/// no member of the format needs the reference to be written.
struct EnvelopeWriter {
    private var out: [UInt8] = []

    /// The bytes of the `.env` file for `envelope`, with its trailing newline.
    static func encode(_ envelope: Envelope) -> [UInt8] {
        var writer = EnvelopeWriter()
        writer.out.reserveCapacity(640 + 320 * envelope.recipients.count)
        writer.envelope(envelope)
        writer.out.append(UInt8(ascii: "\n"))
        return writer.out
    }

    // MARK: the envelope's members, in sorted key order

    private mutating func envelope(_ e: Envelope) {
        var o = Object(depth: 1)
        o.begin(&self)
        o.member("arrival", &self) { $0.date(e.arrival) }
        if let body = e.body { o.member("body", &self) { $0.string(body) } }
        if let campaign = e.campaign { o.member("campaign", &self) { $0.string(campaign) } }
        if let dsnEnvid = e.dsnEnvid { o.member("dsnEnvid", &self) { $0.string(dsnEnvid) } }
        if let dsnRet = e.dsnRet { o.member("dsnRet", &self) { $0.string(dsnRet) } }
        o.member("id", &self) { $0.queueID(e.id) }
        o.member("messageFile", &self) { $0.messageFile(e.messageFile, depth: 2) }
        o.member("origin", &self) { $0.origin(e.origin, depth: 2) }
        o.member("recipients", &self) { w in
            w.array(e.recipients, depth: 2) { (w: inout Self, r) in w.recipient(r, depth: 3) }
        }
        if let policy = e.sendPolicy { o.member("sendPolicy", &self) { $0.sendPolicy(policy, depth: 2) } }
        o.member("sender", &self) { $0.string(e.sender) }
        o.member("size", &self) { $0.int(e.size) }
        o.member("smtputf8", &self) { $0.bool(e.smtputf8) }
        if let tenant = e.tenant { o.member("tenant", &self) { $0.string(tenant) } }
        o.member("version", &self) { $0.int(e.version) }
        o.end(&self)
    }

    private mutating func messageFile(_ m: MessageFileInfo, depth: Int) {
        var o = Object(depth: depth)
        o.begin(&self)
        o.member("checksum", &self) { $0.string(m.checksum) }
        o.member("size", &self) { $0.int(m.size) }
        o.end(&self)
    }

    private mutating func origin(_ origin: EnvelopeOrigin, depth: Int) {
        var o = Object(depth: depth)
        o.begin(&self)
        if let user = origin.authenticatedUser { o.member("authenticatedUser", &self) { $0.string(user) } }
        o.member("clientAddress", &self) { $0.string(origin.clientAddress) }
        if let helo = origin.helo { o.member("helo", &self) { $0.string(helo) } }
        o.member("listener", &self) { $0.string(origin.listener) }
        o.member("tls", &self) { $0.bool(origin.tls) }
        o.end(&self)
    }

    private mutating func recipient(_ r: EnvelopeRecipient, depth: Int) {
        var o = Object(depth: depth)
        o.begin(&self)
        o.member("address", &self) { $0.string(r.address) }
        o.member("attempts", &self) { $0.int(r.attempts) }
        if let reply = r.lastReply { o.member("lastReply", &self) { $0.string(reply) } }
        if let next = r.nextAttempt { o.member("nextAttempt", &self) { $0.date(next) } }
        if let notify = r.notify { o.member("notify", &self) { $0.strings(notify, depth: depth + 1) } }
        if let orcpt = r.orcpt { o.member("orcpt", &self) { $0.string(orcpt) } }
        o.member("state", &self) { $0.string(r.state.rawValue) }
        o.end(&self)
    }

    private mutating func sendPolicy(_ policy: SendPolicy, depth: Int) {
        var o = Object(depth: depth)
        o.begin(&self)
        if let max = policy.maxAttempts { o.member("maxAttempts", &self) { $0.int(max) } }
        if let rate = policy.rate { o.member("rate", &self) { $0.string(rate.text) } }
        if let key = policy.rateKey { o.member("rateKey", &self) { $0.string(key) } }
        if let window = policy.window { o.member("window", &self) { $0.window(window, depth: depth + 1) } }
        o.end(&self)
    }

    private mutating func window(_ window: SendWindow, depth: Int) {
        var o = Object(depth: depth)
        o.begin(&self)
        if let days = window.days { o.member("days", &self) { $0.strings(days, depth: depth + 1) } }
        o.member("end", &self) { $0.string(window.end) }
        o.member("start", &self) { $0.string(window.start) }
        o.member("timeZone", &self) { $0.string(window.timeZone) }
        o.end(&self)
    }

    // MARK: layout

    /// The members of one object whose members sit at `depth` (the top level's at 1).
    private struct Object {
        let depth: Int
        var empty = true

        func begin(_ w: inout EnvelopeWriter) {
            w.out.append(UInt8(ascii: "{"))
        }

        mutating func member(_ key: StaticString, _ w: inout EnvelopeWriter, value: (inout EnvelopeWriter) -> Void) {
            w.separator(first: empty, depth: depth)
            empty = false
            w.out.append(UInt8(ascii: "\""))
            w.raw(key)
            w.raw("\" : ")
            value(&w)
        }

        func end(_ w: inout EnvelopeWriter) {
            w.close(UInt8(ascii: "}"), empty: empty, depth: depth)
        }
    }

    /// Before an element or member: a comma after the previous one, a new line, the indentation.
    private mutating func separator(first: Bool, depth: Int) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\n"))
        indent(depth)
    }

    /// The closing bracket of a container whose elements sit at `depth`; an empty one
    /// still gets its line breaks, with an empty line between the brackets.
    private mutating func close(_ bracket: UInt8, empty: Bool, depth: Int) {
        if empty { out.append(UInt8(ascii: "\n")) }
        out.append(UInt8(ascii: "\n"))
        indent(depth - 1)
        out.append(bracket)
    }

    private mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    private mutating func indent(_ depth: Int) {
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * depth))
    }

    private mutating func array<Element>(_ elements: [Element], depth: Int, _ element: (inout Self, Element) -> Void) {
        out.append(UInt8(ascii: "["))
        for (index, value) in elements.enumerated() {
            separator(first: index == 0, depth: depth)
            element(&self, value)
        }
        close(UInt8(ascii: "]"), empty: elements.isEmpty, depth: depth)
    }

    private mutating func strings(_ values: [String], depth: Int) {
        array(values, depth: depth) { (w: inout Self, value) in w.string(value) }
    }

    // MARK: values

    private mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    private mutating func int(_ value: Int) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    private mutating func date(_ date: Date) {
        string(SpoolDate.format(date))
    }

    private mutating func queueID(_ id: QueueID) {
        out.append(UInt8(ascii: "\""))
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: QueueID.length) { text in
            id.spell(into: text)
            out.append(contentsOf: text)
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `value` in quotes; the bytes that need no escape are copied in runs.
    private mutating func string(_ value: String) {
        out.append(UInt8(ascii: "\""))
        var text = value
        text.withUTF8 { bytes in
            var run = 0
            for index in bytes.indices {
                let byte = bytes[index]
                if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") { continue }
                if run < index { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<index])) }
                run = index + 1
                let short: UInt8? = switch byte {
                case UInt8(ascii: "\""): UInt8(ascii: "\"")
                case UInt8(ascii: "\\"): UInt8(ascii: "\\")
                case 0x08: UInt8(ascii: "b")
                case 0x09: UInt8(ascii: "t")
                case 0x0A: UInt8(ascii: "n")
                case 0x0C: UInt8(ascii: "f")
                case 0x0D: UInt8(ascii: "r")
                default: nil
                }
                out.append(UInt8(ascii: "\\"))
                if let short {
                    out.append(short)
                } else {
                    raw("u00")
                    out.append(Self.hexDigits[Int(byte >> 4)])
                    out.append(Self.hexDigits[Int(byte & 0x0F)])
                }
            }
            if run < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...])) }
        }
        out.append(UInt8(ascii: "\""))
    }
}
