import Foundation
import SMTPCore

/// One message for one destination: the envelope part that travels, and the bytes.
public struct OutboundTransaction: Sendable {
    public struct Recipient: Sendable, Equatable {
        public var address: String
        public var notify: [String]?
        public var orcpt: String?
        public init(address: String, notify: [String]? = nil, orcpt: String? = nil) {
            self.address = address
            self.notify = notify
            self.orcpt = orcpt
        }
    }

    public var sender: String
    public var recipients: [Recipient]
    public var message: [UInt8]
    public var declared8BitMIME: Bool
    public var smtputf8: Bool
    public var dsnRet: String?
    public var dsnEnvid: String?

    public init(sender: String, recipients: [Recipient], message: [UInt8], declared8BitMIME: Bool = false,
                smtputf8: Bool = false, dsnRet: String? = nil, dsnEnvid: String? = nil) {
        self.sender = sender
        self.recipients = recipients
        self.message = message
        self.declared8BitMIME = declared8BitMIME
        self.smtputf8 = smtputf8
        self.dsnRet = dsnRet
        self.dsnEnvid = dsnEnvid
    }

    var hasEightBitContent: Bool { message.contains(where: { $0 >= 0x80 }) }
}

/// What became of one recipient in one attempt.
public enum RecipientOutcome: Sendable, Equatable {
    case delivered(SMTPReply)
    case deferred(SMTPReply)
    case failed(SMTPReply)

    public var reply: SMTPReply {
        switch self {
        case .delivered(let r), .deferred(let r), .failed(let r): return r
        }
    }

    static func from(_ reply: SMTPReply) -> RecipientOutcome {
        if reply.code / 100 == 2 { return .delivered(reply) }
        if reply.code / 100 == 5 { return .failed(reply) }
        return .deferred(reply)
    }
}

/// RFC 3461 xtext: `+XX` for `+`, `=`, and octets outside 33…126.
func xtext(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        if b < 33 || b > 126 || b == UInt8(ascii: "+") || b == UInt8(ascii: "=") {
            out += "+" + String(format: "%02X", b)
        } else {
            out += String(UnicodeScalar(b))
        }
    }
    return out
}

extension SMTPClientConnection {
    /// Runs one mail transaction (RFC 5321 §3.3), pipelined when the server offers
    /// PIPELINING (RFC 2920): MAIL, every RCPT and DATA go out in one write, then the
    /// message. Returns one outcome per recipient, in order. Throws only when the
    /// session broke (time-out, disconnect, garbage): then `error.phase` says whether the
    /// message may have been delivered (`.dot`).
    public func send(_ tx: OutboundTransaction) async throws -> [RecipientOutcome] {
        let ext = extensions
        let all = { (reply: SMTPReply) in [RecipientOutcome](repeating: .from(reply), count: tx.recipients.count) }
        // Checks that need no round trip.
        if let limit = ext["SIZE"].flatMap({ Int($0) }), limit > 0, tx.message.count > limit {
            return all(SMTPReply(552, EnhancedStatusCode(5, 3, 4),
                                 "Message size \(tx.message.count) exceeds the server's limit \(limit) (\(peer))"))
        }
        if tx.smtputf8 && ext["SMTPUTF8"] == nil {
            return all(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "\(peer) does not support SMTPUTF8"))
        }
        let eightBit = tx.declared8BitMIME || tx.hasEightBitContent
        if eightBit && ext["8BITMIME"] == nil && tx.hasEightBitContent {
            // RFC 6152 §3: no 8-bit data to a server without 8BITMIME; Herald does not
            // convert content, so this destination cannot take this message.
            return all(SMTPReply(554, EnhancedStatusCode(5, 6, 3),
                                 "\(peer) does not support 8BITMIME and the message has 8-bit content"))
        }

