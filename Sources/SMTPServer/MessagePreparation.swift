import Foundation
import MailFormat
import SMTPCore

/// Adds the trace and the headers a submitted message must carry, keeping the client's
/// bytes as they are: Herald's lines go on top (a `Received:` field, then `Message-ID:`
/// and `Date:` when the message has none), the original message follows unchanged.
public enum MessagePreparation {
    public struct Context: Sendable {
        public var queueID: String
        public var hostname: String
        public var clientIP: String
        public var helo: String?
        public var authenticated: Bool
        public var tls: Bool
        public var esmtp: Bool
        public var smtputf8: Bool
        public var singleRecipient: String?
        public var arrival: Date
        public init(queueID: String, hostname: String, clientIP: String, helo: String?, authenticated: Bool,
                    tls: Bool, esmtp: Bool, smtputf8: Bool, singleRecipient: String?, arrival: Date) {
            self.queueID = queueID
            self.hostname = hostname
            self.clientIP = clientIP
            self.helo = helo
            self.authenticated = authenticated
            self.tls = tls
            self.esmtp = esmtp
            self.smtputf8 = smtputf8
            self.singleRecipient = singleRecipient
            self.arrival = arrival
        }
    }

    public static func prepare(_ message: [UInt8], _ ctx: Context) -> [UInt8] {
        let headers = scanHeaders(message)
        var top = ""
        // RFC 5321 §4.4 and RFC 3848 / RFC 6531 protocol names.
        var proto = ctx.smtputf8 ? "UTF8SMTP" : (ctx.esmtp ? "ESMTP" : "SMTP")
        if ctx.tls { proto += "S" }
        if ctx.authenticated { proto += "A" }
        let helo = sanitize(ctx.helo ?? "unknown")
        top += "Received: from \(helo) ([\(ctx.clientIP)])\r\n"
        top += "\tby \(ctx.hostname) (Herald) with \(proto) id \(ctx.queueID)"
        if let rcpt = ctx.singleRecipient {
            top += "\r\n\tfor <\(sanitize(rcpt))>"
        }
        top += "; \(MailDate.rfc5322(ctx.arrival))\r\n"
        if !headers.hasMessageID { top += "Message-ID: <\(ctx.queueID)@\(ctx.hostname)>\r\n" }
        if !headers.hasDate { top += "Date: \(MailDate.rfc5322(ctx.arrival))\r\n" }
        // A message that does not start with a header field gets an empty line, so that
        // its first line stays in the body instead of reading as a broken header.
        // A message that already starts with the empty line (no header fields) has it.
        if !headers.startsWithHeader && !message.starts(with: [0x0D, 0x0A]) { top += "\r\n" }
        var out = Array(top.utf8)
        out.reserveCapacity(out.count + message.count)
        out.append(contentsOf: message)
        return out
    }

    struct HeaderScan {
        var hasMessageID = false
        var hasDate = false
        var startsWithHeader = false
    }

    /// Looks at field names at line starts up to the first empty line.
    static func scanHeaders(_ message: [UInt8]) -> HeaderScan {
        var scan = HeaderScan()
        var lineStart = 0
        var first = true
        while lineStart < message.count {
            var end = lineStart
            while end < message.count && message[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > lineStart && message[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            if lineEnd == lineStart { break }   // empty line: end of the header section
            let line = message[lineStart..<lineEnd]
            let firstByte = line.first!
            if firstByte != 0x20 && firstByte != 0x09 {
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > lineStart,
                      line[lineStart..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
                else { break }
                if first { scan.startsWithHeader = true }
                let name = String(decoding: line[lineStart..<colon], as: UTF8.self).lowercased()
                if name == "message-id" { scan.hasMessageID = true }
                if name == "date" { scan.hasDate = true }
            } else if first {
                break
            }
            first = false
            lineStart = end + 1
        }
        if message.isEmpty { scan.startsWithHeader = false }
        return scan
    }

    static func sanitize(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.value >= 0x21 && $0.value != 0x7F && $0 != "(" && $0 != ")" }
            .map(Character.init)).prefix(255).description
    }
}
