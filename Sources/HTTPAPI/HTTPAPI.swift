import Campaigns
import Hummingbird
import Spool

/// Herald's HTTP API: `/healthz`, the web console under `/ui/` (``ConsoleUI``), and under `/v1` (bearer API key, every object scoped to
/// the key's tenant) the endpoints in docs/openapi.yaml. Errors are RFC 9457 problems.
public enum HTTPAPI {
    /// - Parameter stores: the PostgreSQL stores, when a database is configured. Then the
    ///   lists, subscribers and import routes exist, and the database's API keys
    ///   (``DatabaseAPIKeys``) are accepted after `verifier`'s.
    /// - Parameter admin: the admin API (``AdminV1``), opened by `adminKeys` only.
    /// - Parameter unsubscribeKey: the key of the unsubscribe tokens (``UnsubscribeToken``);
    ///   with `stores`, `GET`/`POST /u/{token}` exist (``UnsubscribeV1``).
    public static func makeRouter(spool: Spool, writer: SpoolWriter, verifier: any APIKeyVerifier, hostname: String,
                                  databasePing: (@Sendable () async -> Bool)? = nil,
                                  stores: HTTPStores? = nil,
                                  unsubscribeKey: [UInt8]? = nil, maxMessageSize: Int = 25 * 1024 * 1024,
                                  maxBodySize: Int = 32 * 1024 * 1024,
                                  maxEventStreams: Int = 100,
                                  metrics: MetricsEndpoint? = nil,
                                  admin: AdminV1? = nil, adminKeys: AdminKeys = AdminKeys([])) -> Router<HeraldRequestContext> {
        let router = Router(context: HeraldRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        Health(spool: spool, database: databasePing).add(to: router)
        ConsoleUI().add(to: router)
        // `/metrics`: outside /v1 and its tenant keys (the figures are the node's, not a tenant's).
        metrics?.add(to: router)
        let keys: any APIKeyVerifier = stores.map { ChainedAPIKeys([verifier, DatabaseAPIKeys($0.tenants)]) } ?? verifier
        // `/v1/admin/…`: the node's queue, behind admin keys only (``AdminV1``).
        admin?.add(to: router, adminKeys: adminKeys, tenantKeys: keys, stores: stores)
        let v1 = router.group("v1").add(middleware: TenantAuthMiddleware(verifier: keys))
        MessagesV1(writer: writer, hostname: hostname, suppressions: stores?.suppressions, limits: stores?.limits,
                   maxMessageSize: maxMessageSize, maxBodySize: maxBodySize).add(to: v1)
        if let stores {
            ListsV1(stores: stores).add(to: v1)
            SubscribersV1(stores: stores).add(to: v1)
            SuppressionsV1(stores: stores).add(to: v1)
            BouncesV1(stores: stores).add(to: v1)
            if let keys = stores.dkimKeys { DKIMKeysV1(store: keys, signers: stores.tenantSigners).add(to: v1) }
            if let webhooks = stores.webhooks { WebhooksV1(store: webhooks).add(to: v1) }
            if let accounts = stores.smtpUserAccounts {
                SMTPUsersV1(store: stores.smtpUsers, accounts: accounts).add(to: v1)
            }
            ImportV1(stores: stores).add(to: v1)
            CampaignsV1(stores: stores).add(to: v1)
            TenantLimitsV1(store: stores.limits).add(to: v1)
            CampaignEventsV1(stores: stores, maxStreams: maxEventStreams).add(to: v1)
            CampaignsActionsV1(stores: stores, writer: writer, hostname: hostname).add(to: v1)
            // `/u/{token}`: outside /v1, the signed token is the credential.
            if let unsubscribeKey {
                UnsubscribeV1(stores: stores, key: unsubscribeKey).add(to: router)
                // `/t/o|c/{token}`: open and click tracking, signed with the same key
                // under another context.
                let tracking = TrackingV1(stores: stores, keys: [unsubscribeKey])
                tracking.add(to: router)
                tracking.addAPI(to: v1)
            }
        }
        return router
    }
}
