/// Harness 6: raw DNS responses — `DNSMessageSummary` from DNS/DNSMessage.swift (compiled
/// into this module: the DNS module itself needs c-ares), which reads answer TTLs and the
/// negative-caching TTL out of whatever a DNS server sends.
///
/// Input: the bytes are parsed as a DNS message as they are; then the same bytes drive a
/// small encoder that builds a well-formed response (questions, answers, authority
/// records with or without an SOA, compressed or plain names) and, maybe, truncates it.
///
/// Invariants:
/// - Any bytes: no trap; a summary, when there is one, has an RCODE of 0…15, exactly as
///   many answers as ANCOUNT says, no TTL with the top bit set (RFC 2181 §8), and
///   `answerTTL(type:)` is nil exactly when no answer has that type, else the smallest
///   TTL among the answers of that type and the CNAMEs.
/// - A well-formed response reads back as what was encoded: RCODE, each answer's type and
///   TTL, and the negative TTL as RFC 2308 §5 defines it (the smaller of the SOA's TTL and
///   its MINIMUM, the smallest over the SOAs).
/// - A response cut short anywhere is refused (nil), never read past its end.
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let raw = bytes(data, size)
    if let summary = raw.withUnsafeBytes({ DNSMessageSummary($0) }) {
        checkSummary(summary, ancount: raw.count >= 8 ? Int(raw[6]) << 8 | Int(raw[7]) : -1)
    }

    var input = FuzzInput(raw)
    let built = build(&input)
    let parsed = built.message.withUnsafeBytes { DNSMessageSummary($0) }
    invariant(parsed == built.expected, "built \(show(built.message, limit: 200)): read \(String(describing: parsed)), expected \(built.expected)")
    if let parsed { checkSummary(parsed, ancount: parsed.answers.count) }
    if !built.message.isEmpty {
        let cut = input.u16() % built.message.count
        let truncated = Array(built.message[..<cut])
        let summary = truncated.withUnsafeBytes { DNSMessageSummary($0) }
        invariant(summary == nil, "a response cut at \(cut) of \(built.message.count) octets read as \(String(describing: summary))")
    }
    return 0
}

func checkSummary(_ s: DNSMessageSummary, ancount: Int) {
    invariant((0...15).contains(s.responseCode), "RCODE \(s.responseCode)")
    invariant(s.answers.count == ancount, "\(s.answers.count) answers, ANCOUNT \(ancount)")
    invariant(s.answers.allSatisfy { $0.ttl & 0x8000_0000 == 0 }, "a TTL with the top bit set: \(s.answers)")
    for type: UInt16 in [1, 5, 6, 15, 28] {
        let ttl = s.answerTTL(type: type)
        if !s.answers.contains(where: { $0.type == type }) {
            invariant(ttl == nil, "answerTTL(\(type)) = \(String(describing: ttl)) without such an answer")
        } else {
            let expected = s.answers.filter { $0.type == type || $0.type == 5 }.map(\.ttl).min()
            invariant(ttl == expected, "answerTTL(\(type)) = \(String(describing: ttl)), expected \(String(describing: expected))")
        }
    }
}

struct Built {
    var message: [UInt8] = []
    var expected: DNSMessageSummary
}

func u16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
func u32(_ v: UInt32) -> [UInt8] { u16(Int(v >> 16)) + u16(Int(v & 0xFFFF)) }

/// A name: up to three labels, then the root or a compression pointer.
func name(_ input: inout FuzzInput) -> [UInt8] {
    var out: [UInt8] = []
    for _ in 0..<(input.byte() % 4) {
        let length = 1 + Int(input.byte() % 63)
        out.append(UInt8(length))
        for _ in 0..<length { out.append(UInt8(ascii: "a") + input.byte() % 26) }
    }
    if input.bool() {
        out += [0xC0, 0x0C]
    } else {
        out.append(0)
    }
    return out
}

func ttl(_ input: inout FuzzInput) -> UInt32 {
    UInt32(input.u16()) << 16 | UInt32(input.u16())
}

func build(_ input: inout FuzzInput) -> Built {
    let rcode = Int(input.byte() % 16)
    let questions = Int(input.byte() % 3)
    let answers = Int(input.byte() % 6)
    let authority = Int(input.byte() % 4)
    var m: [UInt8] = u16(input.u16()) + u16(0x8180 | rcode) + u16(questions) + u16(answers) + u16(authority) + u16(0)
    for _ in 0..<questions {
        m += name(&input) + u16(15) + u16(1)
    }
    var expectedAnswers: [DNSMessageSummary.AnswerRecord] = []
    for _ in 0..<answers {
        let type = [1, 5, 15, 28, 6, 16][Int(input.byte() % 6)]
        let t = ttl(&input)
        let length = Int(input.byte() % 40)
        m += name(&input) + u16(type) + u16(1) + u32(t) + u16(length)
        for _ in 0..<length { m.append(input.byte()) }
        expectedAnswers.append(.init(type: UInt16(type), ttl: t & 0x8000_0000 == 0 ? t : 0))
    }
    var negative: UInt32?
    for _ in 0..<authority {
        let t = ttl(&input)
        let masked = t & 0x8000_0000 == 0 ? t : 0
        if input.bool() {
            let minimum = ttl(&input)
            var rdata = name(&input) + name(&input)
            for _ in 0..<4 { rdata += u32(ttl(&input)) }
            rdata += u32(minimum)
            m += name(&input) + u16(6) + u16(1) + u32(t) + u16(rdata.count) + rdata
            let candidate = min(masked, minimum)
            negative = min(negative ?? candidate, candidate)
        } else {
            let length = Int(input.byte() % 40)
            m += name(&input) + u16(2) + u16(1) + u32(t) + u16(length)
            for _ in 0..<length { m.append(input.byte()) }
        }
    }
    return Built(message: m, expected: DNSMessageSummary(responseCode: rcode, answers: expectedAnswers, negativeTTL: negative))
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
