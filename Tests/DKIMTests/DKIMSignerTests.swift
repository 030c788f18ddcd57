import Foundation
import HeraldTestSupport
import Testing

@testable import DKIM

/// Relaxed canonicalization against RFC 6376's own example, and key handling.
@Suite struct DKIMCanonicalizationTests {
    @Test("RFC 6376 §3.4.5: relaxed headers and body")
    func rfcExample() {
        let message = Array("A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n".utf8)
        let (fields, bodyStart) = Relaxed.split(message)
        let headers = fields.map { String(decoding: Relaxed.header(name: $0.name, value: $0.value), as: UTF8.self) }
        #expect(headers == ["a:X", "b:Y Z"])
        #expect(String(decoding: Relaxed.body(message[bodyStart...]), as: UTF8.self) == " C\r\nD E\r\n")
    }

    @Test("bodies: empty stays empty, trailing empty lines go, a last line gets its CRLF")
    func bodies() {
        func body(_ s: String) -> String { String(decoding: Relaxed.body(ArraySlice(Array(s.utf8))), as: UTF8.self) }
        #expect(body("") == "")
        #expect(body("\r\n\r\n \t\r\n") == "")
        #expect(body("a") == "a\r\n")
        #expect(body("a  b\t\r\n\r\nc\r\n\r\n") == "a b\r\n\r\nc\r\n")
    }

    @Test("a colon inside a value keeps the space after it")
    func colonInValue() {
        let field = Relaxed.header(name: "Subject", value: ArraySlice(Array("  Re:  a\r\n\t b ".utf8)))
        #expect(String(decoding: field, as: UTF8.self) == "subject:Re: a b")
    }

    @Test("From domains, and the keys of the nearest parent")
    func keyChoice() throws {
        #expect(DKIMSigner.domain(ofFrom: " News <News@Mail.Example.ORG>") == "mail.example.org")
        #expect(DKIMSigner.domain(ofFrom: "a@b.example (Ann)") == "b.example")
        #expect(DKIMSigner.domain(ofFrom: "undisclosed") == nil)
        let key = try DKIMKey(domain: "Example.org.", selector: "s1", pem: try DKIMTestKeys.pem(.ed25519SHA256))
        let signer = DKIMSigner(keys: [key])
        #expect(signer.keys(forFromDomain: "news.mail.example.org").map(\.domain) == ["example.org"])
        #expect(signer.keys(forFromDomain: "example.org").count == 1)
        #expect(signer.keys(forFromDomain: "org").isEmpty && signer.keys(forFromDomain: "example.com").isEmpty)
    }

    @Test("keys that cannot sign are refused with the record's name")
    func badKeys() throws {
        #expect(throws: DKIMError.self) { try DKIMKey(domain: "example.org", selector: "s", pem: Array("junk".utf8)) }
        let small = try DKIMTestKeys.generate(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"])
        let error = #expect(throws: DKIMError.self) { try DKIMKey(domain: "example.org", selector: "s", pem: small) }
        #expect(error?.description.contains("s._domainkey.example.org") == true)
        #expect(throws: DKIMError.self) {
            try DKIMKey(domain: "example.org", selector: "bad selector", pem: try DKIMTestKeys.pem(.rsaSHA256))
        }
    }
}

enum DKIMTestKeys {
    static func generate(_ arguments: [String]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["genpkey"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw DKIMError("openssl genpkey \(arguments) failed") }
        return Array(data)
    }

    static let rsa = Result { try generate(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]) }
    static let ed25519 = Result { try generate(["-algorithm", "ed25519"]) }

    static func pem(_ algorithm: DKIMAlgorithm) throws -> [UInt8] {
        try (algorithm == .rsaSHA256 ? rsa : ed25519).get()
    }
}

/// Signed messages checked by dkimpy, the keys published by dnsmasq: RSA and Ed25519
/// together on every message, over bodies and headers that canonicalization must get
/// right, and changes after signing that must break the signature.
@Suite(.enabled(if: Dnsmasq.isAvailable && DKIMVerification.isAvailable))
struct DKIMIndependentVerificationTests {
    static let domain = "mail.test"

    static func withSigner(_ body: (DKIMSigner, Int) async throws -> Void) async throws {
        let rsa = try DKIMKey(domain: domain, selector: "rsa2048", pem: try DKIMTestKeys.pem(.rsaSHA256))
        let ed = try DKIMKey(domain: domain, selector: "ed", pem: try DKIMTestKeys.pem(.ed25519SHA256))
        let dns = try Dnsmasq([rsa, ed].map { DKIMVerification.txtRecord($0.recordName, $0.record) })
        defer { dns.stop() }
        try await body(DKIMSigner(keys: [rsa, ed]), dns.port)
    }

