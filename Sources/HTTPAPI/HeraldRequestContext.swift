import CampaignStore
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The request context of Herald's HTTP API: who is asking (the API key's tenant).
public struct HeraldRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `TenantAuthMiddleware`; every object the request touches is scoped to it.
    public var tenant: String?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// Large enough for `POST /v1/messages` with 10,000 recipients and their variables.
    public var maxUploadSize: Int { 64 * 1024 * 1024 }
}

/// Resolves a bearer API key to its tenant.
public protocol APIKeyVerifier: Sendable {
    func tenant(forKey key: String) async throws -> String?
}

/// Keys from the config file (`[[api_key]] tenant, sha256`): what `POST /v1/messages`
/// uses when no database is configured. Only SHA-256 digests are stored.
public struct StaticAPIKeys: APIKeyVerifier {
    let digests: [String: String]   // sha256 hex -> tenant

    public init(_ keys: [(tenant: String, sha256: String)]) {
        digests = Dictionary(keys.map { ($0.sha256.lowercased(), $0.tenant) }, uniquingKeysWith: { a, _ in a })
    }

    public func tenant(forKey key: String) async throws -> String? {
        digests[APIKey.hash(key)]
    }
}

/// Tries each verifier in turn (config keys, then the database's).
public struct ChainedAPIKeys: APIKeyVerifier {
    let verifiers: [any APIKeyVerifier]
    public init(_ verifiers: [any APIKeyVerifier]) { self.verifiers = verifiers }
    public func tenant(forKey key: String) async throws -> String? {
        for v in verifiers {
            if let t = try await v.tenant(forKey: key) { return t }
        }
        return nil
    }
}

/// `Authorization: Bearer <key>` → `context.tenant`, or 401 problem.
public struct TenantAuthMiddleware: RouterMiddleware {
    public typealias Context = HeraldRequestContext
    let verifier: any APIKeyVerifier

    public init(verifier: any APIKeyVerifier) { self.verifier = verifier }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer realm=\"herald\""
        guard let value = request.headers[.authorization], value.lowercased().hasPrefix("bearer "),
              case let key = value.dropFirst(7).trimmingCharacters(in: .whitespaces), !key.isEmpty
        else {
            throw Problem(.unauthorized, "Send your API key as: Authorization: Bearer <key>", headers: headers)
        }
        guard let tenant = try await verifier.tenant(forKey: key) else {
            throw Problem(.unauthorized, "This API key is not valid (unknown or revoked).", headers: headers)
        }
        var context = context
        context.tenant = tenant
        context.logger[metadataKey: "tenant"] = "\(tenant)"
        return try await next(request, context)
    }
}
