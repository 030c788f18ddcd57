import Testing

@testable import Rendering

@Suite("Render: unsubscribe tokens")
struct RenderTokenTests {
    let key = Array("0123456789abcdef0123456789abcdef".utf8)
    let otherKey = Array("fedcba9876543210fedcba9876543210".utf8)
    let tenant = "6f1c2a4e-8a8b-4b7e-9f3e-2d1c0b9a8f7e"
    let list = "0b6d2f1e-1111-4c2d-8e3f-abcdefabcdef"
    let campaign = "9a8b7c6d-2222-4e5f-a0b1-c2d3e4f5a6b7"
    let subscriber = "3c4d5e6f-3333-4a5b-9c8d-7e6f5a4b3c2d"

    @Test("round trip for UUID, numeric, upper-case and free-form ids, with and without campaign")
    func roundTrip() {
        let cases: [(String, String, String?, String)] = [
            (subscriber, list, campaign, tenant),
            ("42", "7", "1000000000000", "1"),
            (subscriber.uppercased(), list, nil, tenant),
            ("sub:ünïcode/ä", "list with spaces", "c", "t-1"),
            ("007", "0", "18446744073709551615", "18446744073709551616"),  // not canonical / too big: strings
            ("3C4D5E6F-3333-4a5b-9c8d-7E6F5A4B3C2D", "", "", "x"),      // mixed-case UUID: a string
        ]
        for (s, l, c, t) in cases {
            let token = UnsubscribeToken.make(subscriber: s, list: l, campaign: c, tenant: t, key: key)
            #expect(token.utf8.allSatisfy { Base64URL.alphabet.contains($0) || $0 == UInt8(ascii: ".") })
            let fields = UnsubscribeToken.verify(token, key: key)
            #expect(fields == UnsubscribeToken(subscriber: s, list: l, campaign: c, tenant: t))
        }
    }

    @Test("a UUID token is compact and URL-safe")
    func compact() {
        let token = UnsubscribeToken.make(subscriber: subscriber, list: list, campaign: campaign, tenant: tenant, key: key)
        #expect(token.count < 150)
        #expect(!token.contains("=") && !token.contains("+") && !token.contains("/"))
    }

    @Test("tokens are deterministic per fields and differ across subscribers")
    func distinct() {
        let a = UnsubscribeToken.make(subscriber: "1", list: "2", campaign: "3", tenant: "4", key: key)
        let b = UnsubscribeToken.make(subscriber: "1", list: "2", campaign: "3", tenant: "4", key: key)
        let c = UnsubscribeToken.make(subscriber: "2", list: "2", campaign: "3", tenant: "4", key: key)
        #expect(a == b)
        #expect(a != c)
        #expect(UnsubscribeToken.make(subscriber: "1", list: "2", campaign: "3", tenant: "4", key: otherKey) != a)
    }

    @Test("changing any character of the token makes it invalid")
    func flipEveryCharacter() {
        let token = Array(UnsubscribeToken.make(subscriber: subscriber, list: list, campaign: campaign, tenant: tenant, key: key).utf8)
        var accepted = 0
        for i in token.indices {
            for replacement in Base64URL.alphabet + [UInt8(ascii: "."), UInt8(ascii: "=")] where replacement != token[i] {
                var forged = token
                forged[i] = replacement
                if UnsubscribeToken.verify(String(decoding: forged, as: UTF8.self), key: key) != nil { accepted += 1 }
            }
            // Flipping single bits of the raw bytes as well.
            for bit in 0..<8 {
                var forged = token
                forged[i] ^= UInt8(1 << bit)
                if UnsubscribeToken.verify(String(decoding: forged, as: UTF8.self), key: key) != nil { accepted += 1 }
            }
        }
        #expect(accepted == 0)
    }

