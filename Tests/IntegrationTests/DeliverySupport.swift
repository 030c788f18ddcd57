import Foundation
import HeraldTestSupport
import Testing

/// Shared helpers of the `Delivery*` integration scenarios: a Herald with delivery on
/// and short time-outs, routes to local sinks, submission off the cooperative pool,
/// the delivery log and the sinks' arrivals read back.
enum DeliveryIT {
    /// One message to submit: envelope and bytes.
    struct Mail: Sendable {
        var from: String
        var to: [String]
        var message: [UInt8]
        var tag: String
    }

    /// A message with a unique Message-ID `<tag@client.test>` and a body naming `tag`.
    static func mail(_ tag: String, from: String = "sender@client.test", to: [String], bodyLines: Int = 6) -> Mail {
        Mail(from: from, to: to, message: TestMessage.make(tag: tag, bodyLines: bodyLines, from: from, to: to.first ?? ""),
             tag: tag)
    }

    /// Herald options: a plain relay listener (loopback trusted), delivery on, short
    /// client time-outs, fast retries; `delivery` adds or overrides `[delivery]` keys,
    /// `toml` adds whole tables (`[[route]]`, `[[throttle]]`, `[dns]`).
    static func options(delivery: [String] = [], toml: [String] = [], enabled: Bool = true) -> HeraldProcess.Options {
        var o = HeraldProcess.Options(listeners: [.relay(tls: "off")])
        o.deliveryEnabled = enabled
        let defaults: [String: String] = [
            "connect_timeout": "\"5s\"", "command_timeout": "\"10s\"", "data_timeout": "\"10s\"",
            "dot_timeout": "\"10s\"", "idle_timeout": "\"5s\"", "minimal_backoff": "\"1s\"",
            "maximal_backoff": "\"2s\"", "throttle_backoff": "\"2s\"", "rescan_interval": "\"2s\"",
        ]
        let given = Set(delivery.compactMap { $0.split(separator: "=").first?.trimmingCharacters(in: .whitespaces) })
        o.extraDelivery = defaults.filter { !given.contains($0.key) }.sorted { $0.key < $1.key }
            .map { "\($0.key) = \($0.value)" } + delivery
        o.extraTOML = toml
        return o
    }

    /// A `[[route]]` table pinning `domain` (a pattern) to a sink on loopback.
    static func route(_ domain: String, port: Int, tls: String = "off") -> String {
        "[[route]]\ndomain = \"\(domain)\"\nhost = \"127.0.0.1:\(port)\"\ntls = \"\(tls)\""
    }

