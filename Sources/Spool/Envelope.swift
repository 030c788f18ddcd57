import Foundation
import MailFormat

#if canImport(Glibc)
import Glibc
#endif

/// Delivery state of one recipient. Only `Delivery` changes it, through `Spool.update`.
public enum RecipientState: String, Codable, Sendable {
    case pending, delivered, deferred, failed
}

/// One forward-path of the message and what has happened to it so far.
public struct EnvelopeRecipient: Codable, Sendable, Equatable {
    /// The mailbox as accepted in RCPT TO, without angle brackets.
    public var address: String
    public var state: RecipientState
    /// Delivery attempts made so far.
    public var attempts: Int
    /// Earliest time of the next attempt (for `deferred`); nil = as soon as possible.
    public var nextAttempt: Date?
    /// The last SMTP reply (or local reason) for this recipient, for logs and bounces.
    public var lastReply: String?
    /// RFC 3461 §4.1 NOTIFY values as given, e.g. `["SUCCESS", "FAILURE"]`; nil = not given.
    public var notify: [String]?
    /// RFC 3461 §4.2 ORCPT as given, e.g. `"rfc822;a@b.example"`.
    public var orcpt: String?

    public init(address: String, notify: [String]? = nil, orcpt: String? = nil) {
        self.address = address
        self.state = .pending
        self.attempts = 0
        self.nextAttempt = nil
        self.lastReply = nil
        self.notify = notify
        self.orcpt = orcpt
    }
}

/// Where and how the message was received.
public struct EnvelopeOrigin: Codable, Sendable, Equatable {
    /// The listening socket, e.g. `"127.0.0.1:2525"`.
    public var listener: String
    /// The client's address and port, e.g. `"127.0.0.1:53422"`.
    public var clientAddress: String
    public var authenticatedUser: String?
    /// The EHLO/HELO argument as given.
    public var helo: String?
    /// Whether the session was under TLS when the message was accepted.
    public var tls: Bool

    public init(listener: String, clientAddress: String, authenticatedUser: String?, helo: String?, tls: Bool) {
        self.listener = listener
        self.clientAddress = clientAddress
        self.authenticatedUser = authenticatedUser
        self.helo = helo
        self.tls = tls
    }
}

/// Size and checksum of the `.msg` file, recorded at commit and verified at load.
public struct MessageFileInfo: Codable, Sendable, Equatable {
    /// Octets in the `.msg` file.
    public var size: Int
    /// `"crc32c:"` + 8 lowercase hex digits (see ``CRC32C``).
    public var checksum: String

    public init(size: Int, checksum: String) {
        self.size = size
        self.checksum = checksum
    }
}

/// The `.env` file: everything about a queued message except its content.
///
/// Stored as pretty-printed JSON with sorted keys; keys whose value is nil are left
/// out. Dates are ISO-8601 in UTC with microseconds, e.g.
/// `"2025-03-04T05:06:07.123456Z"`; dates are kept to the microsecond (``Spool/store``
/// returns the envelope exactly as it will read back).
public struct Envelope: Codable, Sendable, Equatable {
    /// Format version of this file; this code writes and reads version 1.
    public var version: Int
    public var id: QueueID
    /// When the message was accepted.
    public var arrival: Date
    /// The reverse-path without angle brackets; `""` is the null reverse-path `<>`.
    public var sender: String
    /// Message size in octets (equal to `messageFile.size`; filled in by `Spool.store`).
    public var size: Int
    public var origin: EnvelopeOrigin
    public var tenant: String?
    public var campaign: String?
    /// `"7BIT"` or `"8BITMIME"` as declared with MAIL FROM BODY= (RFC 6152); nil = not given.
    public var body: String?
    /// MAIL FROM carried SMTPUTF8 (RFC 6531).
    public var smtputf8: Bool
    /// RFC 3461 §4.3 RET: `"FULL"` or `"HDRS"`.
    public var dsnRet: String?
    /// RFC 3461 §4.4 ENVID, as given (xtext-decoded by the caller if it wishes).
    public var dsnEnvid: String?
    /// Filled in by `Spool.store`.
    public var messageFile: MessageFileInfo
    public var recipients: [EnvelopeRecipient]
    /// Pacing beyond the configured throttles (campaign messages); nil = none.
    public var sendPolicy: SendPolicy?

    /// The version written by this code.
    public static let currentVersion = 1

