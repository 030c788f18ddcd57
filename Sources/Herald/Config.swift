import Campaigns
import CampaignStore
import DKIM
import Delivery
import Foundation
import MailFormat
import Spool
import NIOCore
import SMTPClient
import SMTPServer
import TOMLKit
import Webhooks

/// Herald's configuration: one TOML file, decoded strictly (an unknown key is an error
/// that names it), then validated into `HeraldConfig`, where every default lives.
/// `conf/herald.toml` documents every key with its default. Relative paths are taken
/// from the working directory. Secrets may come from the environment: a string value
/// `"env:NAME"` is replaced by the variable `NAME`.
public struct HeraldConfig: Sendable {
    public struct Listener: Sendable {
        public var host: String
        public var port: Int
        public var role: ListenerRole
        public var trustedNetworks: [IPNetwork]
        public var tls: ListenerTLSMode
        public var allowPlaintextAuth: Bool
    }

    public struct User: Sendable {
        public var name: String
        public var passwordHash: String
        /// `[[user]] tenant`: the tenant the user's mail belongs to (a database tenant's
        /// name, or a config-file tenant's); nil = none.
        public var tenant: String?
    }

    public var hostname: String
    public var spoolPath: String
    public var spoolCommitters: Int
    /// `[spool] journal`: commits share flushes through the spool journal (default off).
    public var spoolJournal = false
    public var logPath: String?
    public var logLevel: String
    public var tlsCertificate: String?
    public var tlsPrivateKey: String?
    public var listeners: [Listener]
    public var users: [User]
    public var maxMessageSize: Int
    public var maxRecipients: Int
    public var maxErrors: Int
    public var recipientOvershootLimit: Int
    public var maxCommandLineLength: Int
    public var maxTextLineLength: Int
    public var maxConnections: Int
    public var maxConnectionsPerClient: Int
    public var commandTimeout: Double
    public var dataTimeout: Double
    public var greetingDelay: Double
    public var authFailureDelay: Double
    public var shutdownGrace: Double
    public var dnsServers: [String]
    public var dnsTimeout: Double
    public var delivery: DeliveryConfiguration
    public var deliveryEnabled: Bool
    /// The HTTP API's listener; nil = no HTTP server.
    public var httpAddress: (host: String, port: Int)?
    public var publicURL: String
    /// `[http] max_body_size`: the largest `POST /v1/messages` body (413 beyond).
    public var maxBodySize: Int
    /// `[http] max_event_streams`: campaign event streams open at once (503 beyond).
    public var maxEventStreams: Int
    /// Key of the unsubscribe tokens; nil = a random one kept in `<spool>/unsubscribe.key`.
    public var unsubscribeSecret: String?
    public var apiKeys: [(tenant: String, sha256: String)]
    /// `[[admin_key]] name, sha256`: the keys of the admin API (`/v1/admin/…`, the
    /// console's postmaster view); no tenant key opens it.
    public var adminKeys: [(name: String, sha256: String)] = []
    public var databaseURL: String?
    /// `[database] encryption_secret`; nil = a random key kept in the spool.
    public var encryptionSecret: String?
    /// `[[dkim]]`: the signing keys, loaded (``DKIMSigner`` picks them by From domain).
    public var dkimKeys: [DKIMKey]
    /// `[bounce]`: the return-path domains whose mail Herald consumes as bounces and
    /// complaints, with the classification table loaded; nil = no bounce processing.
    public var bounce: BounceSettings?
    /// `[http] metrics`: `GET /metrics` (Prometheus text format) on the HTTP listener.
    public var metricsEnabled = true
    /// `[http] metrics_token`: when set, `/metrics` wants `Authorization: Bearer <token>`;
    /// nil = no authentication (Prometheus' convention: the listener is the boundary).
    public var metricsToken: String?
    /// `[webhooks]`: limits of webhook delivery (used when there is a `[database]`).
    public var webhooks = WebhookSettings()

