/// The few facts Herald needs from a raw DNS response that c-ares 1.18's parsers do not
/// give: the TTLs of the answer records (`ares_parse_mx_reply` drops them) and the
/// negative-caching TTL of an NXDOMAIN/NODATA response (RFC 2308 §5: the smaller of the
/// SOA record's own TTL and its MINIMUM field). The records themselves are read with
/// c-ares' parsers; this only walks the RR headers. Bounds are checked everywhere: a
/// malformed message gives nil, never a crash.
struct DNSMessageSummary: Equatable {
    struct AnswerRecord: Equatable {
        var type: UInt16
        var ttl: UInt32
    }

    var responseCode: Int
    var answers: [AnswerRecord]
    /// From the SOA record of the authority section, if any.
    var negativeTTL: UInt32?

    static let typeSOA: UInt16 = 6
    static let typeCNAME: UInt16 = 5

    /// The smallest TTL among answer records of `type` and the CNAMEs leading to them,
    /// or nil if there is no record of `type`.
    func answerTTL(type: UInt16) -> UInt32? {
        let relevant = self.answers.filter { $0.type == type || $0.type == Self.typeCNAME }
        guard self.answers.contains(where: { $0.type == type }) else { return nil }
        return relevant.map(\.ttl).min()
    }

    init(responseCode: Int, answers: [AnswerRecord], negativeTTL: UInt32?) {
        self.responseCode = responseCode
        self.answers = answers
        self.negativeTTL = negativeTTL
    }

    init?(_ message: UnsafeRawBufferPointer) {
        var reader = Reader(bytes: message)
        guard let _ = reader.u16(), let flags = reader.u16(), let questions = reader.u16(),
            let answerCount = reader.u16(), let authorityCount = reader.u16(), let _ = reader.u16()
        else { return nil }
        self.responseCode = Int(flags & 0x000F)
        for _ in 0..<questions {
            guard reader.skipName(), reader.skip(4) else { return nil }
        }
        var answers: [AnswerRecord] = []
        for _ in 0..<answerCount {
            guard let header = reader.recordHeader(), reader.skip(Int(header.length)) else { return nil }
            answers.append(AnswerRecord(type: header.type, ttl: header.ttl))
        }
        self.answers = answers
        var negativeTTL: UInt32?
        for _ in 0..<authorityCount {
            guard let header = reader.recordHeader() else { return nil }
            let end = reader.offset + Int(header.length)
            if header.type == Self.typeSOA {
                // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
                guard reader.skipName(), reader.skipName(), reader.skip(16), let minimum = reader.u32() else {
                    return nil
                }
                let candidate = Swift.min(header.ttl, minimum)
                negativeTTL = Swift.min(negativeTTL ?? candidate, candidate)
            }
            guard end <= message.count else { return nil }
            reader.offset = end
        }
        self.negativeTTL = negativeTTL
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        mutating func u16() -> UInt16? {
            guard self.offset + 2 <= self.bytes.count else { return nil }
            defer { self.offset += 2 }
            return UInt16(self.bytes[self.offset]) << 8 | UInt16(self.bytes[self.offset + 1])
        }

        mutating func u32() -> UInt32? {
            guard let high = self.u16(), let low = self.u16() else { return nil }
            return UInt32(high) << 16 | UInt32(low)
        }

        mutating func skip(_ count: Int) -> Bool {
            guard count >= 0, self.offset + count <= self.bytes.count else { return false }
            self.offset += count
            return true
        }

        /// Skips a possibly compressed name (a compression pointer ends it).
        mutating func skipName() -> Bool {
            while self.offset < self.bytes.count {
                let length = Int(self.bytes[self.offset])
                switch length & 0xC0 {
                case 0x00:
                    self.offset += 1
                    if length == 0 { return true }
                    guard self.skip(length) else { return false }
                case 0xC0:
                    return self.skip(2)
                default:
                    return false  // 0x40 / 0x80: obsolete or unknown label types
                }
            }
            return false
        }

        /// Name, type, class, TTL and RDLENGTH of a resource record.
        mutating func recordHeader() -> (type: UInt16, ttl: UInt32, length: UInt16)? {
            guard self.skipName(), let type = self.u16(), let _ = self.u16(), let ttl = self.u32(),
                let length = self.u16()
            else { return nil }
            // RFC 2181 §8: a TTL with the top bit set is treated as zero.
            return (type, ttl & 0x8000_0000 == 0 ? ttl : 0, length)
        }
    }
}
