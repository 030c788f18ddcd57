import Foundation
import MailFormat

/// The rule for subscriber addresses, stricter than what SMTP or a `From:` header
/// accepts, because these are addresses of people on a mailing list: a dot-atom local
/// part (no quoted strings), `@`, and a domain name of at least two labels (no address
/// literals, no single-label hosts). UTF-8 (RFC 6531) is accepted in both parts.
/// Addresses are normalized to lower case (see ``Schema``) after trimming white space.
public enum SubscriberAddress {
    /// The normalized address, or why it is not acceptable.
    public static func normalize(_ text: String) -> Result<String, StoreError> {
        normalized(bytes: Array(text.utf8)[...]).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The same from UTF-8 bytes to UTF-8 bytes (the CSV import's fast path: no
    /// Foundation string work for ASCII addresses, no `String` at all).
    static func normalized(bytes: ArraySlice<UInt8>) -> Result<[UInt8], StoreError> {
        let trimmed = ByteText.trimmed(bytes)
        guard !trimmed.isEmpty else { return .failure(StoreError(.invalid, "empty address")) }
        var address: [UInt8]
        if trimmed.allSatisfy({ $0 < 0x80 }) {
            address = trimmed.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 + 0x20 : $0 }
        } else {
            guard let text = String(validating: trimmed, as: UTF8.self) else {
                return .failure(StoreError(.invalid, "not valid UTF-8"))
            }
            address = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().utf8)
        }
        if let why = problem(address) {
            return .failure(StoreError(.invalid, why))
        }
        return .success(address)
    }

    /// Why `bytes` is not an acceptable address, nil when it is.
    static func problem(_ bytes: [UInt8]) -> String? {
        guard bytes.count <= 254 else { return "longer than 254 octets" }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")) else { return "no @" }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]
        guard !local.isEmpty else { return "empty local part" }
        guard local.count <= 64 else { return "local part longer than 64 octets" }
        guard !domain.isEmpty else { return "empty domain" }
        var atom = 0
        for b in local {
            if b == UInt8(ascii: ".") {
                guard atom > 0 else { return "empty atom in the local part (\"..\" or a leading or trailing dot)" }
                atom = 0
            } else if AddressSyntax.isAtext(b) {
                atom += 1
            } else {
                return b == UInt8(ascii: "@") ? "more than one @" : "character not allowed in the local part"
            }
        }
        guard atom > 0 else { return "empty atom in the local part (\"..\" or a leading or trailing dot)" }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2 else { return "the domain needs at least two labels" }
        for label in labels {
            guard !label.isEmpty else { return "empty label in the domain" }
            guard label.count <= 63 else { return "domain label longer than 63 octets" }
            guard label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else {
                return "domain label starts or ends with a hyphen"
            }
            for b in label {
                let ok = (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b >= 0x80
                    || (b >= 0x41 && b <= 0x5A)
                guard ok else { return "character not allowed in the domain" }
            }
        }
        if labels.last!.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) { return "the top-level domain is numeric" }
        return nil
    }
}

/// Byte-level helpers for the import's hot path.
enum ByteText {
    /// ASCII white space: space, tab, CR, LF, VT, FF.
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// `bytes` without leading and trailing ASCII white space.
    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, isSpace(bytes[start]) { start += 1 }
        while end > start, isSpace(bytes[end - 1]) { end -= 1 }
        return bytes[start..<end]
    }

    static func isValidUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.allSatisfy { $0 < 0x80 } || String(validating: bytes, as: UTF8.self) != nil
    }
}
