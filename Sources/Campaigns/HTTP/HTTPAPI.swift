import Hummingbird
import Spool

/// Herald's HTTP API: `/healthz`, and under `/v1` (bearer API key, every object scoped to
/// the key's tenant) the endpoints in docs/openapi.yaml. Errors are RFC 9457 problems.
public enum HTTPAPI {
    public static func makeRouter(spool: Spool, writer: SpoolWriter, verifier: any APIKeyVerifier, hostname: String,
                                  databasePing: (@Sendable () async -> Bool)? = nil) -> Router<HeraldRequestContext> {
        let router = Router(context: HeraldRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        Health(spool: spool, database: databasePing).add(to: router)
        let v1 = router.group("v1").add(middleware: TenantAuthMiddleware(verifier: verifier))
        MessagesV1(writer: writer, hostname: hostname).add(to: v1)
        return router
    }
}