    @Test("flipping any byte of the decoded payload or MAC fails")
    func flipDecodedBytes() {
        let token = UnsubscribeToken.make(subscriber: subscriber, list: list, campaign: campaign, tenant: tenant, key: key)
        let parts = token.split(separator: ".").map { Base64URL.decode(Array($0.utf8))! }
        for part in 0..<2 {
            for i in parts[part].indices {
                for bit in 0..<8 {
                    var p = parts
                    p[part][i] ^= UInt8(1 << bit)
                    let forged = String(decoding: Base64URL.encode(p[0]) + [UInt8(ascii: ".")] + Base64URL.encode(p[1]), as: UTF8.self)
                    #expect(UnsubscribeToken.verify(forged, key: key) == nil)
                }
            }
        }
    }

    @Test("a token cannot be edited into another subscriber's, nor swapped with another MAC")
    func noEditing() {
        let mine = UnsubscribeToken.make(subscriber: "1001", list: "5", campaign: "9", tenant: "1", key: key)
        let theirs = UnsubscribeToken.make(subscriber: "1002", list: "5", campaign: "9", tenant: "1", key: key)
        let minePayload = Base64URL.decode(Array(mine.split(separator: ".")[0].utf8))!
        // Rewrite the subscriber inside my payload to 1002, keep my MAC.
        var edited = minePayload
        let index = edited.firstIndex(of: UInt8(1001 & 0xFF))!
        edited[index] = UInt8(1002 & 0xFF)
        let forged = String(decoding: Base64URL.encode(edited), as: UTF8.self) + "." + mine.split(separator: ".")[1]
        #expect(UnsubscribeToken.verify(forged, key: key) == nil)
        // Their payload with my MAC, and mine with theirs.
        let swapped1 = theirs.split(separator: ".")[0] + "." + mine.split(separator: ".")[1]
        let swapped2 = mine.split(separator: ".")[0] + "." + theirs.split(separator: ".")[1]
        #expect(UnsubscribeToken.verify(String(swapped1), key: key) == nil)
        #expect(UnsubscribeToken.verify(String(swapped2), key: key) == nil)
        #expect(UnsubscribeToken.verify(theirs, key: key)?.subscriber == "1002")
    }

    @Test("wrong key, malformed tokens and garbage are rejected")
    func rejects() {
        let token = UnsubscribeToken.make(subscriber: "1", list: "2", campaign: nil, tenant: "3", key: key)
        #expect(UnsubscribeToken.verify(token, key: otherKey) == nil)
        #expect(UnsubscribeToken.verify(token, keys: [otherKey, key])?.subscriber == "1")  // key rotation
        for bad in ["", ".", "abc", "abc.def", token + ".", "." + token, token + "A", token + "=", token.replacingOccurrences(of: ".", with: ".."),
                    String(token.dropLast()), String(repeating: "A", count: 5000)] {
            #expect(UnsubscribeToken.verify(bad, key: key) == nil, "\(bad)")
        }
        // A MAC-valid payload with trailing garbage is impossible to make without the key,
        // but the parser refuses such payloads anyway.
        let mac = Crypto.hmacSHA256(key: key, Array("herald/unsubscribe/v1\0".utf8), [1, 3, 0, 0, 0, 0, 0, 0, 0, 1])
        let truncated = String(decoding: Base64URL.encode([1, 3, 0, 0, 0, 0, 0, 0, 0, 1]) + [UInt8(ascii: ".")] + Base64URL.encode(mac), as: UTF8.self)
        #expect(UnsubscribeToken.verify(truncated, key: key) == nil)
    }

    @Test("HMAC-SHA256 matches RFC 4231 test case 2 and Base64URL is strict")
    func primitives() {
        let mac = Crypto.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want ".utf8), Array("for nothing?".utf8))
        #expect(mac.map { String(format: "%02x", $0) }.joined()
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Crypto.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Crypto.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(Base64URL.decode(Array("AQ".utf8)) == [1])
        #expect(Base64URL.decode(Array("AR".utf8)) == nil)  // non-zero trailing bits
        #expect(Base64URL.decode(Array("AQ==".utf8)) == nil)
        #expect(Base64URL.decode(Array("A".utf8)) == nil)
        #expect(Base64URL.decode(Array("+/".utf8)) == nil)
        #expect(String(decoding: Base64URL.encode([0xFB, 0xFF]), as: UTF8.self) == "-_8")
        #expect(Crypto.randomBytes(32) != Crypto.randomBytes(32))
    }
}

import Foundation
