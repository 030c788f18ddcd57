import CampaignStore
import Campaigns
import DKIM
import Foundation
import Hummingbird

/// A tenant's DKIM keys, made by Herald (the private key never leaves it: it is sealed
/// in the database and signs the tenant's campaign, test-send and `POST /v1/messages`
/// mail whose From domain, or a parent of it, is the key's domain):
/// - `POST /v1/dkim-keys {"domain", "selector", "algorithm"?}` (`rsa-sha256`, 2,048
///   bits, by default; or `ed25519-sha256`) → 201 with the key and the DNS record to
///   publish; 409 when the tenant has a key for that domain and selector;
/// - `GET /v1/dkim-keys?after=&limit=` → `{"data": [...], "next"}`;
///   `GET /v1/dkim-keys/{id}` → one; `DELETE /v1/dkim-keys/{id}` → 204.
///
/// A key is `{"id", "domain", "selector", "algorithm", "dns": {"name", "type": "TXT",
/// "value"}, "created_at"}`. With an RSA and an Ed25519 key for one domain, mail gets
/// both signatures; a tenant's keys for a domain replace the config's `[[dkim]]` keys
/// for that domain in its mail.
public struct DKIMKeysV1: Sendable {
    public static let maxPageSize = 1000

    struct KeyJSON: Encodable, ResponseEncodable {
        var key: TenantDKIMKey

        enum CodingKeys: String, CodingKey { case id, domain, selector, algorithm, dns, created_at }
        enum DNSKeys: String, CodingKey { case name, type, value }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(key.id, forKey: .id)
            try c.encode(key.domain, forKey: .domain)
            try c.encode(key.selector, forKey: .selector)
            try c.encode(key.algorithm.rawValue, forKey: .algorithm)
            var dns = c.nestedContainer(keyedBy: DNSKeys.self, forKey: .dns)
            try dns.encode(key.recordName, forKey: .name)
            try dns.encode("TXT", forKey: .type)
            try dns.encode(key.record, forKey: .value)
            try c.encode(key.createdAt, forKey: .created_at)
        }
    }

    struct Body: Decodable {
        var domain: String
        var selector: String
        var algorithm: String?
    }

    let store: DKIMKeyStore
    let signers: TenantDKIMSigners?

    public init(store: DKIMKeyStore, signers: TenantDKIMSigners?) {
        self.store = store
        self.signers = signers
    }

    public func add(to group: RouterGroup<HeraldRequestContext>) {
        let store = self.store, signers = self.signers
        group.post("dkim-keys") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let body = try await APIInput.decode(Body.self, from: request)
            let algorithm: DKIMAlgorithm
            if let name = body.algorithm, !name.isEmpty {
                guard let a = DKIMAlgorithm(rawValue: name) else {
                    throw Problem.unprocessable("algorithm: rsa-sha256 or ed25519-sha256 (got \"\(name)\")")
                }
                algorithm = a
            } else {
                algorithm = .rsaSHA256
            }
            let key = try await APIInput.store {
                try await store.create(tenant: tenant, domain: body.domain, selector: body.selector, algorithm: algorithm)
            }
            signers?.invalidate(tenant: tenant)
            var response = try KeyJSON(key: key).response(from: request, context: context)
            response.status = .created
            return response
        }
        group.get("dkim-keys") { request, context -> Response in
            let tenant = try context.databaseTenant()
            return try await APIInput.page(request, max: Self.maxPageSize, cursor: { (k: TenantDKIMKey) in k.id },
                                           item: { KeyJSON(key: $0) }) { after, limit in
                try await store.keys(tenant: tenant, after: after, limit: limit)
            }.response(from: request, context: context)
        }
        group.get("dkim-keys/:id") { _, context -> KeyJSON in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "a DKIM key")
            guard let key = try await store.key(tenant: tenant, id: id) else { throw Problem.notFound("DKIM key \(id)") }
            return KeyJSON(key: key)
        }
        group.delete("dkim-keys/:id") { _, context -> HTTPResponse.Status in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "a DKIM key")
            guard try await store.delete(tenant: tenant, id: id) else { throw Problem.notFound("DKIM key \(id)") }
            signers?.invalidate(tenant: tenant)
            return .noContent
        }
    }
}
