/// Harness 5: address syntax — MailFormat's `AddressSyntax.check` (the one grammar for
/// SMTP paths, header addresses and subscriber addresses) and SMTPCore's `Mailbox`.
///
/// Input: byte 0 picks `maxLength`; the rest is the address text.
///
/// Invariants:
/// - `check` either throws or returns the index of an `@` with 1…64 octets before it,
///   1…255 after it, at most `maxLength` in all, valid UTF-8 without control characters,
///   a dot-atom or quoted local part, and a domain that is LDH labels (1…63 octets, no
///   `-` at either end) or a literal of the kind asked for.
/// - A plain domain (not a literal) is accepted alike by both literal kinds.
/// - `Mailbox(parsing:)` accepts exactly what `check` accepts within 256 octets with
///   address literals, and what it accepts re-parses to itself: its description is the
///   input, and `Mailbox(parsing: m.description) == m`.
/// - A valid mailbox is accepted in SMTP commands: `MAIL FROM:<addr>` and `RCPT TO:<addr>`
///   parse to that same mailbox.
import FuzzSupport
import MailFormat
import SMTPCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(bytes(data, size))
    let choice = input.byte()
    let maxLength = choice >= 0x80 ? 256 : Int(choice) * 3 - 10   // -10…371
    let address = Array(input.rest)

    var results: [AddressSyntax.Literals: Int] = [:]
    for literals in [AddressSyntax.Literals.address, .domain] {
        guard let at = try? AddressSyntax.check(address, maxLength: maxLength, literals: literals) else { continue }
        results[literals] = at
        checkAccepted(address, at: at, maxLength: maxLength, literals: literals)
    }
    if let at = results[.address] ?? results[.domain], AddressSyntax.isDomain(address[(at + 1)...]) {
        invariant(results[.address] == results[.domain], "\(show(address)): a plain domain accepted as \(results)")
    }

    // Mailbox: the SMTP view of the same grammar.
    guard let text = String(validating: address, as: UTF8.self) else {
        invariant(results.isEmpty, "invalid UTF-8 accepted: \(show(address))")
        return 0
    }
    let smtpAccepts = (try? AddressSyntax.check(address, maxLength: 256, literals: .address)) != nil
    let mailbox = Mailbox(parsing: text)
    invariant((mailbox != nil) == smtpAccepts, "\(show(address)): Mailbox \(String(describing: mailbox)), AddressSyntax \(smtpAccepts)")
    if let m = mailbox {
        invariant(m.description == text, "\(show(address)) became \(show(m.description))")
        invariant(Mailbox(parsing: m.description) == m, "\(show(m.description)) does not re-parse to itself")
        // Finding F1 (fixed): the path splitter skips address literals, whose
        // dcontent may hold `"` and `>`.
        let mail = SMTPCommandParser.parse(Array("MAIL FROM:<\(text)> SIZE=1".utf8))
        invariant(mail == .success(.mail(.mailbox(m), [ESMTPParameter("SIZE", "1")])),
                  "MAIL FROM:<\(show(text))> parses as \(mail)")
        let rcpt = SMTPCommandParser.parse(Array("RCPT TO:<\(text)>".utf8))
        invariant(rcpt == .success(.rcpt(.mailbox(m), [])), "RCPT TO:<\(show(text))> parses as \(rcpt)")
    }
    return 0
}

func checkAccepted(_ a: [UInt8], at: Int, maxLength: Int, literals: AddressSyntax.Literals) {
    let what = "\(show(a)) accepted (\(literals), max \(maxLength)) with @ at \(at)"
    invariant(at >= 1 && at < a.count && a[at] == UInt8(ascii: "@"), what)
    invariant(at <= AddressSyntax.maxLocalPart, "\(what): local part too long")
    invariant(a.count - at - 1 >= 1 && a.count - at - 1 <= AddressSyntax.maxDomain, "\(what): domain length")
    invariant(a.count <= maxLength, "\(what): longer than the limit")
    invariant(String(validating: a, as: UTF8.self) != nil, "\(what): invalid UTF-8")
    invariant(!a.contains(where: { $0 < 0x20 || $0 == 0x7F }), "\(what): a control character")
    let local = a[..<at]
    if local.first == UInt8(ascii: "\"") {
        invariant(local.count >= 2 && local.last == UInt8(ascii: "\""), "\(what): quoted local part")
    } else {
        let atoms = local.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        invariant(atoms.allSatisfy { !$0.isEmpty && $0.allSatisfy(AddressSyntax.isAtext) }, "\(what): dot-atom")
    }
    let domain = a[(at + 1)...]
    switch literals {
    case .address:
        invariant(AddressSyntax.isDomain(domain) || AddressSyntax.isAddressLiteral(domain), "\(what): domain")
    case .domain:
        invariant(AddressSyntax.isDomain(domain) || AddressSyntax.isDomainLiteral(domain), "\(what): domain")
    }
    if AddressSyntax.isDomain(domain) {
        for label in domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            invariant(!label.isEmpty && label.count <= AddressSyntax.maxLabel, "\(what): label \(show(label))")
            invariant(label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-"), "\(what): label \(show(label))")
        }
    }
}

@main
enum Harness {
    static func main() { runLibFuzzer(fuzz) }
}