    public static func load(path: String) throws(ConfigError) -> HeraldConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("cannot read \(path): \(error.localizedDescription)")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ text: String, source: String = "config") throws(ConfigError) -> HeraldConfig {
        try resolve(try decodeStrictly(RawConfig.self, text, source: source), source: source)
    }

    /// TOML into `T`, strictly: an unknown key is an error that names it.
    static func decodeStrictly<T: Decodable>(_ type: T.Type, _ text: String, source: String) throws(ConfigError) -> T {
        do {
            return try TOMLDecoder(strictDecoding: true).decode(T.self, from: text)
        } catch let error as UnexpectedKeysError {
            let names = error.keys.values.map { $0.filter { $0.intValue == nil }.map(\.stringValue).joined(separator: ".") }
            throw ConfigError("\(source): unknown key(s): \(names.sorted().joined(separator: ", "))")
        } catch let error as TOMLParseError {
            throw ConfigError("\(source): TOML syntax error at line \(error.source.begin.line): \(error.description)")
        } catch let error as DecodingError {
            throw ConfigError("\(source): \(describe(error))")
        } catch {
            throw ConfigError("\(source): \(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let ctx): return "\(path(ctx.codingPath)): expected \(type)"
        case .valueNotFound(let type, let ctx): return "\(path(ctx.codingPath)): missing \(type)"
        case .keyNotFound(let key, let ctx): return "\(path(ctx.codingPath + [key])): required key missing"
        case .dataCorrupted(let ctx): return "\(path(ctx.codingPath)): \(ctx.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    static func resolve(_ raw: RawConfig, source: String) throws(ConfigError) -> HeraldConfig {
        let smtp = raw.smtp ?? RawConfig.SMTP()
        let hostname = try env(smtp.hostname) ?? ProcessInfo.processInfo.hostName
        var listeners: [Listener] = []
        for (i, l) in (raw.listener ?? []).enumerated() {
            let (host, port) = try hostPort(l.address, key: "listener[\(i)].address")
            guard let role = ListenerRole(rawValue: l.role ?? "relay") else {
                throw ConfigError("listener[\(i)].role: must be relay or submission, not \(l.role ?? "")")
            }
            guard let tls = ListenerTLSMode(rawValue: l.tls ?? "off") else {
                throw ConfigError("listener[\(i)].tls: must be off, starttls or implicit, not \(l.tls ?? "")")
            }
            var networks: [IPNetwork] = []
            for n in l.trusted_networks ?? (role == .relay ? ["127.0.0.0/8", "::1/128"] : []) {
                guard let net = IPNetwork(n) else { throw ConfigError("listener[\(i)].trusted_networks: bad network \(n)") }
                networks.append(net)
            }
            listeners.append(Listener(host: host, port: port, role: role, trustedNetworks: networks, tls: tls,
                                      allowPlaintextAuth: l.allow_plaintext_auth ?? false))
        }
        var users: [User] = []
        for (i, u) in (raw.user ?? []).enumerated() {
            guard !u.name.isEmpty else { throw ConfigError("user[\(i)].name: empty") }
            let hash = try env(u.password_hash) ?? ""
            guard PasswordHash.isWellFormed(hash) else {
                throw ConfigError("user[\(i)].password_hash: not a hash from `herald passwd`")
            }
            if let t = u.tenant {
                guard !t.isEmpty else { throw ConfigError("user[\(i)].tenant: empty") }
                // As for [[api_key]]: database tenants are known by number in envelopes.
                guard Int64(t) == nil else {
                    throw ConfigError("user[\(i)].tenant: use the tenant's name, not a number")
                }
            }
            users.append(User(name: u.name, passwordHash: hash, tenant: u.tenant))
        }
        let delivery = try resolveDelivery(raw, hostname: hostname)
        let spool = raw.spool ?? RawConfig.Spool()
        let log = raw.log ?? RawConfig.Log()
        let tls = raw.tls ?? RawConfig.TLS()
        var config = HeraldConfig(
            hostname: hostname,
            spoolPath: spool.path ?? "var/spool",
            spoolCommitters: try positive(spool.committers ?? 32, "spool.committers"),
            logPath: log.path,
            logLevel: log.level ?? "info",
            tlsCertificate: tls.certificate ?? "var/tls/dev-cert.pem",
            tlsPrivateKey: tls.private_key ?? "var/tls/dev-key.pem",
            listeners: listeners,
            users: users,
            maxMessageSize: try positive(smtp.max_message_size ?? 25 * 1024 * 1024, "smtp.max_message_size"),
            maxRecipients: try positive(smtp.max_recipients ?? 1000, "smtp.max_recipients"),
            maxErrors: try positive(smtp.max_errors ?? 20, "smtp.max_errors"),
            recipientOvershootLimit: try notNegative(smtp.recipient_overshoot_limit ?? 1000,
                                                     "smtp.recipient_overshoot_limit"),
            maxCommandLineLength: try atLeast(smtp.max_command_line ?? 512, 512, "smtp.max_command_line"),
            maxTextLineLength: try atLeast(smtp.max_text_line ?? 1000, 1000, "smtp.max_text_line"),
            maxConnections: try positive(smtp.max_connections ?? 1000, "smtp.max_connections"),
            maxConnectionsPerClient: try positive(smtp.max_connections_per_client ?? 100, "smtp.max_connections_per_client"),
            commandTimeout: try duration(smtp.command_timeout ?? "300s", "smtp.command_timeout"),
            dataTimeout: try duration(smtp.data_timeout ?? "300s", "smtp.data_timeout"),
            greetingDelay: try duration(smtp.greeting_delay ?? "0s", "smtp.greeting_delay"),
            authFailureDelay: try duration(smtp.auth_failure_delay ?? "1s", "smtp.auth_failure_delay"),
            shutdownGrace: try duration(smtp.shutdown_grace ?? "30s", "smtp.shutdown_grace"),
            dnsServers: raw.dns?.servers ?? [],
            dnsTimeout: try duration(raw.dns?.timeout ?? "5s", "dns.timeout"),
            delivery: delivery,
            deliveryEnabled: raw.delivery?.enabled ?? true,
            httpAddress: try httpAddress(raw.http),
            publicURL: raw.http?.public_url ?? "http://127.0.0.1:8025",
            maxBodySize: try positive(raw.http?.max_body_size ?? 32 * 1024 * 1024, "http.max_body_size"),
            maxEventStreams: try positive(raw.http?.max_event_streams ?? 100, "http.max_event_streams"),
            unsubscribeSecret: try unsubscribeSecret(raw.http),
            apiKeys: try apiKeys(raw.api_key ?? []),
            databaseURL: try databaseURL(raw.database),
            encryptionSecret: try encryptionSecret(raw.database),
            dkimKeys: try dkimKeys(raw.dkim ?? []),
            bounce: try bounce(raw.bounce, source: source))
        config.spoolJournal = spool.journal ?? false
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(config.logLevel) {
            throw ConfigError("log.level: unknown level \(config.logLevel)")
        }
        config.delivery.localDomains = Set(config.bounce?.domains ?? [])
        config.metricsEnabled = raw.http?.metrics ?? true
        if let token = try env(raw.http?.metrics_token), !token.isEmpty { config.metricsToken = token }
        config.webhooks = try webhooks(raw.webhooks)
        config.adminKeys = try adminKeys(raw.admin_key ?? [])
        if listeners.contains(where: { $0.role == .submission }) && users.isEmpty {
            // Not fatal: a submission listener without users simply refuses everyone.
        }
        return config
    }

    static func resolveDelivery(_ raw: RawConfig, hostname: String) throws(ConfigError) -> DeliveryConfiguration {
        let d = raw.delivery ?? RawConfig.Delivery()
        var routes: [Route] = []
        for (i, r) in (raw.route ?? []).enumerated() {
            guard let pattern = DomainPattern(r.domain) else { throw ConfigError("route[\(i)].domain: bad pattern \(r.domain)") }
            var host: String?
            var port = d.mx_port ?? 25
            if let h = r.host, !h.isEmpty {
                let (hh, pp) = try hostPort(h.contains(":") && !h.hasSuffix("]") ? h : h + ":25", key: "route[\(i)].host")
                host = hh
                port = pp
            }
            guard let tls = OutboundTLSPolicy(rawValue: r.tls ?? "opportunistic") else {
                throw ConfigError("route[\(i)].tls: must be off, opportunistic, required or verify")
            }
            if let ca = r.ca_file, !FileManager.default.isReadableFile(atPath: ca) {
                throw ConfigError("route[\(i)].ca_file: cannot read \(ca)")
            }
            routes.append(Route(pattern: pattern, host: host, port: port, tls: tls, username: try env(r.username),
                                password: try env(r.password), authWithoutTLS: r.auth_without_tls ?? false,
                                rate: try rate(r.rate, "route[\(i)].rate", example: "\"14/s\""),
                                connections: try connections(r.connections, "route[\(i)].connections"),
                                caFile: r.ca_file, tlsVerify: r.tls_verify ?? true,
                                maxAttempts: try optionalPositive(r.max_attempts, "route[\(i)].max_attempts")))
        }
        var throttles: [ThrottleRule] = []
        for (i, t) in (raw.throttle ?? []).enumerated() {
            let target: ThrottleRule.Target
            if t.match.hasPrefix("mx:") {
                guard let p = DomainPattern(String(t.match.dropFirst(3))) else { throw ConfigError("throttle[\(i)].match: bad pattern") }
                target = .mxSite(p)
            } else if t.match.hasPrefix("tenant:") {
                target = .tenant(String(t.match.dropFirst(7)))
            } else {
                guard let p = DomainPattern(t.match) else { throw ConfigError("throttle[\(i)].match: bad pattern") }
                target = .domain(p)
            }
            throttles.append(ThrottleRule(target: target,
                                          rate: try rate(t.rate, "throttle[\(i)].rate", example: "\"50/s\", \"1000/h\""),
                                          connections: try connections(t.connections, "throttle[\(i)].connections")))
        }
        var retry = RetrySchedule()
        retry.minimal = try duration(d.minimal_backoff ?? "300s", "delivery.minimal_backoff")
        retry.maximal = try duration(d.maximal_backoff ?? "4000s", "delivery.maximal_backoff")
        retry.maxLifetime = try duration(d.max_lifetime ?? "5d", "delivery.max_lifetime")
        retry.maxAttempts = try optionalPositive(d.max_attempts, "delivery.max_attempts")
        let logDir = raw.log?.path
        var delivery = DeliveryConfiguration(
            heloName: try env(d.helo_name) ?? hostname,
            mxPort: d.mx_port ?? 25,
            routes: routes,
            throttles: throttles,
            globalRate: try rate(d.rate, "delivery.rate", example: "\"14/s\""),
            maxConcurrentDeliveries: try positive(d.max_concurrent ?? 200, "delivery.max_concurrent"),
            connectionsPerDestination: try positive(d.connections_per_destination ?? 20, "delivery.connections_per_destination"),
            initialWindow: try positive(d.initial_window ?? 5, "delivery.initial_window"),
            messagesPerConnection: try positive(d.messages_per_connection ?? 100, "delivery.messages_per_connection"),
            connectionIdleTimeout: try timeAmount(d.idle_timeout ?? "10s", "delivery.idle_timeout"),
            timeouts: try clientTimeouts(d),
            retry: retry,
            throttleBackoff: try timeAmount(d.throttle_backoff ?? "60s", "delivery.throttle_backoff"),
            rescanInterval: try timeAmount(d.rescan_interval ?? "30s", "delivery.rescan_interval"),
            logPath: logDir.map { ($0 as NSString).appendingPathComponent("delivery.jsonl") },
            logMaxBytes: try positive(d.log_max_size ?? 100 * 1024 * 1024, "delivery.log_max_size"),
            sourceAddress: d.source_address)
        delivery.activeLimit = try positive(d.active_limit ?? 20_000, "delivery.active_limit")
        return delivery
    }

    static func clientTimeouts(_ d: RawConfig.Delivery) throws(ConfigError) -> SMTPClientTimeouts {
        var t = SMTPClientTimeouts()
        t.connect = try timeAmount(d.connect_timeout ?? "30s", "delivery.connect_timeout")
        let command = try timeAmount(d.command_timeout ?? "300s", "delivery.command_timeout")
        t.greeting = command; t.ehlo = command; t.starttls = command; t.mailFrom = command; t.rcptTo = command
        t.data = try timeAmount(d.data_timeout ?? "120s", "delivery.data_timeout")
        t.dot = try timeAmount(d.dot_timeout ?? "600s", "delivery.dot_timeout")
        return t
    }

    /// `[database] url`, or HERALD_DATABASE_URL when the key is empty; nil = none.
    /// `[database] encryption_secret`: seals secrets kept in the database (tenants' DKIM
    /// keys); nil = a random key made once and kept in `<spool>/database.key`.
    static func encryptionSecret(_ db: RawConfig.Database?) throws(ConfigError) -> String? {
        guard let secret = try env(db?.encryption_secret), !secret.isEmpty else { return nil }
        guard secret.utf8.count >= 32 else {
            throw ConfigError("database.encryption_secret: at least 32 characters (e.g. openssl rand -base64 32)")
        }
        return secret
    }

    static func databaseURL(_ db: RawConfig.Database?) throws(ConfigError) -> String? {
        if let url = try env(db?.url), !url.isEmpty { return url }
        if let url = ProcessInfo.processInfo.environment["HERALD_DATABASE_URL"], !url.isEmpty { return url }
        return nil
    }

    static func unsubscribeSecret(_ http: RawConfig.HTTP?) throws(ConfigError) -> String? {
        guard let secret = try env(http?.unsubscribe_secret), !secret.isEmpty else { return nil }
        guard secret.utf8.count >= 32 else {
            throw ConfigError("http.unsubscribe_secret: at least 32 characters (e.g. openssl rand -base64 32)")
        }
        return secret
    }

    static func httpAddress(_ http: RawConfig.HTTP?) throws(ConfigError) -> (host: String, port: Int)? {
        let address = http?.address ?? "127.0.0.1:8025"
        if address.isEmpty { return nil }
        return try hostPort(address, key: "http.address")
    }

    static func apiKeys(_ raw: [RawConfig.APIKey]) throws(ConfigError) -> [(tenant: String, sha256: String)] {
        var out: [(tenant: String, sha256: String)] = []
        for (i, k) in raw.enumerated() {
            guard !k.tenant.isEmpty else { throw ConfigError("api_key[\(i)].tenant: empty") }
            // Database tenants are known by number; a numeric name here would alias one.
            guard Int64(k.tenant) == nil else {
                throw ConfigError("api_key[\(i)].tenant: use a name, not a number (numbers are database tenant ids)")
            }
            let hash = (try env(k.sha256) ?? "").lowercased()
            guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit }) else {
                throw ConfigError("api_key[\(i)].sha256: 64 hex digits, e.g. from: printf %s \"$KEY\" | sha256sum")
            }
            out.append((k.tenant, hash))
        }
        return out
    }

    /// `[[admin_key]]`: a name (for the log; default `admin<index>`) and the SHA-256 (hex)
    /// of the key, like `[[api_key]]`'s.
    static func adminKeys(_ raw: [RawConfig.AdminKey]) throws(ConfigError) -> [(name: String, sha256: String)] {
        var out: [(name: String, sha256: String)] = []
        for (i, k) in raw.enumerated() {
            let hash = (try env(k.sha256) ?? "").lowercased()
            guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit }) else {
                throw ConfigError("admin_key[\(i)].sha256: 64 hex digits, e.g. from: printf %s \"$KEY\" | sha256sum")
            }
            out.append((k.name ?? "admin\(i)", hash))
        }
        return out
    }

    /// `[[dkim]] domain, selector, private_key` (a PEM file, or `env:NAME` holding the PEM
    /// itself), `algorithm` (optional: `rsa-sha256` or `ed25519-sha256`, checked against
    /// the key). One key per domain and selector.
    static func dkimKeys(_ raw: [RawConfig.DKIM]) throws(ConfigError) -> [DKIMKey] {
        var keys: [DKIMKey] = []
        for (i, k) in raw.enumerated() {
            let pem: [UInt8]
            if k.private_key.hasPrefix("env:") {
                pem = Array((try env(k.private_key) ?? "").utf8)
            } else {
                guard let data = FileManager.default.contents(atPath: k.private_key) else {
                    throw ConfigError("dkim[\(i)].private_key: cannot read \(k.private_key)")
                }
                pem = Array(data)
            }
            let key: DKIMKey
            do {
                key = try DKIMKey(domain: k.domain, selector: k.selector, pem: pem)
            } catch {
                throw ConfigError("dkim[\(i)]: \(error)")
            }
            if let algorithm = k.algorithm, algorithm != key.algorithm.rawValue {
                throw ConfigError("dkim[\(i)].algorithm: \(algorithm), but the key is for \(key.algorithm.rawValue)")
            }
            if keys.contains(where: { $0.domain == key.domain && $0.selector == key.selector }) {
                throw ConfigError("dkim[\(i)]: a second key for \(key.recordName)")
            }
            keys.append(key)
        }
        return keys
    }

    /// `[webhooks]`: see ``WebhookSettings`` for each key's meaning and default.
    static func webhooks(_ raw: RawConfig.Webhooks?) throws(ConfigError) -> WebhookSettings {
        var settings = WebhookSettings()
        guard let raw else { return settings }
        func seconds(_ text: String?, _ key: String, _ current: Duration) throws(ConfigError) -> Duration {
            guard let text else { return current }
            let value = try duration(text, "webhooks.\(key)")
            guard value > 0 else { throw ConfigError("webhooks.\(key): must be more than 0") }
            return .milliseconds(Int64(value * 1000))
        }
        settings.concurrencyPerEndpoint = try positive(raw.concurrency ?? settings.concurrencyPerEndpoint,
                                                       "webhooks.concurrency")
        settings.maxInFlight = try positive(raw.max_in_flight ?? settings.maxInFlight, "webhooks.max_in_flight")
        settings.timeout = try seconds(raw.timeout, "timeout", settings.timeout)
        settings.backoff = WebhookBackoff(minimum: try seconds(raw.min_backoff, "min_backoff", settings.backoff.minimum),
                                          maximum: try seconds(raw.max_backoff, "max_backoff", settings.backoff.maximum))
        settings.disableAfter = try seconds(raw.disable_after, "disable_after", settings.disableAfter)
        settings.retryFor = try seconds(raw.retry_for, "retry_for", settings.retryFor)
        settings.retention = try seconds(raw.retention, "retention", settings.retention)
        settings.flushInterval = try seconds(raw.flush_interval, "flush_interval", settings.flushInterval)
        settings.allowPrivateAddresses = raw.allow_private_addresses ?? false
        return settings
    }

    /// `[bounce]`: `domains` (required, at least one), `classes` (the classification
    /// table; default `bounce-classes.toml` beside the config file), `soft_bounce_limit`
    /// (3) soft bounces within `soft_bounce_days` (7) suppress an address.
    static func bounce(_ raw: RawConfig.Bounce?, source: String) throws(ConfigError) -> BounceSettings? {
        guard let raw else { return nil }
        var domains: [String] = []
        for d in raw.domains ?? [] {
            let domain = d.lowercased()
            guard !domain.isEmpty, !domain.contains("@"), !domain.contains("*"),
                  AddressSyntax.isDomain(Array(domain.utf8)[...]) else {
                throw ConfigError("bounce.domains: \"\(d)\" is not a domain name")
            }
            domains.append(domain)
        }
        guard !domains.isEmpty else { throw ConfigError("bounce.domains: name at least one return-path domain") }
        let directory = source.contains("/") ? String(source[..<source.lastIndex(of: "/")!]) : "."
        let path = raw.classes ?? directory + "/bounce-classes.toml"
        return BounceSettings(domains: domains, classifier: BounceClassifier(classes: try bounceClasses(path: path)),
                              softBounces: SoftBounceLimit(
                                limit: try positive(raw.soft_bounce_limit ?? 3, "bounce.soft_bounce_limit"),
                                days: try positive(raw.soft_bounce_days ?? 7, "bounce.soft_bounce_days")))
    }

    /// The bounce classification table (`[[class]]` entries, see conf/bounce-classes.toml).
    public static func bounceClasses(path: String) throws(ConfigError) -> [BounceClass] {
        struct File: Decodable {
            struct Class: Decodable {
                var category: String
                var hard: Bool
                var statuses: [String]?
                var phrases: [String]?
            }
            var `class`: [Class]?
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("bounce.classes: cannot read \(path): \(error.localizedDescription)")
        }
        let file = try decodeStrictly(File.self, text, source: path)
        var classes: [BounceClass] = []
        for (i, c) in (file.class ?? []).enumerated() {
            guard !c.category.isEmpty, c.category.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw ConfigError("\(path): class[\(i)].category: letters, digits, - and _ only")
            }
            for status in c.statuses ?? [] {
                let parts = status.split(separator: ".", omittingEmptySubsequences: false)
                let valid = (2...3).contains(parts.count) && ["2", "4", "5"].contains(parts[0])
                    && parts.dropFirst().enumerated().allSatisfy { j, p in
                        (p.isEmpty && j == parts.count - 2) || (!p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber))
                    }
                    && (parts.count == 3 || status.hasSuffix("."))
                guard valid else {
                    throw ConfigError("\(path): class[\(i)].statuses: \"\(status)\" is not a status code (5.1.1) or prefix (5.1. or 5.)")
                }
            }
            classes.append(BounceClass(category: c.category, hard: c.hard, statuses: c.statuses ?? [],
                                       phrases: (c.phrases ?? []).filter { !$0.isEmpty }))
        }
        guard !classes.isEmpty else { throw ConfigError("\(path): no [[class]] entries") }
        return classes
    }

    static func env(_ value: String?) throws(ConfigError) -> String? {
        guard let value, value.hasPrefix("env:") else { return value }
        let name = String(value.dropFirst(4))
        guard let v = ProcessInfo.processInfo.environment[name] else {
            throw ConfigError("environment variable \(name) is not set")
        }
        return v
    }

    static func optionalPositive(_ v: Int?, _ key: String) throws(ConfigError) -> Int? {
        guard let v else { return nil }
        return try positive(v, key)
    }

    static func positive(_ v: Int, _ key: String) throws(ConfigError) -> Int {
        guard v > 0 else { throw ConfigError("\(key): must be positive") }
        return v
    }

    static func notNegative(_ v: Int, _ key: String) throws(ConfigError) -> Int {
        guard v >= 0 else { throw ConfigError("\(key): must be 0 or more") }
        return v
    }

    static func atLeast(_ v: Int, _ min: Int, _ key: String) throws(ConfigError) -> Int {
        guard v >= min else { throw ConfigError("\(key): must be at least \(min) (RFC 5321 §4.5.3.1)") }
        return v
    }

    /// A `rate` key: nil when absent or empty, else a ``Rate`` (`example` shows the forms).
    static func rate(_ text: String?, _ key: String, example: String) throws(ConfigError) -> Rate? {
        guard let text, !text.isEmpty else { return nil }
        guard let rate = Rate(text) else { throw ConfigError("\(key): use e.g. \(example)") }
        return rate
    }

    /// A `connections` key: nil when absent, else at least 1.
    static func connections(_ value: Int?, _ key: String) throws(ConfigError) -> Int? {
        guard let value else { return nil }
        return try positive(value, key)
    }

    /// A duration key as a NIO `TimeAmount`.
    static func timeAmount(_ text: String, _ key: String) throws(ConfigError) -> TimeAmount {
        .nanoseconds(Int64(try duration(text, key) * 1e9))
    }

    /// `"300s"`, `"5m"`, `"250ms"`, `"1h"` → seconds.
    public static func duration(_ text: String, _ key: String) throws(ConfigError) -> Double {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let v = Double(number), v >= 0, v.isFinite { return v * factor }
        }
        throw ConfigError("\(key): bad duration \"\(text)\" (use e.g. 300s, 5m, 250ms)")
    }

    /// `127.0.0.1:2525` or `[::1]:2525`.
    static func hostPort(_ text: String, key: String) throws(ConfigError) -> (String, Int) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ConfigError("\(key): expected [ipv6]:port, got \(text)")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw ConfigError("\(key): expected host:port, got \(text)") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigError("\(key): expected host:port, got \(text)")
        }
        return (String(host), port)
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The file as written; every key optional so that defaults live in one place.
struct RawConfig: Decodable {
    struct SMTP: Decodable {
        var hostname: String?
        var max_message_size: Int?
        var max_recipients: Int?
        var max_errors: Int?
        var recipient_overshoot_limit: Int?
        var max_command_line: Int?
        var max_text_line: Int?
        var max_connections: Int?
        var max_connections_per_client: Int?
        var command_timeout: String?
        var data_timeout: String?
        var greeting_delay: String?
        var auth_failure_delay: String?
        var shutdown_grace: String?
    }
    struct Spool: Decodable {
        var path: String?
        var committers: Int?
        var journal: Bool?
    }
    struct Log: Decodable {
        var path: String?
        var level: String?
    }
    struct TLS: Decodable {
        var certificate: String?
        var private_key: String?
    }
    struct Listener: Decodable {
        var address: String
        var role: String?
        var trusted_networks: [String]?
        var tls: String?
        var allow_plaintext_auth: Bool?
    }
    struct User: Decodable {
        var name: String
        var password_hash: String?
        var tenant: String?
    }
    struct DNS: Decodable {
        var servers: [String]?
        var timeout: String?
    }
    struct Delivery: Decodable {
        var enabled: Bool?
        var helo_name: String?
        var mx_port: Int?
        var rate: String?
        var max_concurrent: Int?
        var connections_per_destination: Int?
        var initial_window: Int?
        var messages_per_connection: Int?
        var idle_timeout: String?
        var connect_timeout: String?
        var command_timeout: String?
        var data_timeout: String?
        var dot_timeout: String?
        var minimal_backoff: String?
        var maximal_backoff: String?
        var max_lifetime: String?
        var max_attempts: Int?
        var throttle_backoff: String?
        var rescan_interval: String?
        var active_limit: Int?
        var log_max_size: Int?
        var source_address: String?
    }
    struct RouteEntry: Decodable {
        var domain: String
        var host: String?
        var tls: String?
        var username: String?
        var password: String?
        var auth_without_tls: Bool?
        var rate: String?
        var connections: Int?
        var ca_file: String?
        var tls_verify: Bool?
        var max_attempts: Int?
    }
    struct Throttle: Decodable {
        var match: String
        var rate: String?
        var connections: Int?
    }
    struct HTTP: Decodable {
        var address: String?
        var public_url: String?
        var unsubscribe_secret: String?
        var max_body_size: Int?
        var max_event_streams: Int?
        var metrics: Bool?
        var metrics_token: String?
    }
    struct APIKey: Decodable {
        var tenant: String
        var sha256: String
    }
    struct AdminKey: Decodable {
        var name: String?
        var sha256: String
    }
    struct Database: Decodable {
        var url: String?
        var encryption_secret: String?
    }
    struct DKIM: Decodable {
        var domain: String
        var selector: String
        var private_key: String
        var algorithm: String?
    }
    var dkim: [DKIM]?
    struct Bounce: Decodable {
        var domains: [String]?
        var classes: String?
        var soft_bounce_limit: Int?
        var soft_bounce_days: Int?
    }
    var bounce: Bounce?
    struct Webhooks: Decodable {
        var concurrency: Int?
        var max_in_flight: Int?
        var timeout: String?
        var min_backoff: String?
        var max_backoff: String?
        var disable_after: String?
        var retry_for: String?
        var retention: String?
        var flush_interval: String?
        var allow_private_addresses: Bool?
    }
    var webhooks: Webhooks?
    var http: HTTP?
    var api_key: [APIKey]?
    var admin_key: [AdminKey]?
    var database: Database?
    var smtp: SMTP?
    var dns: DNS?
    var delivery: Delivery?
    var route: [RouteEntry]?
    var throttle: [Throttle]?
    var spool: Spool?
    var log: Log?
    var tls: TLS?
    var listener: [Listener]?
    var user: [User]?
}