    /// Submits every mail over one SMTP session, on a thread of its own (the client is
    /// blocking); returns the end-of-data reply of each.
    static func submit(port: Int, _ mails: [Mail]) async throws -> [WireReply] {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<[WireReply], any Error>) in
            let thread = Thread {
                do {
                    let client = try SMTPTestClient(port: port, timeout: 30)
                    defer { client.close() }
                    try client.greetAndEhlo()
                    var replies: [WireReply] = []
                    for m in mails {
                        replies.append(try client.sendMail(from: m.from, to: m.to, message: m.message))
                    }
                    _ = try? client.command("QUIT")
                    c.resume(returning: replies)
                } catch {
                    c.resume(throwing: error)
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Submits and requires a `250` with a queue id for every mail; returns the ids.
    @discardableResult
    static func submitAccepted(port: Int, _ mails: [Mail], sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        let replies = try await submit(port: port, mails)
        var ids: [String] = []
        for (m, r) in zip(mails, replies) {
            guard r.code == 250, let id = r.queueID else {
                Issue.record("\(m.tag) not accepted: \(r)", sourceLocation: sourceLocation)
                continue
            }
            ids.append(id)
        }
        return ids
    }

    /// The delivery log's lines, decoded.
    static func deliveryLog(_ herald: HeraldProcess) -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: herald.deliveryLogPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Log lines with `result`, optionally for one recipient.
    static func logLines(_ herald: HeraldProcess, result: String, recipient: String? = nil) -> [[String: Any]] {
        deliveryLog(herald).filter {
            $0["result"] as? String == result && (recipient == nil || $0["recipient"] as? String == recipient)
        }
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
    @discardableResult
    static func waitUntil(timeout: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try await condition() { return true }
            if Date() >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until the spool's `queue/` holds no message (everything delivered or failed).
    static func waitForEmptySpool(_ herald: HeraldProcess, timeout: Double) async -> Bool {
        await waitUntil(timeout: timeout) { herald.spoolIDs().isEmpty }
    }

    /// The sink's stored messages with their index lines, paired by arrival number.
    static func arrivals(_ sink: SinkProcess) -> [(info: SinkProcess.Received, bytes: [UInt8])] {
        sink.index().compactMap { info in
            let path = sink.outDirectory + "/" + String(format: "%07d.eml", info.n)
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            return (info, Array(data))
        }
    }

    /// The value of header `name` in a message (first occurrence, unfolded), or nil.
    static func header(_ name: String, in message: [UInt8]) -> String? {
        let text = String(decoding: message, as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        var value: String?
        for line in head.components(separatedBy: "\r\n") {
            if line.hasPrefix(" ") || line.hasPrefix("\t") {
                if value != nil { value! += " " + line.trimmingCharacters(in: .whitespaces) }
                continue
            }
            if value != nil { break }
            if line.lowercased().hasPrefix(name.lowercased() + ":") {
                value = String(line.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
            }
        }
        return value
    }
}

extension DeliveryIT {
    /// Runs `body` with a connected, greeted client on a thread of its own.
    static func session<T: Sendable>(port: Int, _ body: @escaping @Sendable (SMTPTestClient) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            let thread = Thread {
                do {
                    let client = try SMTPTestClient(port: port, timeout: 30)
                    defer { client.close() }
                    try client.greetAndEhlo()
                    let result = try body(client)
                    _ = try? client.command("QUIT")
                    c.resume(returning: result)
                } catch {
                    c.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    /// A delivery status notification parsed by Python's `email` package: the top-level
    /// headers, the parts' types, the delivery-status blocks, the returned message's headers.
    struct DSN {
        var contentType: String
        var reportType: String?
        var subject: String
        var autoSubmitted: String?
        var partTypes: [String]
        var perMessage: [String: String]
        var recipients: [[String: String]]
        var returnedHeaders: [String: String]
        var defects: [String]
    }

    static func parseDSN(_ bytes: [UInt8]) async throws -> DSN {
        let script = #"""
import sys, json, email
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
out = {"ct": m.get_content_type(), "rt": m.get_param("report-type"), "subject": m["Subject"] or "",
       "auto": m["Auto-Submitted"], "types": [], "blocks": [], "returned": {}, "defects": [str(d) for d in m.defects]}
for part in (m.get_payload() if m.is_multipart() else []):
    out["types"].append(part.get_content_type())
    out["defects"] += [str(d) for d in part.defects]
    if part.get_content_type() == "message/delivery-status":
        out["blocks"] = [dict(b.items()) for b in part.get_payload()]
    elif part.get_content_type() == "message/rfc822":
        out["returned"] = dict(part.get_payload()[0].items())
    elif part.get_content_type() == "text/rfc822-headers":
        out["returned"] = dict(email.message_from_bytes(part.get_payload(decode=True)).items())
print(json.dumps(out))
"""#
        let r = try await Command.run("python3", ["-c", script], stdin: bytes, timeout: 30)
        guard r.termination.succeeded, let o = try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any] else {
            throw SubprocessError("cannot parse the DSN: \(r)")
        }
        let blocks = o["blocks"] as? [[String: String]] ?? []
        return DSN(contentType: o["ct"] as? String ?? "", reportType: o["rt"] as? String, subject: o["subject"] as? String ?? "",
                   autoSubmitted: o["auto"] as? String, partTypes: o["types"] as? [String] ?? [],
                   perMessage: blocks.first ?? [:], recipients: Array(blocks.dropFirst()),
                   returnedHeaders: o["returned"] as? [String: String] ?? [:], defects: o["defects"] as? [String] ?? [])
    }
}

extension DeliveryIT {
    /// aiosmtpd records `MAIL FROM:<>` as "<>".
    static func isNullSender(_ mailFrom: String) -> Bool { mailFrom == "" || mailFrom == "<>" }
}
