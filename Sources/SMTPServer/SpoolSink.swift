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
    /// The tenants of SMTP AUTH users: their mail is tagged and counted (nil: no tenants).
    let tenants: (any SubmissionTenants)?

    /// `onCommit` runs after each durable commit (the queue manager indexes the message).
    public init(spool: Spool, hostname: String, signer: DKIMSigner = DKIMSigner(keys: []),
                tenants: (any SubmissionTenants)? = nil,
                onCommit: @escaping @Sendable (Envelope) async -> Void = { _ in }) {
        self.spool = spool
        self.hostname = hostname
        self.signer = signer
        self.tenants = tenants
        self.onCommit = onCommit
    }

    /// The message is counted against its tenant's quota before anything is written:
    /// over it, ``SubmissionRefused`` carries the `452 4.7.1` reply and nothing is
    /// spooled; a spool failure gives the count back.
    public func commit(_ tx: SMTPTransaction, session: SMTPSessionInfo) async throws -> String {
        var tenant: String?
        var release: (@Sendable () async -> Void)?
        if let user = tx.authenticatedUser, let tenants, let tag = await tenants.tenant(ofUser: user) {
            tenant = tag
            switch await tenants.admit(tenant: tag, recipients: tx.recipients.count) {
            case .refused(let reply): throw SubmissionRefused(reply)
            case .admitted(let r): release = r
            }
        }
        do {
            return try await store(tx, session: session, tenant: tenant)
        } catch {
            await release?()
            throw error
        }
    }

    private func store(_ tx: SMTPTransaction, session: SMTPSessionInfo, tenant: String?) async throws -> String {
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
            body: tx.body, smtputf8: tx.smtputf8, dsnRet: tx.dsnRet, dsnEnvid: tx.dsnEnvid, tenant: tenant)
        let stored = try await spool.store(message: message, envelope: envelope)
        await onCommit(stored)
        return id.rawValue
    }
}
