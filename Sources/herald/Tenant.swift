import ArgumentParser
import CampaignStore
import Foundation
import Logging
import Postgres

/// `herald tenant …`: tenants of the campaign API and their API keys, straight in
/// PostgreSQL (no running `herald serve` needed). The schema is migrated first, so
/// this works on a fresh database. An API key is printed once, when it is made: the
/// database keeps only its SHA-256.
struct TenantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenant",
        abstract: "Manage campaign API tenants and their API keys.",
        subcommands: [TenantCreate.self, TenantList.self, TenantKeys.self, TenantKeyAdd.self, TenantKeyRevoke.self,
                      TenantLimitsCommand.self])
}

/// Where the database is: `--database-url`, else `$HERALD_DATABASE_URL`, else the
/// configuration file's `[database] url`.
struct DatabaseOption: ParsableArguments {
    @OptionGroup var options: ConfigOption

    @Option(name: .customLong("database-url"),
            help: "PostgreSQL URL (postgres://user@host:port/db); default: $HERALD_DATABASE_URL, then [database] url.")
    var databaseURL: String?

    func url() throws -> String {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        if let url = ProcessInfo.processInfo.environment["HERALD_DATABASE_URL"], !url.isEmpty { return url }
        if let url = try options.load().databaseURL { return url }
        throw ValidationError("no database: give --database-url, set HERALD_DATABASE_URL or [database] url in \(options.config)")
    }

    /// A one-connection client on a migrated database, closed after `body`.
    func withStore<T>(_ body: (TenantStore) async throws -> T) async throws -> T {
        // Errors end the command with one `herald: …` line (below); the pool's own
        // warning about the same failed connection would only repeat it.
        var logger = Logger(label: "herald.tenant")
        logger.logLevel = .error
        let client = PostgresClient(url: try url(), size: 1, logger: logger)
        do {
            try await Migrator.migrate(client, logger: logger)
            let value = try await body(TenantStore(client))
            await client.close()
            return value
        } catch {
            await client.close()
            if let error = error as? StoreError { fail(error.message) }
            if let error = error as? PostgresError { fail("\(error)") }
            throw error
        }
    }

    /// `body`'s answer about the tenant `name`; nil from `body` ends the command with
    /// `no tenant named NAME`.
    func withTenant<T>(named name: String, _ body: (TenantStore) async throws -> T?) async throws -> T {
        guard let value = try await withStore(body) else { fail("no tenant named \(name)") }
        return value
    }
}

private struct IssuedKeyOutput: Encodable {
    var tenantId: Int64
    var tenant: String
    var keyId: Int64
    var apiKey: String

    /// Prints a new key, as JSON or as `name: value` lines (the tenant's lines only when
    /// `withTenant`), then warns on stderr that it is not shown again.
    func emit(json: Bool, withTenant: Bool) throws {
        if json {
            try printJSON(self)
        } else {
            if withTenant {
                print("tenant_id: \(tenantId)")
                print("tenant: \(tenant)")
            }
            print("key_id: \(keyId)")
            print("api_key: \(apiKey)")
        }
        FileHandle.standardError.write(Data("herald: the API key is shown only this once; store it now\n".utf8))
    }
}

struct TenantCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Create a tenant and print its id and first API key (shown once).")

    @OptionGroup var database: DatabaseOption
    @Argument(help: "The tenant's name (unique, ignoring case).") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        // A tenant that exists is not an error of the database but of the request: say
        // so and name the command that gives it a new key (exit 1, nothing printed on
        // stdout), so that a walk-through or a provisioning script can be run twice.
        let created = try await database.withStore { store -> (tenant: Tenant, key: IssuedAPIKey)? in
            do {
                return try await store.createTenant(name: name)
            } catch let error as StoreError where error.kind == .conflict {
                return nil
            }
        }
        guard let created else {
            fail("tenant \"\(name)\" exists; to get a new API key run: herald tenant key-add \(shellWord(name))")
        }
        let (tenant, issued) = created
        try IssuedKeyOutput(tenantId: tenant.id.rawValue, tenant: tenant.name, keyId: issued.record.id,
                            apiKey: issued.key).emit(json: json, withTenant: true)
    }
}

struct TenantList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List tenants.")

    @OptionGroup var database: DatabaseOption
    @Flag(help: "Print JSON.") var json = false

    private struct Row: Encodable {
        var id: Int64
        var name: String
        var createdAt: Date
        var activeKeys: Int
        var revokedKeys: Int
    }

    func run() async throws {
        let tenants = try await database.withStore { try await $0.listTenants() }
        let rows = tenants.map {
            Row(id: $0.tenant.id.rawValue, name: $0.tenant.name, createdAt: $0.tenant.createdAt,
                activeKeys: $0.activeKeys, revokedKeys: $0.revokedKeys)
        }
        if json {
            try printJSON(rows)
            return
        }
        print(pad("ID", 8) + pad("KEYS", 6) + pad("REVOKED", 9) + pad("CREATED", 22) + "NAME")
        for row in rows {
            print(pad(String(row.id), 8) + pad(String(row.activeKeys), 6) + pad(String(row.revokedKeys), 9)
                  + pad(iso8601(row.createdAt), 22) + row.name)
        }
    }
}

struct TenantKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "List a tenant's API keys (id, prefix, state; never the key).")

    @OptionGroup var database: DatabaseOption
    @Argument(help: "The tenant's name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let keys = try await database.withTenant(named: name) { try await $0.keys(tenantName: name) }
        if json {
            try printJSON(keys)
            return
        }
        print(pad("KEY_ID", 8) + pad("PREFIX", 14) + pad("CREATED", 22) + "REVOKED")
        for key in keys {
            print(pad(String(key.id), 8) + pad(key.prefix + "…", 14) + pad(iso8601(key.createdAt), 22)
                  + (key.revokedAt.map(iso8601) ?? "-"))
        }
    }
}

struct TenantKeyAdd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key-add", abstract: "Make a new API key for a tenant and print it (shown once).")

    @OptionGroup var database: DatabaseOption
    @Argument(help: "The tenant's name.") var name: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let issued = try await database.withTenant(named: name) { try await $0.addKey(tenantName: name) }
        try IssuedKeyOutput(tenantId: issued.record.tenantID.rawValue, tenant: name, keyId: issued.record.id,
                            apiKey: issued.key).emit(json: json, withTenant: false)
    }
}

struct TenantKeyRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key-revoke", abstract: "Revoke an API key by its id (see `herald tenant keys NAME`).")

    @OptionGroup var database: DatabaseOption
    @Argument(help: "The key's id.") var keyID: Int64

    func run() async throws {
        guard let record = try await database.withStore({ try await $0.revokeKey(id: keyID) }) else {
            fail("no API key with id \(keyID)")
        }
        print("key \(record.id) (\(record.prefix)…) revoked at \(iso8601(record.revokedAt ?? Date()))")
    }
}

/// `text` as one shell word: unchanged when it is plain, else in single quotes.
private func shellWord(_ text: String) -> String {
    let plain = !text.isEmpty && text.unicodeScalars.allSatisfy {
        ($0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.@+%/:,=".unicodeScalars.contains($0)))
    }
    return plain ? text : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
}