        var mail = "MAIL FROM:<\(tx.sender)>"
        if ext["SIZE"] != nil { mail += " SIZE=\(tx.message.count)" }
        if eightBit && ext["8BITMIME"] != nil { mail += " BODY=8BITMIME" }
        if tx.smtputf8 { mail += " SMTPUTF8" }
        let dsn = ext["DSN"] != nil
        if dsn, let ret = tx.dsnRet { mail += " RET=\(ret)" }
        if dsn, let envid = tx.dsnEnvid { mail += " ENVID=\(xtext(envid))" }
        var commands = [mail]
        for r in tx.recipients {
            var rcpt = "RCPT TO:<\(r.address)>"
            if dsn, let notify = r.notify { rcpt += " NOTIFY=\(notify.joined(separator: ","))" }
            if dsn, let orcpt = r.orcpt, let semi = orcpt.firstIndex(of: ";") {
                rcpt += " ORCPT=\(orcpt[..<semi]);\(xtext(String(orcpt[orcpt.index(after: semi)...])))"
            }
            commands.append(rcpt)
        }

        var mailReply: SMTPReply
        var rcptReplies: [SMTPReply] = []
        var dataReply: SMTPReply?
        if ext["PIPELINING"] != nil {
            let bytes = Array((commands.joined(separator: "\r\n") + "\r\nDATA\r\n").utf8)
            let replies = try await exchange(bytes, replies: commands.count + 1, phase: .mailFrom)
            mailReply = replies[0]
            rcptReplies = Array(replies[1..<(commands.count)])
            dataReply = replies[commands.count]
        } else {
            mailReply = try await command(commands[0], phase: .mailFrom)
            if mailReply.code / 100 == 2 {
                for c in commands.dropFirst() {
                    let reply = try await command(c, phase: .rcptTo)
                    rcptReplies.append(reply)
                    if reply.code == 421 { break }
                }
                if rcptReplies.contains(where: { $0.code / 100 == 2 }) && !rcptReplies.contains(where: { $0.code == 421 }) {
                    dataReply = try await command("DATA", phase: .data)
                }
            }
        }

        // 421: the server is closing the session (often a throttle). Every recipient
        // waits for a later attempt with that reply; no RSET on a closing connection.
        if let closing = ([mailReply] + rcptReplies + (dataReply.map { [$0] } ?? [])).first(where: { $0.code == 421 }) {
            close()
            return all(closing)
        }
        guard mailReply.code / 100 == 2 else {
            if dataReply?.code == 354 { _ = try? await exchange(Array(".\r\n".utf8), replies: 1, phase: .dot) }
            await resetAfterRefusal()
            return all(mailReply)
        }
        var outcomes = rcptReplies.map { RecipientOutcome.from($0) }
        let accepted = outcomes.indices.filter { if case .delivered = outcomes[$0] { return true } else { return false } }
        guard let dataReply, dataReply.code == 354 else {
            // No DATA: nobody accepted, or DATA itself was refused.
            if let dataReply, !accepted.isEmpty {
                for i in accepted { outcomes[i] = .from(dataReply) }
            }
            await resetAfterRefusal()
            return outcomes
        }
        if accepted.isEmpty {
            // Pipelined DATA was accepted although every RCPT failed: send an empty message
            // to end it (RFC 2920 §3.1), and let the failure replies stand.
            // Nobody can receive this empty message: a failure here changes no outcome.
            if (try? await exchange(Array(".\r\n".utf8), replies: 1, phase: .dot)) != nil {
                await resetAfterRefusal()
            } else {
                close()
            }
            return outcomes
        }
        let final = try await exchange(dotStuffed(tx.message), replies: 1, phase: .dot)[0]
        countMessage()
        // Some servers keep transaction state after a refused message: start clean.
        if final.code / 100 != 2 { await resetAfterRefusal() }
        for i in accepted { outcomes[i] = .from(final) }
        return outcomes
    }

    /// RSET after a refusal whose outcome is already known. Servers often hang up right
    /// after a 5xx (or say 421 after the dot): a failed RSET must not turn the known
    /// outcome into "session broke after the dot, may be a duplicate". The connection
    /// is closed instead, so the pool drops it.
    private func resetAfterRefusal() async {
        do {
            try await rset()
        } catch {
            close()
        }
    }
}
