import Foundation
import HeraldTestSupport
import Testing

@testable import Spool

/// The hand-written envelope reader against `JSONDecoder`, the reference: whatever the
/// reader accepts, it reads exactly as `JSONDecoder` does.
@Suite("Envelope reader")
struct EnvelopeReaderTests {
    /// Envelopes with every member the format has, and text the encoder escapes.
    static func samples() throws -> [Envelope] {
        var full = EnvelopeTests.sample()
        full.sendPolicy = SendPolicy(rate: Rate("2.5/m"), rateKey: "campaign:7",
                                     window: try SendWindow(start: "22:00", end: "06:00", timeZone: "Europe/Paris",
                                                            days: ["mon", "fri"]),
                                     maxAttempts: 4)
        full.recipients[0].lastReply = "550 5.1.1 \"quoted\" back\\slash\ttab\nnew line \u{1} 😀 /slash"
        full.recipients[0].state = .failed
        var plain = Envelope(id: QueueID.generate(), arrival: Date(timeIntervalSince1970: 1_765_000_000.000001),
                             sender: "a@b.test",
                             origin: EnvelopeOrigin(listener: "l", clientAddress: "c", authenticatedUser: nil, helo: nil,
                                                    tls: false),
                             recipients: [EnvelopeRecipient(address: "x@y.test")])
        plain.size = 12
        plain.messageFile = MessageFileInfo(size: 12, checksum: "crc32c:0123abcd")
        var windowOnly = plain
        windowOnly.id = QueueID.generate()
        windowOnly.sendPolicy = SendPolicy(window: try SendWindow(start: "09:00", end: "18:00", timeZone: "UTC"))
        return [full, plain, windowOnly]
    }

    @Test("files as Herald writes them: the reader takes them and agrees with JSONDecoder")
    func writtenFiles() throws {
        for envelope in try Self.samples() {
            let bytes = try EnvelopeCoding.encode(envelope)
            let read = try EnvelopeReader.decode(bytes)
            #expect(read == envelope)
            #expect(read == (try EnvelopeCoding.decodeWithFoundation(bytes)))
            #expect(read.sendPolicy?.window?.zone == envelope.sendPolicy?.window?.zone)
        }
    }

    /// The sample envelope in other spellings a postmaster's editor or `jq -c` produces.
    static let spellings: [String] = [
        // compact, members in another order, unknown members of every kind, nulls
        #"{"version":1,"id":"ID","sender":"","size":3,"smtputf8":false,"arrival":"2025-01-02T03:04:05Z","#
            + #""origin":{"tls":true,"listener":"l","clientAddress":"c","authenticatedUser":null,"x":[1,{"y":null}]},"#
            + #""messageFile":{"checksum":"crc32c:00000000","size":3},"extra":-1.5e+3,"flag":true,"#
            + #""recipients":[{"address":"\u00e9\ud83d\ude00@x.test","state":"deferred","attempts":0,"#
            + #""nextAttempt":null,"notify":["NEVER"]}],"tenant":null,"sendPolicy":{"rate":null,"window":null}}"#,
        // escapes in keys and values, an offset date, white space everywhere
        "{ \"version\" : 1 , \"id\" : \"ID\" , \"sender\" : \"a\\/b\\\"c\" , \"size\" : 0 ,\r\n\t\"smtputf8\" : true ,"
            + " \"arrival\" : \"2025-01-02T03:04:05.5+02:00\" , \"origin\" : { \"listener\" : \"\" ,"
            + " \"clientAddress\" : \"\" , \"tls\" : false } , \"messageFile\" : { \"size\" : 0 , \"checksum\" : \"\" } ,"
            + " \"recipients\" : [ ] , \"sendPolicy\" : { \"maxAttempts\" : 0 } }\n",
    ]

    @Test("other spellings of valid JSON read as JSONDecoder reads them")
    func otherSpellings() throws {
        for spelling in Self.spellings {
            let bytes = Array(spelling.replacingOccurrences(of: "ID", with: QueueID.generate().rawValue).utf8)
            let reference = try EnvelopeCoding.decodeWithFoundation(bytes)
            #expect(try EnvelopeReader.decode(bytes) == reference, "\(spelling)")
            #expect(try EnvelopeCoding.decode(bytes) == reference)
        }
    }

    @Test("what the reader does not take still decodes, or fails, as JSONDecoder says")
    func fallBack() throws {
        let good = String(decoding: try EnvelopeCoding.encode(try Self.samples()[1]), as: UTF8.self)
        let variants = [
            good.replacingOccurrences(of: "\"attempts\" : 0", with: "\"attempts\" : 0.0"),
            good.replacingOccurrences(of: "\"attempts\" : 0", with: "\"attempts\" : 1e1"),
            good.replacingOccurrences(of: "\"state\" : \"pending\"", with: "\"state\" : \"lost\""),
            good.replacingOccurrences(of: "\"tls\" : false", with: "\"tls\" : 0"),
            good.replacingOccurrences(of: "\"size\" : 12,", with: ""),
            good + "x",
            String(good.dropLast(3)),
            "[]",
            "",
            // a member given twice: JSONDecoder keeps the first
            good.replacingOccurrences(of: "\"sender\" :", with: "\"sender\" : \"first\", \"sender\" :"),
        ]
        for variant in variants {
            let bytes = Array(variant.utf8)
            #expect((try? EnvelopeReader.decode(bytes)) == nil, "the reader took \(variant)")
            let reference = Result { try EnvelopeCoding.decodeWithFoundation(bytes) }
            let decoded = Result { try EnvelopeCoding.decode(bytes) }
            switch (reference, decoded) {
            case (.success(let a), .success(let b)): #expect(a == b)
            case (.failure(let a), .failure(let b)): #expect("\(a)" == "\(b)")
            default: Issue.record("decode and JSONDecoder disagree on \(variant)")
            }
        }
    }

    @Test("mutated files: the reader never accepts what JSONDecoder reads otherwise or refuses")
    func mutations() throws {
        var random = SplitMix64(state: 0x454E_5645_4C4F)
        let bases = try Self.samples().map { try EnvelopeCoding.encode($0) }
            + Self.spellings.map { Array($0.replacingOccurrences(of: "ID", with: QueueID.generate().rawValue).utf8) }
        let alphabet = Array(#"{}[]:,"\/ 0123456789.-+eEtrufalsn"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xFF]
        var accepted = 0
        for round in 0..<6000 {
            var bytes = bases[round % bases.count]
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let at = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[at] = alphabet.randomElement(using: &random)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet.randomElement(using: &random)!, at: at)
                }
                if bytes.isEmpty { break }
            }
            guard let read = try? EnvelopeReader.decode(bytes) else { continue }
            accepted += 1
            let reference = try? EnvelopeCoding.decodeWithFoundation(bytes)
            #expect(read == reference, "\(String(decoding: bytes, as: UTF8.self))")
        }
        // Mutations that keep the file valid (inside a string, white space) are common:
        // the comparison above ran on a good share of them.
        #expect(accepted > 500)
    }
}
