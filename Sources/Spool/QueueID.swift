import Foundation

/// The name of one queued message: 20 characters, safe in file names, sortable by arrival.
///
/// Shape: 13 uppercase hexadecimal digits of microseconds since the Unix epoch (good
/// until the year 2112), then 7 characters of Crockford base32 (`0-9 A-Z` without
/// `I L O U`) carrying 35 random bits, e.g. `063A1F2B4C5D6` + `K7QZ2M0` =
/// `063A1F2B4C5D6K7QZ2M0`. Both alphabets are in ASCII order, so comparing ids as
/// strings compares arrival times first (`Comparable`, `enumerate`).
///
/// Uniqueness: within one process the time part never repeats: when several ids are
/// made in the same microsecond (or the clock steps back by less than
/// ``monotonicWindow``), the time part is the previous one plus 1 µs. Across processes
/// (the CLI, several nodes) the 35 random bits separate ids made in the same
/// microsecond. An explicit `now` more than ``monotonicWindow`` behind the last id
/// (tests, or a large clock step back) is used as given, and only the random part
/// keeps such ids apart.
///
/// Kept as two integers (the time part and the random part), not as text: an id costs
/// 16 bytes and no allocation, which matters to an index of a million queued messages;
/// ``rawValue`` spells it out when a file name, a log line or JSON needs the text.
public struct QueueID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Microseconds since the Unix epoch (52 bits).
    let time: UInt64
    /// The 7 base32 digits as a 35-bit number, first digit most significant (so that
    /// comparing `(time, random)` compares the text).
    let random: UInt64

    /// Number of characters in an id.
    public static let length = 20
    /// Number of leading hexadecimal characters holding the time.
    public static let timeLength = 13
    /// How far the clock may go back and still be overridden by the monotonic counter.
    public static let monotonicWindow: TimeInterval = 10

    static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
    static let base32Digits: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Validates `string` against the generated shape; `nil` if it does not match.
    /// Use this for anything from outside the process (file names, the CLI, JSON).
    public init?(_ string: String) {
        self.init(utf8: string.utf8)
    }

    /// ``init(_:)`` for text given as UTF-8 bytes (a file name's first 20, say).
    init?(utf8: some Sequence<UInt8>) {
        var time: UInt64 = 0, random: UInt64 = 0, count = 0
        for byte in utf8 {
            if count < QueueID.timeLength {
                guard let value = QueueID.hexValue(byte) else { return nil }
                time = time << 4 | value
            } else {
                guard count < QueueID.length, let value = QueueID.base32Value(byte) else { return nil }
                random = random << 5 | value
            }
            count += 1
        }
        guard count == QueueID.length else { return nil }
        self.time = time
        self.random = random
    }

    private init(time: UInt64, random: UInt64) {
        self.time = time
        self.random = random
    }

    /// The id as text: 13 hexadecimal digits, then 7 base32 digits.
    public var rawValue: String {
        String(unsafeUninitializedCapacity: QueueID.length) { buffer in
            spell(into: buffer)
            return QueueID.length
        }
    }

    /// Writes the id's 20 characters at the start of `buffer`.
    func spell(into buffer: UnsafeMutableBufferPointer<UInt8>) {
        var t = time
        for index in stride(from: QueueID.timeLength - 1, through: 0, by: -1) {
            buffer[index] = QueueID.hexDigits[Int(t & 0xF)]
            t >>= 4
        }
        var r = random
        for index in stride(from: QueueID.length - 1, through: QueueID.timeLength, by: -1) {
            buffer[index] = QueueID.base32Digits[Int(r & 0x1F)]
            r >>= 5
        }
    }

    /// The file name `<id><suffix>` as a C string made on the stack, for `openat` and the
    /// like (no String per file at start-up).
    func withFileName<Result>(_ suffix: StaticString, _ body: (UnsafePointer<CChar>) throws -> Result) rethrows -> Result {
        let count = QueueID.length + suffix.utf8CodeUnitCount
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count + 1) { buffer in
            spell(into: buffer)
            for index in 0..<suffix.utf8CodeUnitCount {
                buffer[QueueID.length + index] = suffix.utf8Start[index]
            }
            buffer[count] = 0
            return try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }

    /// A new id for a message arriving at `now`. Thread-safe; see the type's
    /// documentation for the uniqueness rules.
    public static func generate(now: Date = Date()) -> QueueID {
        let requested = now.timeIntervalSince1970 * 1_000_000
        let micros: UInt64
        if requested <= 0 {
            micros = 0
        } else if requested >= Double(maxMicros) {
            micros = maxMicros
        } else {
            micros = UInt64(requested)
        }
        let time = clock.next(micros)
        var random = SystemRandomNumberGenerator()
        return QueueID(time: time, random: (random.next() as UInt64) & ((1 << 35) - 1))
    }

    /// The arrival time encoded in the id (microsecond resolution).
    public var timestamp: Date {
        Date(timeIntervalSince1970: Double(time) / 1_000_000)
    }

    /// Two lowercase hex digits naming the directory `queue/<xx>/` (and `hold/<xx>/`)
    /// that holds this message: a hash of the whole id, so that ids made in the same
    /// second spread over all 256 directories instead of piling into one.
    public var shard: String {
        QueueID.shardNames[QueueID.shardNumber(self)]
    }

    /// The shard as a number, 0 to 255: FNV-1a, folded to 8 bits.
    static func shardNumber(_ id: QueueID) -> Int {
        let hash = id.fnv1a
        return Int((hash ^ (hash >> 8) ^ (hash >> 16) ^ (hash >> 24)) & 0xFF)
    }

    /// `00` … `ff`: the 256 shard directory names, made once (each fits a small string).
    static let shardNames: [String] = (0..<256).map { value in
        let digits = Array("0123456789abcdef")
        return String([digits[value >> 4], digits[value & 0xF]])
    }

    /// A 32-bit hash of the id, used to pick a byte in the spool lock file.
    var lockSlot: UInt32 { fnv1a & 0x7FFF_FFFF }

    /// FNV-1a (32 bit) of the id's text, spelled on the stack rather than as a String
    /// (the shard of every file is asked for at start-up).
    private var fnv1a: UInt32 {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: QueueID.length) { text in
            spell(into: text)
            var hash: UInt32 = 0x811C_9DC5
            for byte in text {
                hash = (hash ^ UInt32(byte)) &* 0x0100_0193
            }
            return hash
        }
    }

    public var description: String { rawValue }

    public static func < (lhs: QueueID, rhs: QueueID) -> Bool {
        (lhs.time, lhs.random) < (rhs.time, rhs.random)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        guard let id = QueueID(string) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "not a queue id: \(string.debugDescription)")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The value of an uppercase hexadecimal digit.
    static func hexValue(_ byte: UInt8) -> UInt64? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt64(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt64(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// The value of a Crockford base32 digit (uppercase, no `I L O U`).
    static func base32Value(_ byte: UInt8) -> UInt64? {
        base32Values[Int(byte)] < 32 ? UInt64(base32Values[Int(byte)]) : nil
    }

    private static let base32Values: [UInt8] = {
        var table = [UInt8](repeating: 255, count: 256)
        for (value, digit) in base32Digits.enumerated() { table[Int(digit)] = UInt8(value) }
        return table
    }()

    private static let maxMicros: UInt64 = (1 << 52) - 1
    private static let clock = MonotonicMicros()
}

/// Process-wide "last time part handed out", so that ids made in the same microsecond
/// (or across a small clock step back) still differ and sort in creation order.
private final class MonotonicMicros: @unchecked Sendable {
    private let lock = NSLock()
    private var last: UInt64 = 0

    func next(_ requested: UInt64) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let window = UInt64(QueueID.monotonicWindow * 1_000_000)
        let chosen: UInt64
        if requested > last {
            chosen = requested
        } else if last - requested <= window {
            chosen = last + 1
        } else {
            // Far in the past: an explicit date from a caller. Use it as given.
            return requested
        }
        last = chosen
        return chosen
    }
}
