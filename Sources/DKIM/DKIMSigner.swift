import Foundation

/// Signs messages with the keys of their From domain (RFC 6376, relaxed/relaxed).
///
/// - The key is chosen by the domain of the first From address: the domain's own keys,
///   else those of its nearest parent that has keys (a key for `example.org` signs
///   mail from `news.example.org`, which DMARC's relaxed alignment accepts), never a
///   top-level domain's. Every key found signs: an RSA and an Ed25519 key for one domain
///   give two `DKIM-Signature` fields (RFC 8463 dual signing).
/// - Signed fields: those of ``signedFields`` the message has, as many instances as it
///   has, plus one more `from`, so that a From added later breaks the signature.
///   No `l=`: the whole body is covered. `t=` is the signing time; no expiry.
/// - A message without a From, or whose From domain has no key, is returned unchanged.
///
/// The fields go on top of the message, so that what was signed is below them.
public struct DKIMSigner: Sendable {
    public static let signedFields = [
        "from", "reply-to", "sender", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
        "mime-version", "content-type", "content-transfer-encoding", "list-id", "list-unsubscribe",
        "list-unsubscribe-post",
    ]

    let keysByDomain: [String: [DKIMKey]]

    public init(keys: [DKIMKey]) {
        keysByDomain = Dictionary(grouping: keys, by: \.domain)
    }

    public var isEmpty: Bool { keysByDomain.isEmpty }

    /// The keys that sign mail from `domain` (see the type's comment).
    public func keys(forFromDomain domain: String) -> [DKIMKey] {
        var labels = domain.lowercased().trimmingTrailingDot.split(separator: ".", omittingEmptySubsequences: false)
        while labels.count >= 2 {
            if let keys = keysByDomain[labels.joined(separator: ".")] { return keys }
            labels.removeFirst()
        }
        return []
    }

    /// `message` with one `DKIM-Signature` field per key on top.
    public func sign(_ message: [UInt8], now: Date = Date()) throws -> [UInt8] {
        guard !keysByDomain.isEmpty else { return message }
        let (fields, bodyStart) = Relaxed.split(message)
        // Each field's index under its lower-case name, in message order.
        var unused = Dictionary(grouping: fields.indices, by: { fields[$0].lowercasedName })
        guard let from = unused["from"]?.first,
              let domain = Self.domain(ofFrom: String(decoding: fields[from].value, as: UTF8.self))
        else { return message }
        let keys = keys(forFromDomain: domain)
        guard !keys.isEmpty else { return message }

        let bodyHash = Base64.encode(SHA256.hash(Relaxed.body(message[bodyStart...])))
        // The fields to sign, each name once per instance, and `from` once more.
        var names: [String] = []
        for name in Self.signedFields {
            names += Array(repeating: name, count: unused[name]?.count ?? 0)
        }
        names.append("from")
        // RFC 6376 §5.4.2: the n-th use of a name takes the n-th instance from the bottom.
        var signedData: [UInt8] = []
        for name in names {
            guard let index = unused[name]?.popLast() else { continue }
            signedData += Relaxed.header(name: fields[index].name, value: fields[index].value)
            signedData += [Relaxed.cr, Relaxed.lf]
        }

        var out: [UInt8] = []
        for key in keys {
            let unsigned = Self.fieldText(key: key, names: names, bodyHash: bodyHash, time: Int(now.timeIntervalSince1970))
            let bytes = Array(unsigned.utf8)
            let colon = bytes.firstIndex(of: Relaxed.colon)!
            let canonical = Relaxed.header(name: "DKIM-Signature", value: bytes[(colon + 1)...])
            let signature = Base64.encode(try key.sign(signedData + canonical))
            out += bytes
            out += Array(Self.fold(signature).utf8)
            out += [Relaxed.cr, Relaxed.lf]
        }
        return out + message
    }

    /// The field up to and including `b=` (folded, without the signature).
    static func fieldText(key: DKIMKey, names: [String], bodyHash: String, time: Int) -> String {
        var text = "DKIM-Signature: v=1; a=\(key.algorithm.rawValue); c=relaxed/relaxed; d=\(key.domain);\r\n"
            + "\ts=\(key.selector); t=\(time);\r\n\th="
        var line = 3
        for (i, name) in names.enumerated() {
            let piece = i == names.count - 1 ? name + ";" : name + ":"
            if line + piece.count > 76 {
                text += "\r\n\t"
                line = 1
            }
            text += piece
            line += piece.count
        }
        return text + "\r\n\tbh=\(bodyHash);\r\n\tb="
    }

    /// The signature in lines of at most 72 characters after the first.
    static func fold(_ signature: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(signature)
        let first = 70
        lines.append(rest.prefix(first))
        rest = rest.dropFirst(first)
        while !rest.isEmpty {
            lines.append(rest.prefix(72))
            rest = rest.dropFirst(72)
        }
        return lines.joined(separator: "\r\n\t ")
    }

    /// The domain of the first address in a From field's value (`News <a@b.example>`,
    /// `a@b.example (comment)`), lower case; nil when there is none.
    static func domain(ofFrom value: String) -> String? {
        var address = Substring(value)
        if let open = value.firstIndex(of: "<"), let close = value[open...].firstIndex(of: ">") {
            address = value[value.index(after: open)..<close]
        } else if let comma = address.firstIndex(of: ",") {
            address = address[..<comma]
        }
        guard let at = address.lastIndex(of: "@") else { return nil }
        let domain = address[address.index(after: at)...]
            .prefix { !$0.isWhitespace && $0 != ">" && $0 != "(" && $0 != ";" }
            .lowercased()
        return domain.isEmpty ? nil : domain
    }
}