    static func message(headers: [String], body: String) -> [UInt8] {
        Array((headers.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
    }

    static let common = [
        "From: News <news@mail.test>", "To: ann@example.test", "Date: Sun, 06 Dec 2026 19:00:00 +0000",
        "Message-ID: <1@mail.test>", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
    ]

    static let cases: [(String, [UInt8])] = [
        ("plain", message(headers: common + ["Subject: Hello"], body: "Hello Ann.\r\n")),
        ("8-bit body", message(headers: common + ["Subject: Grüße", "Content-Transfer-Encoding: 8bit"],
                               body: "Grüße aus Zürich, 東京 and ünïcödé.\r\n")),
        ("long folded headers", message(
            headers: common + [
                "Subject: " + Array(repeating: "a rather long subject line", count: 6).joined(separator: "\r\n\t "),
                "List-Unsubscribe: <https://mail.test/u/" + String(repeating: "x", count: 120) + ">,\r\n <mailto:u@mail.test>",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            ],
            body: "Body\r\n")),
        ("empty body", message(headers: common + ["Subject: nothing"], body: "")),
        ("trailing blank lines and spaces", message(headers: common + ["Subject:   spaced    out  "],
                                                    body: "line  with\t tabs   \r\n\r\n\r\n \r\n")),
        ("body without a final CRLF", message(headers: common + ["Subject: x"], body: "no end")),
    ]

    @Test("every case verifies, with both signatures")
    func verifies() async throws {
        try await Self.withSigner { signer, port in
            for (name, message) in Self.cases {
                let signed = try signer.sign(message)
                #expect(signed.count > message.count && signed.suffix(message.count) == message[...],
                        "\(name): the original follows the signatures unchanged")
                let verdicts = try await DKIMVerification.verify(signed, dnsPort: port)
                #expect(verdicts == ["pass", "pass"], "\(name): \(verdicts)\n\(String(decoding: signed, as: UTF8.self))")
            }
        }
    }

    @Test("the signature covers the one-click headers and over-signs From")
    func headerList() throws {
        let key = try DKIMKey(domain: Self.domain, selector: "ed", pem: try DKIMTestKeys.pem(.ed25519SHA256))
        let signed = String(decoding: try DKIMSigner(keys: [key]).sign(Self.cases[2].1), as: UTF8.self)
        let field = String(signed[..<signed.range(of: "\r\nFrom:")!.lowerBound])
        let unfolded = field.replacingOccurrences(of: "\r\n\t", with: "").replacingOccurrences(of: " ", with: "")
        #expect(unfolded.contains("h=from:to:subject:date:message-id:mime-version:content-type:list-unsubscribe:list-unsubscribe-post:from;"),
                "\(field)")
        #expect(!unfolded.contains("l="), "the whole body is signed")
        #expect(field.split(separator: "\r\n").allSatisfy { $0.utf8.count <= 78 }, "folded: \(field)")
    }

    @Test("changes after signing fail: body, subject, an added From, an added body line")
    func tampering() async throws {
        try await Self.withSigner { signer, port in
            let signed = String(decoding: try signer.sign(Self.cases[0].1), as: UTF8.self)
            let changes = [
                ("body", signed.replacingOccurrences(of: "Hello Ann.", with: "Hello Bob.")),
                ("subject", signed.replacingOccurrences(of: "Subject: Hello", with: "Subject: Win")),
                ("added From", signed.replacingOccurrences(of: "\r\nTo:", with: "\r\nFrom: evil@else.test\r\nTo:")),
                ("appended line", signed + "P.S. click here\r\n"),
            ]
            for (name, text) in changes {
                let verdicts = try await DKIMVerification.verify(Array(text.utf8), dnsPort: port)
                #expect(verdicts == ["fail", "fail"], "\(name): \(verdicts)")
            }
        }
    }

    @Test("mail from a domain without a key, or without From, is left as it is")
    func unsigned() throws {
        let key = try DKIMKey(domain: Self.domain, selector: "ed", pem: try DKIMTestKeys.pem(.ed25519SHA256))
        let signer = DKIMSigner(keys: [key])
        let other = Self.message(headers: ["From: a@other.test", "Subject: x"], body: "x\r\n")
        #expect(try signer.sign(other) == other)
        let anonymous = Self.message(headers: ["Subject: x"], body: "x\r\n")
        #expect(try signer.sign(anonymous) == anonymous)
    }
}

/// The same messages checked by OpenDKIM (`opendkim-testmsg`), one signature at a time:
/// the RSA one alone and the Ed25519 one alone.
@Suite(.enabled(if: DKIMVerification.openDKIMAvailable))
struct DKIMOpenDKIMVerificationTests {
    @Test("every case verifies with each key alone; a changed body does not")
    func verifies() async throws {
        let domain = DKIMIndependentVerificationTests.domain
        let rsa = try DKIMKey(domain: domain, selector: "rsa2048", pem: try DKIMTestKeys.pem(.rsaSHA256))
        let ed = try DKIMKey(domain: domain, selector: "ed", pem: try DKIMTestKeys.pem(.ed25519SHA256))
        let records = [rsa, ed].map { (name: $0.recordName, text: $0.record) }
        let signer = DKIMSigner(keys: [rsa, ed])
        for (name, message) in DKIMIndependentVerificationTests.cases {
            let signed = try signer.sign(message)
            for (kept, dropped) in [("rsa-sha256", 1), ("ed25519-sha256", 0)] {
                let single = DKIMVerification.dropping(signature: dropped, from: signed)
                let result = try await DKIMVerification.openDKIM(single, records: records)
                #expect(result.passed, "\(name), \(kept): \(result.output)")
            }
        }
        let signed = String(decoding: try signer.sign(DKIMIndependentVerificationTests.cases[0].1), as: UTF8.self)
        let changed = Array(signed.replacingOccurrences(of: "Hello Ann.", with: "Hello Bob.").utf8)
        for dropped in [1, 0] {
            let result = try await DKIMVerification.openDKIM(DKIMVerification.dropping(signature: dropped, from: changed), records: records)
            #expect(!result.passed, "a changed body must fail: \(result.output)")
        }
        let unsigned = try await DKIMVerification.openDKIM(DKIMIndependentVerificationTests.cases[0].1, records: records)
        #expect(!unsigned.passed, "no signature is no pass: \(unsigned.output)")
    }
}
