@testable import Delivery
import Foundation
import HeraldTestSupport
import Spool
import Testing

/// RFC 3464 reports, checked twice: by hand against the MIME structure, and parsed back
/// by Python's `email` package (an independent MIME parser).
@Suite struct BounceBuilderTests {
    static let original: [UInt8] = Array((
        "Received: from client.test by mx.test; Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        + "From: Alice <alice@sender.test>\r\n"
        + "To: <bob@dest.test>\r\n"
        + "Subject: quarterly report\r\n"
        + "Message-ID: <orig-1@sender.test>\r\n"
        + "\r\n"
        + "Hello Bob,\r\n"
        + "--not-a-boundary\r\n"
        + ".a line with a dot\r\n").utf8)

    static func envelope(ret: String? = nil, envid: String? = nil, sender: String = "alice@sender.test") -> Envelope {
        var e = Envelope(id: QueueID.generate(), arrival: Date(timeIntervalSince1970: 1_790_000_000), sender: sender,
                         origin: SpoolFixtures.origin,
                         recipients: [EnvelopeRecipient(address: "bob@dest.test", orcpt: "rfc822;bob@dest.test"),
                                      EnvelopeRecipient(address: "carol@dest.test")],
                         dsnRet: ret, dsnEnvid: envid)
        e.size = original.count
        return e
    }

    static func failed(_ address: String = "bob@dest.test", orcpt: String? = "rfc822;bob@dest.test",
                       status: String = "5.1.1", diagnostic: String? = "550 5.1.1 no such user here") -> BounceBuilder.FailedRecipient {
        .init(address: address, orcpt: orcpt, status: status, remoteMTA: "mx1.dest.test", diagnostic: diagnostic,
              lastAttempt: Date(timeIntervalSince1970: 1_790_000_100))
    }

    // MARK: Parsing helpers