    public init(
        id: QueueID, arrival: Date, sender: String, origin: EnvelopeOrigin, recipients: [EnvelopeRecipient],
        body: String? = nil, smtputf8: Bool = false, dsnRet: String? = nil, dsnEnvid: String? = nil,
        tenant: String? = nil, campaign: String? = nil, sendPolicy: SendPolicy? = nil
    ) {
        self.sendPolicy = sendPolicy
        self.version = Envelope.currentVersion
        self.id = id
        self.arrival = SpoolDate.normalized(arrival)
        self.sender = sender
        self.size = 0
        self.origin = origin
        self.tenant = tenant
        self.campaign = campaign
        self.body = body
        self.smtputf8 = smtputf8
        self.dsnRet = dsnRet
        self.dsnEnvid = dsnEnvid
        self.messageFile = MessageFileInfo(size: 0, checksum: "")
        self.recipients = recipients
    }

    /// The same envelope with every date rounded to the microsecond, i.e. as it reads back.
    func normalizingDates() -> Envelope {
        var copy = self
        copy.arrival = SpoolDate.normalized(arrival)
        for index in copy.recipients.indices {
            if let next = copy.recipients[index].nextAttempt {
                copy.recipients[index].nextAttempt = SpoolDate.normalized(next)
            }
        }
        return copy
    }
}

/// JSON encoding and decoding of envelopes, in one place.
public enum EnvelopeCoding {
    /// The exact bytes of a `.env` file (pretty-printed, sorted keys, trailing newline),
    /// written by ``EnvelopeWriter`` (the same bytes as ``encodeWithFoundation(_:)``).
    public static func encode(_ envelope: Envelope) throws -> [UInt8] {
        EnvelopeWriter.encode(envelope)
    }

    /// `JSONEncoder`'s writing of `envelope`: the reference ``EnvelopeWriter`` matches byte
    /// for byte.
    static func encodeWithFoundation(_ envelope: Envelope) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(SpoolDate.format(date))
        }
        var bytes = [UInt8](try encoder.encode(envelope))
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// The envelope in `bytes`. Files as Herald writes them are read by
    /// ``EnvelopeReader``; anything else (a file edited by hand into a form that reader
    /// does not take, or one that is not an envelope) goes to `JSONDecoder`, whose error
    /// says what is wrong.
    public static func decode(_ bytes: [UInt8]) throws -> Envelope {
        if let envelope = try? EnvelopeReader.decode(bytes) {
            return envelope
        }
        return try decodeWithFoundation(bytes)
    }

    /// `JSONDecoder`'s reading of `bytes` (the reference ``EnvelopeReader`` agrees with).
    static func decodeWithFoundation(_ bytes: [UInt8]) throws -> Envelope {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let string = try container.decode(String.self)
            guard let date = SpoolDate.parse(string) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not an ISO-8601 date: \(string.debugDescription)")
            }
            return date
        }
        return try decoder.decode(Envelope.self, from: Data(bytes))
    }
}

/// ISO-8601 dates with microseconds in UTC, without a shared formatter object (so no
/// locking and no locale surprises).
enum SpoolDate {
    /// Integer microseconds since the epoch, rounded to nearest.
    static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    static func date(micros: Int64) -> Date {
        Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    /// `date` as it will read back from an envelope.
    static func normalized(_ date: Date) -> Date {
        self.date(micros: micros(date))
    }

    /// `"YYYY-MM-DDTHH:MM:SS.ffffffZ"`.
    static func format(_ date: Date) -> String {
        MailDate.iso8601(units: micros(date), fractionDigits: 6)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)`; digits past the sixth fraction
    /// digit are ignored. A postmaster who edits an envelope by hand may drop the
    /// fraction or write an offset.
    static func parse(_ string: String) -> Date? {
        let b = Array(string.utf8)
        func number(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= b.count else { return nil }
            var value = 0
            for index in start..<(start + count) {
                let byte = b[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        func byte(_ index: Int) -> UInt8? { index < b.count ? b[index] : nil }
        guard let year = number(0, 4), byte(4) == UInt8(ascii: "-"), let month = number(5, 2),
            byte(7) == UInt8(ascii: "-"), let day = number(8, 2),
            byte(10) == UInt8(ascii: "T") || byte(10) == UInt8(ascii: "t"),
            let hour = number(11, 2), byte(13) == UInt8(ascii: ":"), let minute = number(14, 2),
            byte(16) == UInt8(ascii: ":"), let second = number(17, 2),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0
        if byte(index) == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while let d = byte(index), d >= UInt8(ascii: "0"), d <= UInt8(ascii: "9") {
                if digits < 6 {
                    fraction = fraction * 10 + Int(d - UInt8(ascii: "0"))
                }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 6)..<6 { fraction *= 10 }
        }
        var offsetSeconds = 0
        switch byte(index) {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let oh = number(index + 1, 2), byte(index + 3) == UInt8(ascii: ":"),
                let om = number(index + 4, 2)
            else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (byte(index) == UInt8(ascii: "-") ? -1 : 1)
            index += 6
        default:
            return nil
        }
        guard index == b.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = Int64(timegm(&parts)) - Int64(offsetSeconds)
        return date(micros: seconds * 1_000_000 + Int64(fraction))
    }
}
