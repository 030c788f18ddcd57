import Foundation
import MailFormat
import SMTPCore
import Spool

/// RFC 3464 delivery status notifications: `multipart/report; report-type=delivery-status`
/// with a human-readable part, the `message/delivery-status` fields, and the original
/// message (`RET=FULL` or unspecified, up to `maxReturnedSize`) or its headers (`RET=HDRS`).
public struct BounceBuilder: Sendable {
    public struct FailedRecipient: Sendable {
        public var address: String
        public var orcpt: String?
        public var status: String        // e.g. "5.1.1"
        public var remoteMTA: String?
        public var diagnostic: String?   // the remote reply, e.g. "550 5.1.1 no such user"
        public var lastAttempt: Date
    }

    public enum Kind: Sendable { case failed, delayed }

    public var hostname: String
    public var maxReturnedSize: Int = 1024 * 1024

    public init(hostname: String) { self.hostname = hostname }

    /// Whether the sender asked (or did not refuse) to hear about this outcome.
    public static func wants(_ kind: Kind, notify: [String]?) -> Bool {
        guard let notify else { return true }      // default: FAILURE,DELAY (RFC 3461 §4.1)
        switch kind {
        case .failed: return notify.contains("FAILURE")
        case .delayed: return notify.contains("DELAY")
        }
    }

    public func build(kind: Kind, original envelope: Envelope, message: [UInt8], recipients: [FailedRecipient],
                      id: String, now: Date = Date()) -> [UInt8] {
        let boundary = "\(id)/\(hostname)"
        let date = MailDate.rfc5322(now)
        var out = ""
        out += "From: Mail Delivery System <MAILER-DAEMON@\(hostname)>\r\n"
        out += "To: <\(envelope.sender)>\r\n"
        out += kind == .failed ? "Subject: Message not delivered\r\n"
                               : "Subject: Message delayed, delivery still being attempted\r\n"
        out += "Date: \(date)\r\n"
        out += "Message-ID: <\(id)@\(hostname)>\r\n"
        out += "Auto-Submitted: auto-replied\r\n"
        out += "MIME-Version: 1.0\r\n"
        out += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"\(boundary)\"\r\n"
        out += "Content-Transfer-Encoding: 8bit\r\n"
        out += "\r\n"
        out += "This is a MIME-encapsulated message.\r\n\r\n"
        out += "--\(boundary)\r\n"
        out += "Content-Description: Notification\r\n"
        out += "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        out += "Herald at \(hostname) reporting on a message you sent.\r\n\r\n"
        if kind == .failed {
            out += "Delivery to the recipients listed below failed permanently and will not\r\n"
            out += "be retried. The receiving side's answer is given for each; a copy of\r\n"
            out += "your message (or its headers) follows this report.\r\n\r\n"
        } else {
            out += "Delivery to the recipients listed below has not succeeded yet. Herald keeps\r\n"
            out += "trying; there is nothing you need to do unless this report is followed by\r\n"
            out += "a failure notice.\r\n\r\n"
        }
        for r in recipients {
            out += "<\(r.address)>: \(r.diagnostic.map(Self.oneLine) ?? "status \(r.status)")\r\n"
        }
        out += "\r\n--\(boundary)\r\n"
        out += "Content-Description: Delivery report\r\n"
        out += "Content-Type: message/delivery-status\r\n\r\n"
        out += "Reporting-MTA: dns; \(hostname)\r\n"
        if let envid = envelope.dsnEnvid { out += "Original-Envelope-Id: \(Self.oneLine(envid))\r\n" }
        out += "Arrival-Date: \(MailDate.rfc5322(envelope.arrival))\r\n"
        for r in recipients {
            out += "\r\n"
            let utf8 = r.address.utf8.contains(where: { $0 >= 0x80 })
            out += "Final-Recipient: \(utf8 ? "utf-8" : "rfc822"); \(r.address)\r\n"
            if let orcpt = r.orcpt { out += "Original-Recipient: \(Self.oneLine(orcpt))\r\n" }
            out += "Action: \(kind == .failed ? "failed" : "delayed")\r\n"
            out += "Status: \(r.status)\r\n"
            if let mta = r.remoteMTA { out += "Remote-MTA: dns; \(Self.oneLine(mta))\r\n" }
            if let d = r.diagnostic { out += "Diagnostic-Code: smtp; \(Self.oneLine(d))\r\n" }
            out += "Last-Attempt-Date: \(MailDate.rfc5322(r.lastAttempt))\r\n"
            if kind == .delayed {
                out += "Will-Retry-Until: \(MailDate.rfc5322(envelope.arrival.addingTimeInterval(RetrySchedule().maxLifetime)))\r\n"
            }
        }
        out += "\r\n--\(boundary)\r\n"
        let headersOnly = envelope.dsnRet == "HDRS" || message.count > maxReturnedSize || kind == .delayed
        var bytes = Array(out.utf8)
        if headersOnly {
            bytes += Array("Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n".utf8)
            bytes += Self.headerSection(message)
        } else {
            bytes += Array("Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n".utf8)
            bytes += message
            if !(message.count >= 2 && message[message.count - 2] == 0x0D && message.last == 0x0A) {
                bytes += [0x0D, 0x0A]
            }
        }
        bytes += Array("\r\n--\(boundary)--\r\n".utf8)
        return bytes
    }

    static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\r" || $0 == "\n" || $0 == "\r\n" ? " " : $0 })
    }

    static func headerSection(_ m: [UInt8]) -> [UInt8] {
        var i = 0
        while i + 3 < m.count {
            if m[i] == 0x0D && m[i + 1] == 0x0A && m[i + 2] == 0x0D && m[i + 3] == 0x0A { return Array(m[..<(i + 2)]) }
            i += 1
        }
        return m
    }
}