    /// The report parsed by Python's email package, as JSON.
    static func parse(_ bytes: [UInt8]) async throws -> [String: Any] {
        let script = #"""
import sys, json, email
from email import policy
raw = sys.stdin.buffer.read()
m = email.message_from_bytes(raw, policy=policy.compat32)
out = {"content_type": m.get_content_type(), "params": dict(m.get_params()[1:]), "defects": [str(d) for d in m.defects],
       "from": m["From"], "to": m["To"], "subject": m["Subject"], "auto_submitted": m["Auto-Submitted"],
       "message_id": m["Message-ID"], "date": m["Date"], "parts": []}
if m.is_multipart():
    for part in m.get_payload():
        p = {"content_type": part.get_content_type(), "defects": [str(d) for d in part.defects]}
        if part.get_content_type() == "message/delivery-status":
            p["blocks"] = [dict(b.items()) for b in part.get_payload()]
        elif part.get_content_type() == "message/rfc822":
            inner = part.get_payload()[0]
            p["inner_headers"] = dict(inner.items())
            p["inner_body"] = inner.get_payload()
        else:
            p["text"] = part.get_payload(decode=True).decode("utf-8", "replace")
        out["parts"].append(p)
print(json.dumps(out))
"""#
        let r = try await Command.run("python3", ["-c", script], stdin: bytes, timeout: 30)
        guard r.termination.succeeded,
              let obj = try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any] else {
            throw SubprocessError("python email parse failed: \(r)")
        }
        return obj
    }

    /// Splits the report on its boundary by hand: the header section, the parts, and what follows the close.
    static func split(_ bytes: [UInt8]) throws -> (header: String, boundary: String, parts: [String], epilogue: String) {
        let text = String(decoding: bytes, as: UTF8.self)
        let headerEnd = try #require(text.range(of: "\r\n\r\n"))
        let header = String(text[..<headerEnd.lowerBound])
        let unfolded = header.replacingOccurrences(of: "\r\n\t", with: " ").replacingOccurrences(of: "\r\n ", with: " ")
        let b = try #require(unfolded.range(of: "boundary=\""))
        let boundary = String(unfolded[b.upperBound...].prefix { $0 != "\"" })
        let body = String(text[headerEnd.upperBound...])
        var sections = body.components(separatedBy: "\r\n--\(boundary)")
        // The preamble before the first delimiter.
        sections.removeFirst()
        let closing = try #require(sections.last)
        #expect(closing.hasPrefix("--"), "the last delimiter is the close-delimiter")
        sections.removeLast()
        // Note: "\r\n" is one Character in Swift; strip it as a prefix, not by count.
        func afterCRLF(_ s: String) -> String { s.hasPrefix("\r\n") ? String(s.dropFirst()) : s }
        return (header, boundary, sections.map(afterCRLF), afterCRLF(String(closing.dropFirst(2))))
    }

    // MARK: Tests

    @Test func failureReportStructure() async throws {
        let env = Self.envelope(envid: "batch-42")
        let id = QueueID.generate().rawValue
        let bytes = BounceBuilder(hostname: "mx.test").build(
            kind: .failed, original: env, message: Self.original,
            recipients: [Self.failed(), Self.failed("carol@dest.test", orcpt: nil, status: "5.2.2",
                                                    diagnostic: "552 5.2.2 mailbox full")],
            id: id, now: Date(timeIntervalSince1970: 1_790_000_200))

        // Every line ends in CRLF, none is longer than RFC 5322's 998.
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasSuffix("\r\n"))
        for line in text.components(separatedBy: "\r\n") {
            #expect(!line.contains("\n") && !line.contains("\r"), "bare CR/LF in \(line.debugDescription)")
            #expect(line.utf8.count <= 998)
        }

        let (header, boundary, parts, epilogue) = try Self.split(bytes)
        #expect(header.contains("Content-Type: multipart/report; report-type=delivery-status;"))
        #expect(header.contains("MIME-Version: 1.0"))
        #expect(header.contains("Auto-Submitted: auto-replied"), "RFC 3834: never answered automatically")
        #expect(header.contains("To: <alice@sender.test>"))
        #expect(header.contains("From: Mail Delivery System <MAILER-DAEMON@mx.test>"))
        #expect(header.contains("Message-ID: <\(id)@mx.test>"))
        #expect(header.contains("Date: Mon, 21 Sep 2026 14:16:40 +0000"), "RFC 5322 date in GMT: \(header)")
        #expect(!Self.original.isEmpty && !String(decoding: Self.original, as: UTF8.self).contains(boundary),
                "the boundary does not occur in the returned message")
        #expect(boundary.count <= 70, "RFC 2046 boundaries are at most 70 characters")
        #expect(epilogue.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        #expect(parts.count == 3)
        guard parts.count == 3 else { return }
        #expect(parts[0].contains("Content-Type: text/plain"))
        #expect(parts[0].contains("<bob@dest.test>: 550 5.1.1 no such user here"))
        #expect(parts[0].contains("<carol@dest.test>: 552 5.2.2 mailbox full"))

        // message/delivery-status: a per-message block, then one block per recipient.
        let ds = parts[1]
        #expect(ds.hasPrefix("Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"))
        let blocks = ds.components(separatedBy: "\r\n\r\n").dropFirst().map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            .filter { !$0.isEmpty }
        #expect(blocks.count == 3, "\(blocks)")
        func fields(_ block: String) -> [String: String] {
            var f: [String: String] = [:]
            for line in block.components(separatedBy: "\r\n") {
                if let c = line.firstIndex(of: ":") {
                    f[String(line[..<c])] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
                }
            }
            return f
        }
        guard blocks.count == 3 else { return }
        let perMessage = fields(blocks[0])
        #expect(perMessage["Reporting-MTA"] == "dns; mx.test")
        #expect(perMessage["Original-Envelope-Id"] == "batch-42")
        #expect(perMessage["Arrival-Date"]?.hasSuffix("+0000") == true)
        let bob = fields(blocks[1])
        #expect(bob["Final-Recipient"] == "rfc822; bob@dest.test")
        #expect(bob["Original-Recipient"] == "rfc822;bob@dest.test")
        #expect(bob["Action"] == "failed")
        #expect(bob["Status"] == "5.1.1")
        #expect(bob["Remote-MTA"] == "dns; mx1.dest.test")
        #expect(bob["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user here")
        #expect(bob["Last-Attempt-Date"] != nil)
        #expect(bob["Will-Retry-Until"] == nil)
        let carol = fields(blocks[2])
        #expect(carol["Final-Recipient"] == "rfc822; carol@dest.test")
        #expect(carol["Original-Recipient"] == nil)
        #expect(carol["Status"] == "5.2.2")

        // RET unspecified: the whole message comes back, byte for byte.
        let returned = parts[2]
        let prefix = "Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n"
        #expect(returned.hasPrefix(prefix))
        #expect(Array(returned.dropFirst(prefix.count).utf8) == Self.original)

        // And an independent parser agrees.
        let parsed = try await Self.parse(bytes)
        #expect(parsed["content_type"] as? String == "multipart/report")
        #expect((parsed["params"] as? [String: String])?["report-type"] == "delivery-status")
        #expect((parsed["defects"] as? [String])?.isEmpty == true, "\(parsed["defects"] ?? "")")
        #expect(parsed["auto_submitted"] as? String == "auto-replied")
        let pparts = parsed["parts"] as? [[String: Any]] ?? []
        #expect(pparts.map { $0["content_type"] as? String ?? "" } == ["text/plain", "message/delivery-status", "message/rfc822"])
        guard pparts.count == 3 else { return }
        for p in pparts { #expect((p["defects"] as? [String])?.isEmpty == true, "\(p)") }
        let pblocks = pparts[1]["blocks"] as? [[String: String]] ?? []
        #expect(pblocks.count == 3)
        #expect(pblocks.dropFirst().map { $0["Action"] } == ["failed", "failed"])
        #expect(pblocks.dropFirst().map { $0["Status"] } == ["5.1.1", "5.2.2"])
        #expect(pblocks.dropFirst().first?["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user here")
        let inner = pparts[2]["inner_headers"] as? [String: String] ?? [:]
        #expect(inner["Message-ID"] == "<orig-1@sender.test>")
        #expect(inner["Subject"] == "quarterly report")
        #expect((pparts[2]["inner_body"] as? String)?.contains(".a line with a dot") == true)
    }

    @Test func retHdrsReturnsOnlyTheHeaders() async throws {
        let bytes = BounceBuilder(hostname: "mx.test").build(
            kind: .failed, original: Self.envelope(ret: "HDRS"), message: Self.original, recipients: [Self.failed()],
            id: QueueID.generate().rawValue)
        let (_, _, parts, _) = try Self.split(bytes)
        #expect(parts.count == 3)
        let last = parts.last ?? ""
        #expect(last.contains("Content-Type: text/rfc822-headers"))
        #expect(last.contains("Message-ID: <orig-1@sender.test>"))
        #expect(!last.contains("Hello Bob"), "no body with RET=HDRS")
        let parsed = try await Self.parse(bytes)
        let pparts = parsed["parts"] as? [[String: Any]] ?? []
        #expect(pparts.last?["content_type"] as? String == "text/rfc822-headers")
        #expect((pparts.last?["text"] as? String)?.contains("Subject: quarterly report") == true)
    }

    @Test func oversizedOriginalsComeBackAsHeaders() throws {
        var builder = BounceBuilder(hostname: "mx.test")
        builder.maxReturnedSize = 100
        let bytes = builder.build(kind: .failed, original: Self.envelope(), message: Self.original,
                                  recipients: [Self.failed()], id: "b1")
        let (_, _, parts, _) = try Self.split(bytes)
        #expect(parts.last?.contains("Content-Type: text/rfc822-headers") == true)
        #expect(parts.last?.contains("Hello Bob") == false)
    }

    @Test func delayNotice() async throws {
        let bytes = BounceBuilder(hostname: "mx.test").build(
            kind: .delayed, original: Self.envelope(), message: Self.original,
            recipients: [Self.failed(status: "4.2.1", diagnostic: "450 4.2.1 mailbox busy")], id: "d1")
        let parsed = try await Self.parse(bytes)
        #expect((parsed["subject"] as? String)?.lowercased().contains("delayed") == true)
        let pparts = parsed["parts"] as? [[String: Any]] ?? []
        let blocks = pparts.count > 1 ? pparts[1]["blocks"] as? [[String: String]] ?? [] : []
        #expect(blocks.last?["Action"] == "delayed")
        #expect(blocks.last?["Status"] == "4.2.1")
        #expect(blocks.last?["Will-Retry-Until"] != nil)
        #expect(pparts.last?["content_type"] as? String == "text/rfc822-headers", "a delay notice returns headers only")
    }

    @Test func remoteTextCannotInjectFields() throws {
        let evil = "550 5.1.1 nope\r\nAction: delivered\r\n\r\n--fake-boundary\nX: y"
        let bytes = BounceBuilder(hostname: "mx.test").build(
            kind: .failed, original: Self.envelope(envid: "id\r\nStatus: 2.0.0"), message: Self.original,
            recipients: [Self.failed(diagnostic: evil)], id: "e1")
        let (_, _, parts, _) = try Self.split(bytes)
        #expect(parts.count == 3)
        let ds = parts.count > 1 ? parts[1] : ""
        #expect(!ds.contains("\r\nAction: delivered"))
        #expect(!ds.contains("\r\nStatus: 2.0.0"))
        #expect(ds.components(separatedBy: "\r\nAction: ").count == 2, "exactly one Action field")
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"), "no bare LF")
    }

    @Test func messageWithoutFinalCRLFStillClosesTheMultipart() throws {
        let body = Array("Subject: x\r\n\r\nno newline at the end".utf8)
        let bytes = BounceBuilder(hostname: "mx.test").build(kind: .failed, original: Self.envelope(), message: body,
                                                             recipients: [Self.failed()], id: "n1")
        let (_, boundary, parts, _) = try Self.split(bytes)
        #expect(parts.count == 3)
        #expect(String(decoding: bytes, as: UTF8.self).hasSuffix("no newline at the end\r\n\r\n--\(boundary)--\r\n"))
    }

    @Test func internationalRecipientUsesUTF8AddressType() throws {
        let bytes = BounceBuilder(hostname: "mx.test").build(
            kind: .failed, original: Self.envelope(), message: Self.original,
            recipients: [Self.failed("jörg@dest.test", orcpt: nil)], id: "u1")
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("Final-Recipient: utf-8; jörg@dest.test\r\n"))
    }

    @Test("NOTIFY decides which reports are wanted (RFC 3461 §4.1)", arguments: [
        (nil as [String]?, true, true), (["NEVER"], false, false), (["FAILURE"], true, false),
        (["DELAY"], false, true), (["SUCCESS"], false, false), (["SUCCESS", "FAILURE", "DELAY"], true, true),
    ])
    func notify(_ notify: [String]?, failure: Bool, delay: Bool) {
        #expect(BounceBuilder.wants(.failed, notify: notify) == failure)
        #expect(BounceBuilder.wants(.delayed, notify: notify) == delay)
    }
}
