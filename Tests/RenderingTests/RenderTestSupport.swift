import Foundation
import HeraldTestSupport
import Testing

@testable import Rendering

/// What Python's `email` package (policy.default) makes of a rendered message.
struct ParsedMessage: Decodable {
    struct Part: Decodable {
        var type: String
        var charset: String?
        var cte: String?
        var content: String
        var defects: [String]
    }
    struct Address: Decodable {
        /// The display name as `policy.default` gives it. Python keeps the white space
        /// between two adjacent encoded-words of a display name, which RFC 2047 §6.2 says to
        /// drop, so for names split over several encoded-words compare `rfcName`.
        var name: String
        /// The display name decoded by `email.header.decode_header` (RFC 2047 rules).
        var rfcName: String
        var addr: String
        enum CodingKeys: String, CodingKey { case name, rfcName = "rfc_name", addr }
    }
    var headerPairs: [[String]]
    var defects: [String]
    var contentType: String
    var isMultipart: Bool
    var parts: [Part]
    var from: Address?
    var to: Address?
    var replyTo: Address?
    var subject: String?

    enum CodingKeys: String, CodingKey {
        case headerPairs = "header_pairs", defects, contentType = "content_type", isMultipart = "is_multipart",
             parts, from, to, replyTo = "reply_to", subject
    }

    var headerNames: [String] { headerPairs.map { $0[0] } }
    func header(_ name: String) -> String? { headerPairs.first { $0[0].lowercased() == name.lowercased() }?[1] }
    func part(_ type: String) -> Part? { parts.first { $0.type == type } }
}

