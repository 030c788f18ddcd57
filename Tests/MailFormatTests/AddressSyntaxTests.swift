import MailFormat
import Testing

/// The address grammar shared by SMTP paths, header addresses and subscriber addresses.
@Suite struct AddressSyntaxTests {
    typealias Failure = AddressSyntax.Failure

    /// The index of the `@`, or the first failure.
    func check(_ bytes: [UInt8], maxLength: Int = 256, literals: AddressSyntax.Literals = .address)
        -> Result<Int, Failure>
    {
        Result { () throws(Failure) -> Int in try AddressSyntax.check(bytes, maxLength: maxLength, literals: literals) }
    }

    func check(_ text: String, maxLength: Int = 256, literals: AddressSyntax.Literals = .address)
        -> Result<Int, Failure>
    {
        check(Array(text.utf8), maxLength: maxLength, literals: literals)
    }

    static let accepted: [(String, Int)] = [
        ("a@b.example", 1),
        ("First.Last+tag@sub.example.co.uk", 14),
        ("a!#$%&'*+/=?^_`{|}~-@example.com", 20),
        ("o'brien@example.ie", 7),
        ("x@xn--bcher-kva.example", 1),
        ("1@2.3", 1),
        // Quoted local parts: spaces, an escaped quote, an "@" inside, the empty string.
        ("\"john doe\"@example.com", 10),
        (#""a\"b"@example.com"#, 6),
        ("\"a@b\"@example.com", 5),
        ("\"\"@example.com", 2),
        (#""a\ b"@example.com"#, 6),
        // SMTPUTF8 (RFC 6531): UTF-8 in either part.
        ("üser@exämple.de", 5),
        ("用户@例子.广告", 6),
        ("\"ü ser\"@example.com", 8),
    ]

    @Test(arguments: accepted)
    func acceptsAddresses(address: String, at: Int) {
        #expect(check(address) == .success(at), "\(address)")
        #expect(check(address, maxLength: 254, literals: .domain) == .success(at), "\(address)")
    }

    static let refused: [(String, Failure)] = [
        ("", .empty),
        ("plain", .missingDomain),
        ("@example.com", .emptyLocalPart),
        (".a@example.com", .emptyAtom),
        ("a..b@example.com", .emptyAtom),
        ("a.@example.com", .trailingDot),
        ("a b@example.com", .badLocalCharacter(0x20)),
        ("a(comment)@example.com", .badLocalCharacter(UInt8(ascii: "("))),
        ("a\u{7F}@example.com", .badLocalCharacter(0x7F)),
        ("\"unterminated@example.com", .unterminatedQuote),
        ("\"a\\", .badQuotedPair),
        ("\"a\\\u{1}\"@example.com", .badQuotedPair),
        ("\"bad\u{1}\"@example.com", .badQuotedCharacter),
        ("\"a\"b@example.com", .missingDomain),
        ("\"quoted\"", .missingDomain),
        ("a@", .badDomain),
        ("a@b@example.com", .badDomain),
        ("a@-example.com", .badDomain),
        ("a@example-.com", .badDomain),
        ("a@example..com", .badDomain),
        ("a@.example.com", .badDomain),
        ("a@example.com.", .badDomain),
        ("a@exa_mple.com", .badDomain),
        ("a@exa mple.com", .badDomain),
        ("a@example.com\r\nBcc: x@y.example", .badDomain),
        ("a@" + String(repeating: "d", count: 64) + ".example", .badDomain),
    ]

    @Test(arguments: refused)
    func refusesAddresses(address: String, failure: Failure) {
        #expect(check(address) == .failure(failure), "\(address.debugDescription)")
        #expect(check(address, maxLength: 254, literals: .domain) == .failure(failure), "\(address.debugDescription)")
    }

    @Test func localPartsUpTo64Octets() {
        let domain = "@example.com"
        #expect(check(String(repeating: "l", count: 64) + domain) == .success(64))
        #expect(check(String(repeating: "l", count: 65) + domain) == .failure(.localPartTooLong))
        // A quoted local part counts its quotes.
        #expect(check("\"" + String(repeating: "q", count: 62) + "\"" + domain) == .success(64))
        #expect(check("\"" + String(repeating: "q", count: 63) + "\"" + domain) == .failure(.localPartTooLong))
        // Octets, not characters: 32 two-octet characters are 64 octets.
        #expect(check(String(repeating: "ü", count: 32) + domain) == .success(64))
        #expect(check(String(repeating: "ü", count: 33) + domain) == .failure(.localPartTooLong))
    }

    @Test func totalLengthIsTheCallersLimit() {
        // 64 + "@" + 189 = 254 octets; one more label octet makes 255.
        let local = String(repeating: "l", count: 64)
        let d254 = [String(repeating: "a", count: 63), String(repeating: "b", count: 63), String(repeating: "c", count: 61)]
        let d255 = [d254[0], d254[1], String(repeating: "c", count: 62)]
        let a254 = local + "@" + d254.joined(separator: ".")
        let a255 = local + "@" + d255.joined(separator: ".")
        #expect(a254.utf8.count == 254 && a255.utf8.count == 255)
        #expect(check(a254, maxLength: 254) == .success(64))
        #expect(check(a255, maxLength: 254) == .failure(.tooLong))
        #expect(check(a255, maxLength: 256) == .success(64))
        #expect(check(a255 + "x", maxLength: 256) == .success(64))
        #expect(check(a255 + "xx", maxLength: 256) == .failure(.tooLong))
    }

    @Test func domainsUpTo255Octets() {
        let label = String(repeating: "d", count: 63)
        let d255 = [label, label, label, label].joined(separator: ".")
        let d256 = [label, label, label, String(repeating: "d", count: 62), "e"].joined(separator: ".")
        #expect(d255.utf8.count == 255 && d256.utf8.count == 256)
        #expect(check("a@" + d255, maxLength: 1000) == .success(1))
        #expect(check("a@" + d256, maxLength: 1000) == .failure(.domainTooLong))
        #expect(AddressSyntax.isDomain(Array(d255.utf8)[...]))
        #expect(!AddressSyntax.isDomain(Array(d256.utf8)[...]))
        #expect(!AddressSyntax.isDomain([]))
    }

    @Test func invalidUTF8IsRefusedWherever() {
        let bad: [UInt8] = [0xC3, 0x28]
        #expect(check(bad + Array("@example.com".utf8)) == .failure(.invalidUTF8))
        #expect(check(Array("a@".utf8) + bad + Array(".example".utf8)) == .failure(.invalidUTF8))
        #expect(check(Array("\"".utf8) + bad + Array("\"@example.com".utf8)) == .failure(.invalidUTF8))
        #expect(check([0xFF] + Array("@example.com".utf8)) == .failure(.invalidUTF8))
    }

    static let literals: [(domain: String, address: Bool, header: Bool)] = [
        ("[192.0.2.1]", true, true),
        ("[0.0.0.0]", true, true),
        ("[255.255.255.255]", true, true),
        ("[256.1.2.3]", false, true),
        ("[1.2.3]", false, true),
        ("[1.2.3.4.5]", false, true),
        ("[01.2.3.4]", true, true),
        ("[1234.2.3.4]", false, true),
        ("[IPv6:2001:db8::1]", true, true),
        ("[ipv6:::ffff:192.0.2.1]", true, true),
        ("[IPv6:]", false, true),
        ("[IPv6:zz::1]", false, true),
        ("[x-tag:content]", true, true),
        ("[x-tag:]", false, true),
        ("[:content]", false, true),
        ("[foo]", false, true),
        ("[]", false, false),
        ("[a\\b]", false, false),
        ("[a b]", false, false),
        ("[a[b]", false, false),
        ("192.0.2.1]", false, false),
        ("[192.0.2.1", false, false),
        ("[ü]", false, false),
    ]

    @Test(arguments: literals)
    func bracketedDomains(domain: String, address: Bool, header: Bool) {
        let text = "user@" + domain
        #expect((check(text, literals: .address) == .success(4)) == address, "\(domain) as an address literal")
        #expect((check(text, literals: .domain) == .success(4)) == header, "\(domain) as a domain literal")
        #expect(AddressSyntax.isAddressLiteral(Array(domain.utf8)[...]) == address)
        #expect(AddressSyntax.isDomainLiteral(Array(domain.utf8)[...]) == header)
    }

    @Test func domainLabels() {
        func ok(_ d: String) -> Bool { AddressSyntax.isDomain(Array(d.utf8)[...]) }
        #expect(ok("example") && ok("a.b") && ok("xn--bcher-kva.example") && ok("bücher.example") && ok("1.2.3.4"))
        #expect(ok(String(repeating: "d", count: 63) + ".example"))
        #expect(!ok(String(repeating: "d", count: 64) + ".example"))
        #expect(!ok("-a.example") && !ok("a-.example") && !ok("a..example") && !ok(".example") && !ok("example."))
        #expect(!ok("a_b.example") && !ok("a b.example") && !ok("[1.2.3.4]") && !ok("a@b"))
    }

    @Test func atext() {
        let specials = "!#$%&'*+-/=?^_`{|}~"
        for b in UInt8(0)...UInt8(255) {
            let expected = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || specials.utf8.contains(b) || b >= 0x80
            #expect(AddressSyntax.isAtext(b) == expected, "byte \(b)")
        }
    }
}
