import Spool

/// Commits rendered messages to the spool and tells the queue manager about them.
public struct SpoolWriter: Sendable {
    public let spool: Spool
    let onCommit: @Sendable (Envelope) async -> Void

    public init(spool: Spool, onCommit: @escaping @Sendable (Envelope) async -> Void = { _ in }) {
        self.spool = spool
        self.onCommit = onCommit
    }

    public func commit(_ message: [UInt8], _ envelope: Envelope) async throws -> Envelope {
        let stored = try await spool.store(message: message, envelope: envelope)
        await onCommit(stored)
        return stored
    }
}