enum RenderPython {
    static let parser = #"""
import sys, os, json, email
from email import policy
from email.header import decode_header, make_header
from email.utils import parseaddr

def addr(msg, raw, name):
    h = msg[name]
    if h is None:
        return None
    a = h.addresses
    if len(a) != 1:
        return {"name": "<%d addresses>" % len(a), "rfc_name": "", "addr": ""}
    encoded_name = parseaddr(raw[name].replace("\r\n", ""))[0]
    rfc_name = str(make_header(decode_header(encoded_name)))
    return {"name": a[0].display_name, "rfc_name": rfc_name, "addr": a[0].addr_spec}

out = []
d = sys.argv[1]
for name in sorted(n for n in os.listdir(d) if n.endswith(".eml")):
    with open(os.path.join(d, name), "rb") as f:
        data = f.read()
    msg = email.message_from_bytes(data, policy=policy.default)
    raw = dict(email.message_from_bytes(data, policy=policy.compat32)._headers)
    defects = [repr(x) for x in msg.defects]
    pairs = []
    for k, v in msg.items():
        pairs.append([k, str(v)])
        defects += ["%s: %r" % (k, x) for x in getattr(v, "defects", [])]
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            defects += [repr(x) for x in part.defects]
            continue
        parts.append({
            "type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "cte": part["Content-Transfer-Encoding"],
            "content": part.get_content(),
            "defects": [repr(x) for x in part.defects],
        })
    out.append({
        "header_pairs": pairs, "defects": defects, "content_type": msg.get_content_type(),
        "is_multipart": msg.is_multipart(), "parts": parts,
        "from": addr(msg, raw, "From"), "to": addr(msg, raw, "To"), "reply_to": addr(msg, raw, "Reply-To"),
        "subject": None if msg["Subject"] is None else str(msg["Subject"]),
    })
json.dump(out, sys.stdout)
"""#

    /// Parses the messages with Python's `email` package, in one subprocess.
    static func parse(_ messages: [[UInt8]]) async throws -> [ParsedMessage] {
        let dir = try TemporaryDirectory.make(prefix: "herald-render")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (n, m) in messages.enumerated() {
            try Data(m).write(to: URL(fileURLWithPath: dir + "/" + String(format: "%06d.eml", n)))
        }
        let script = dir + "/parse.py"
        try Data(parser.utf8).write(to: URL(fileURLWithPath: script))
        let result = try await Python.run(script, [dir], timeout: 120)
        guard result.termination.succeeded else { throw SubprocessError("python failed: \(result)") }
        return try JSONDecoder().decode([ParsedMessage].self, from: Data(result.stdout))
    }

    static func parse(_ message: [UInt8]) async throws -> ParsedMessage {
        try await parse([message])[0]
    }

    /// Runs a Python snippet with the bytes in a file named by `sys.argv[1]`; its stdout.
    static func run(_ code: String, input: [UInt8]) async throws -> [UInt8] {
        let dir = try TemporaryDirectory.make(prefix: "herald-render")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(input).write(to: URL(fileURLWithPath: dir + "/input"))
        try Data(code.utf8).write(to: URL(fileURLWithPath: dir + "/snippet.py"))
        let result = try await Python.run(dir + "/snippet.py", [dir + "/input"], timeout: 120)
        guard result.termination.succeeded else { throw SubprocessError("python failed: \(result)") }
        return result.stdout
    }
}

enum MessageLines {
    /// Problems with line structure: bare CR or LF, lines over 998 octets anywhere, body
    /// lines over `bodyLimit`. Empty when the message is well formed.
    static func problems(_ m: [UInt8], bodyLimit: Int = 78) -> [String] {
        var problems: [String] = []
        var lineStart = 0
        var inBody = false
        var i = 0
        var lineNumber = 1
        while i < m.count {
            if m[i] == 0x0A {
                problems.append("bare LF on line \(lineNumber)")
                i += 1
                lineStart = i
                lineNumber += 1
                continue
            }
            if m[i] == 0x0D {
                guard i + 1 < m.count, m[i + 1] == 0x0A else {
                    problems.append("bare CR on line \(lineNumber)")
                    i += 1
                    continue
                }
                let length = i - lineStart
                if length > 998 { problems.append("line \(lineNumber) has \(length) octets") }
                if inBody && length > bodyLimit { problems.append("body line \(lineNumber) has \(length) octets") }
                if length == 0 { inBody = true }
                i += 2
                lineStart = i
                lineNumber += 1
                continue
            }
            i += 1
        }
        if lineStart != m.count { problems.append("no CRLF at the end") }
        return problems
    }

    /// The header section's lines (without CRLF).
    static func headerLines(_ m: [UInt8]) -> [String] {
        let text = String(decoding: m, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return [] }
        return text[..<end.lowerBound].components(separatedBy: "\r\n")
    }

    /// Unfolded header fields as (name, raw value).
    static func fields(_ m: [UInt8]) -> [(String, String)] {
        var fields: [(String, String)] = []
        for line in headerLines(m) {
            if line.first == " " || line.first == "\t" {
                fields[fields.count - 1].1 += line
            } else if let colon = line.firstIndex(of: ":") {
                fields.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        return fields
    }
}

extension String {
    var crlfAsLF: String { replacingOccurrences(of: "\r\n", with: "\n") }
}

extension Array where Element == UInt8 {
    var decodedUTF8: String { String(decoding: self, as: UTF8.self) }
}

enum RenderFixtures {
    static let from = try! MailAddress("news@herald.test", name: "Herald News")
    static let unsubscribe = ListUnsubscribe(url: "https://herald.test/u/abc.def",
                                             mailto: "mailto:unsubscribe+abc@herald.test?subject=unsubscribe")
    static let date = Date(timeIntervalSince1970: 1_709_629_200)  // Tue, 05 Mar 2024 09:00:00 +0000

    static func renderer(subject: String = "Hello {{first_name}}", html: String? = "<p>Hi {{first_name}}</p>",
                         text: String? = nil, replyTo: MailAddress? = nil,
                         extraHeaders: [ExtraHeader] = [ExtraHeader("X-Herald-Campaign", "c-42")]) throws -> MessageRenderer {
        let template = try CampaignTemplate(subject: subject, html: html, text: text)
        return try MessageRenderer(template: template, campaign: ["name": "Spring", "id": "c-42", "subject": "Spring sale"],
                                   from: from, replyTo: replyTo, messageIDDomain: "herald.test", extraHeaders: extraHeaders)
    }
}
