import DKIM
import Foundation
import Spool
import SMTPCore

/// Commits finished SMTP transactions to the spool: adds the trace headers, signs the
/// message when its From domain has a DKIM key (once, here: the signature is spooled with
/// the message and never recomputed), builds the envelope and waits for durability.
public struct SpoolSink: SMTPMessageSink {
    let spool: Spool
    let hostname: String
    let signer: DKIMSigner
    let onCommit: @Sendable (Envelope) async -> Void

    /// `onCommit` runs after each durable commit (the queue manager indexes the message).
    public init(spool: Spool, hostname: String, signer: DKIMSigner = DKIMSigner(keys: []),
                onCommit: @escaping @Sendable (Envelope) async -> Void = { _ in }) {
        self.spool = spool
        self.hostname = hostname
        self.signer = signer
        self.onCommit = onCommit
    }

    public func commit(_ tx: SMTPTransaction, session: SMTPSessionInfo) async throws -> String {
        let arrival = Date()
        let id = QueueID.generate(now: arrival)
        let prepared = MessagePreparation.prepare(tx.message, .init(
            queueID: id.rawValue, hostname: hostname, clientIP: session.clientIP, helo: tx.helo,
            authenticated: tx.authenticatedUser != nil, tls: tx.tls, esmtp: tx.esmtp, smtputf8: tx.smtputf8,
            singleRecipient: tx.recipients.count == 1 ? tx.recipients[0].mailbox.description : nil,
            arrival: arrival))
        let message = try signer.sign(prepared, now: arrival)
        let envelope = Envelope(
            id: id, arrival: arrival, sender: tx.sender.description,
            origin: EnvelopeOrigin(listener: session.listener, clientAddress: session.clientAddress,
                                   authenticatedUser: tx.authenticatedUser, helo: tx.helo, tls: tx.tls),
            recipients: tx.recipients.map {
                EnvelopeRecipient(address: $0.mailbox.description, notify: $0.notify, orcpt: $0.orcpt)
            },
            body: tx.body, smtputf8: tx.smtputf8, dsnRet: tx.dsnRet, dsnEnvid: tx.dsnEnvid)
        let stored = try await spool.store(message: message, envelope: envelope)
        await onCommit(stored)
        return id.rawValue
    }
}
