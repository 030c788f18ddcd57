import CampaignStore
import DKIM
import Foundation
import Logging
import Synchronization

/// The signer for a database tenant's mail: the tenant's own keys (made over the API,
/// ``DKIMKeyStore``) for their domains, the `[[dkim]]` keys of the config for the rest.
/// Keys are loaded from the database at a tenant's first message and kept for `ttl`
/// (so a key made on another node signs within that time); a change through this
/// node's API takes effect at once (``invalidate(tenant:)``). When the database cannot
/// be read, the last keys loaded (or the config's) sign, and the error is logged.
public final class TenantDKIMSigners: Sendable {
    let store: DKIMKeyStore
    let base: [DKIMKey]
    let ttl: TimeInterval
    let logger: Logger
    private let cache = Mutex<[Int64: (loaded: Date, signer: DKIMSigner)]>([:])

    public init(store: DKIMKeyStore, base: [DKIMKey], ttl: TimeInterval = 30,
                logger: Logger = Logger(label: "herald.dkim")) {
        self.store = store
        self.base = base
        self.ttl = ttl
        self.logger = logger
    }

    /// The signer for mail tagged with `tenant` (an envelope's tenant: a database
    /// tenant's id); nil for anything else (config tenants, SMTP mail): the caller's own.
    public func signer(forTenant tenant: String?) async -> DKIMSigner? {
        guard let tenant, let id = Int64(tenant), id > 0 else { return nil }
        let now = Date()
        let cached = cache.withLock { $0[id] }
        if let cached, now.timeIntervalSince(cached.loaded) < ttl { return cached.signer }
        do {
            let (keys, unopened) = try await store.signingKeys(tenant: TenantID(id))
            for problem in unopened {
                logger.error("cannot open a tenant's DKIM key; its mail goes unsigned by it",
                             metadata: ["tenant": "\(id)", "key": "\(problem)"])
            }
            let domains = Set(keys.map(\.domain))
            let signer = DKIMSigner(keys: keys + base.filter { !domains.contains($0.domain) })
            cache.withLock { $0[id] = (now, signer) }
            return signer
        } catch {
            logger.warning("cannot load a tenant's DKIM keys", metadata: ["tenant": "\(id)", "error": "\(error)"])
            return cached?.signer
        }
    }

    /// Forgets the tenant's keys: the next message loads them again.
    public func invalidate(tenant: TenantID) {
        _ = cache.withLock { $0.removeValue(forKey: tenant.rawValue) }
    }
}
