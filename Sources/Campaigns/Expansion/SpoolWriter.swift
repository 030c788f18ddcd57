import DKIM
import Spool

/// Commits rendered messages to the spool and tells the queue manager about them. A
/// message whose From domain has a DKIM key is signed first, once: the signature is
/// spooled with it.
public struct SpoolWriter: Sendable {
    public let spool: Spool
    let signer: DKIMSigner
    /// A database tenant's mail is signed with its own keys too (made over the API).
    let tenantSigners: TenantDKIMSigners?
    let onCommit: @Sendable (Envelope) async -> Void

    public init(spool: Spool, signer: DKIMSigner = DKIMSigner(keys: []), tenantSigners: TenantDKIMSigners? = nil,
                onCommit: @escaping @Sendable (Envelope) async -> Void = { _ in }) {
        self.spool = spool
        self.signer = signer
        self.tenantSigners = tenantSigners
        self.onCommit = onCommit
    }

    public func commit(_ message: [UInt8], _ envelope: Envelope) async throws -> Envelope {
        let signer = await tenantSigners?.signer(forTenant: envelope.tenant) ?? self.signer
        let signed = try signer.sign(message, now: envelope.arrival)
        let stored = try await spool.store(message: signed, envelope: envelope)
        await onCommit(stored)
        return stored
    }

    /// One job's result with the index of its item. A named struct on purpose: child
    /// tasks returning an `(Int, Result<…, any Error>)` tuple came back with a wrong
    /// index in release builds.
    struct Completed<Value: Sendable>: Sendable {
        var index: Int
        var result: Result<Value, any Error>
    }

    /// Runs one job per item `0..<count` (typically render and ``commit(_:_:)``), at most
    /// `limit` at a time, so that concurrent commits share disk flushes. Jobs start in
    /// item order: `start(i)` runs here, in the caller's isolation, when item `i`'s turn
    /// comes, and returns the work to run in a child task. Each value is handed to
    /// `received` as it arrives (completion order, with its item's index). Once a job
    /// throws, or `received` answers false, no further job starts; those running finish
    /// and their values are still received. Returns the first error a job threw.
    public static func concurrently<Value: Sendable>(
        count: Int, limit: Int, isolation: isolated (any Actor)? = #isolation,
        start: (Int) -> @Sendable () async throws -> Value,
        received: (Int, Value) async -> Bool
    ) async -> (any Error)? {
        let limit = max(1, limit)
        var failure: (any Error)?
        var proceed = true
        await withTaskGroup(of: Completed<Value>.self) { group in
            var next = 0
            var running = 0
            while true {
                while failure == nil && proceed && next < count && running < limit {
                    let index = next
                    let job = start(index)
                    next += 1
                    running += 1
                    group.addTask {
                        do {
                            return Completed(index: index, result: .success(try await job()))
                        } catch {
                            return Completed(index: index, result: .failure(error))
                        }
                    }
                }
                guard let completed = await group.next() else { break }
                running -= 1
                switch completed.result {
                case .success(let value):
                    if !(await received(completed.index, value)) { proceed = false }
                case .failure(let error):
                    failure = failure ?? error
                }
            }
        }
        return failure
    }
}
