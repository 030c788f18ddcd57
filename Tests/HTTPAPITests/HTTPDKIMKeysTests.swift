import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdTesting
import Spool
import Testing

@testable import CampaignStore
@testable import HTTPAPI

/// `/v1/dkim-keys`: a tenant's keys made by Herald, their DNS records, the private key
/// sealed in the database, tenant isolation, and the tenant's mail signed with them
/// (checked by dkimpy against the record the API gave).
@Suite(.serialized, .enabled(if: PostgresServer.isAvailable))
struct HTTPDKIMKeysTests {
    @Test func makeListSignDelete() async throws {
        try await HTTPListsFixture.with { f in
            try await f.test { api in
                let a = f.keyA
                let rsa = try await api.call(.post, "/v1/dkim-keys", key: a,
                                             json: ["domain": "Mail.Example.TEST", "selector": "s2026"])
                #expect(rsa.status == .created, "\(rsa.json)")
                #expect(rsa.json["domain"] as? String == "mail.example.test" && rsa.json["algorithm"] as? String == "rsa-sha256")
                let dns = rsa.json["dns"] as? [String: Any] ?? [:]
                #expect(dns["name"] as? String == "s2026._domainkey.mail.example.test" && dns["type"] as? String == "TXT")
                let record = dns["value"] as? String ?? ""
                #expect(record.hasPrefix("v=DKIM1; k=rsa; p=MII"), "\(record)")
                #expect(rsa.json["private_key"] == nil && !String(buffer: rsa.response.body).contains("PRIVATE"))
                let ed = try await api.call(.post, "/v1/dkim-keys", key: a, json: [
                    "domain": "mail.example.test", "selector": "ed2026", "algorithm": "ed25519-sha256"])
                #expect(ed.status == .created && ed.json["algorithm"] as? String == "ed25519-sha256", "\(ed.json)")
                let edRecord = (ed.json["dns"] as? [String: Any])?["value"] as? String ?? ""

                // The private keys are sealed: nothing in the database reads as a PEM key.
                #expect(try await f.count("SELECT count(*) FROM dkim_keys WHERE private_key LIKE '%PRIVATE KEY%'") == 0)
                #expect(try await f.count("SELECT count(*) FROM dkim_keys") == 2)

                // Same domain and selector again: 409; bad input: 422.
                let again = try await api.call(.post, "/v1/dkim-keys", key: a,
                                               json: ["domain": "mail.example.test", "selector": "S2026"])
                #expect(again.status == .conflict && again.isProblem, "\(again.json)")
                for body: [String: Any] in [["domain": "localhost", "selector": "s"], ["domain": "a b.test", "selector": "s"],
                                            ["domain": "ok.test", "selector": "bad selector"],
                                            ["domain": "ok.test", "selector": "s", "algorithm": "rsa-sha1"]] {
                    let bad = try await api.call(.post, "/v1/dkim-keys", key: a, json: body)
                    #expect(bad.status == .unprocessableContent && bad.isProblem, "\(body): \(bad.json)")
                }

                // Listed and found by the tenant, not by another one.
                let list = try await api.call(.get, "/v1/dkim-keys", key: a)
                #expect(list.data.compactMap { $0["selector"] as? String } == ["s2026", "ed2026"])
                #expect(try await api.call(.get, "/v1/dkim-keys/\(rsa.id)", key: a).status == .ok)
                #expect(try await api.call(.get, "/v1/dkim-keys", key: f.keyB).data.isEmpty)
                #expect(try await api.call(.get, "/v1/dkim-keys/\(rsa.id)", key: f.keyB).status == .notFound)
                #expect(try await api.call(.delete, "/v1/dkim-keys/\(rsa.id)", key: f.keyB).status == .notFound)
                #expect(try await api.call(.get, "/v1/dkim-keys", key: HTTPListsFixture.configKey).status == .forbidden)

                // Tenant A's mail from a subdomain of the key's domain gets both signatures,
                // which verify against the records the API gave; tenant B's does not.
                let records = ["s2026._domainkey.mail.example.test": record, "ed2026._domainkey.mail.example.test": edRecord]
                let sent = try await api.call(.post, "/v1/messages", key: a, json: [
                    "from": "News <news@news.mail.example.test>", "subject": "Signed", "text": "Hello",
                    "recipients": [["email": "ann@example.net"]],
                ] as [String: Any])
                #expect(sent.status == .accepted, "\(sent.json)")
                let other = try await api.call(.post, "/v1/messages", key: f.keyB, json: [
                    "from": "News <news@mail.example.test>", "subject": "Not signed", "text": "Hello",
                    "recipients": [["email": "bob@example.net"]],
                ] as [String: Any])
                #expect(other.status == .accepted, "\(other.json)")
                var verdicts: [String: [String]] = [:]
                for id in try f.spool.enumerate(.queue) {
                    let envelope = try f.spool.loadEnvelope(id, in: .queue)
                    let message = try f.spool.loadMessage(id, in: .queue)
                    verdicts[envelope.recipients[0].address] = try await DKIMVerification.verify(message, records: records)
                }
                #expect(verdicts["ann@example.net"] == ["pass", "pass"], "\(verdicts)")
                #expect(verdicts["bob@example.net"] == [], "\(verdicts)")

                // Deleted: gone from the list, and the next message is not signed with it.
                #expect(try await api.call(.delete, "/v1/dkim-keys/\(rsa.id)", key: a).status == .noContent)
                #expect(try await api.call(.delete, "/v1/dkim-keys/\(rsa.id)", key: a).status == .notFound)
                #expect(try await api.call(.get, "/v1/dkim-keys", key: a).data.count == 1)
            }
        }
    }

    @Test func sealedSecretsOpenOnlyWithTheirKeyAndRow() throws {
        let sealer = SecretSealer(secret: Array("0123456789abcdef0123456789abcdef".utf8))
        let secret = Array("-----BEGIN PRIVATE KEY-----\nabc\n".utf8)
        let sealed = try sealer.seal(secret, context: "dkim:1:example.org:s1")
        #expect(try sealer.open(sealed, context: "dkim:1:example.org:s1") == secret)
        #expect(try sealer.seal(secret, context: "dkim:1:example.org:s1") != sealed, "a fresh nonce each time")
        #expect(throws: SecretSealer.Failure.self) { try sealer.open(sealed, context: "dkim:2:example.org:s1") }
        let other = SecretSealer(secret: Array("another-secret-another-secret-xx".utf8))
        #expect(throws: SecretSealer.Failure.self) { try other.open(sealed, context: "dkim:1:example.org:s1") }
        var bytes = Array(Data(base64Encoded: sealed)!)
        bytes[14] ^= 1
        #expect(throws: SecretSealer.Failure.self) {
            try sealer.open(Data(bytes).base64EncodedString(), context: "dkim:1:example.org:s1")
        }
        #expect(throws: SecretSealer.Failure.self) { try sealer.open("not base64!", context: "x") }
        #expect(throws: SecretSealer.Failure.self) { try sealer.open("", context: "x") }
    }
}
