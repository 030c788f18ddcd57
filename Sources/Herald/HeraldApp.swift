import DKIM
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Prometheus
import Campaigns
import CampaignStore
import DNS
import Delivery
import HTTPAPI
import Hummingbird
import Postgres
import ServiceLifecycle
import SMTPServer
import Spool
import Webhooks

/// Wires the services of one Herald node: spool recovery, the SMTP listeners, and
/// graceful shutdown on SIGTERM/SIGINT (stop accepting, finish transactions in DATA,
/// exit with everything acknowledged on disk).
public enum HeraldApp {
    public static func serve(config: HeraldConfig, logger: Logger) async throws {
        // `/metrics` (on the HTTP listener, unless `[http] metrics = false`): swift-metrics
        // is bootstrapped before anything is counted.
        let metricsRegistry = config.httpAddress != nil && config.metricsEnabled ? HeraldMetrics.registry : nil
        let spool = try Spool(path: config.spoolPath,
                              configuration: .init(committerThreads: config.spoolCommitters,
                                                   journal: config.spoolJournal ? JournalSettings() : nil),
                              logger: logger)
        // What an earlier process left in the journal is put right before recovery reads
        // the queue; with `[spool] journal = false` only that replay runs (the segments
        // of a run with the journal on are never left behind unread).
        try spool.startJournal(replayOnly: !config.spoolJournal)
        defer { spool.stopJournal() }
        // Recovery decodes every queued envelope; the queue manager indexes those instead
        // of reading them all again (restart time on a large spool), keeping whole only
        // as many as its active limit allows.
        var recovered = QueueManager.RecoveredQueue(limit: config.delivery.activeLimit)
        // Recipients accepted but not yet attempted: their `accepted` webhook events may
        // not have reached the outbox before the last run ended (replayed below). Only
        // messages that arrived after the checkpoint's margin can have missed it, so a
        // large queue is not turned into an event per recipient at every start.
        var acceptedReplay: [WebhookEvent] = []
        let webhookCheckpoint = spool.path + "/webhooks.checkpoint"
        let replaySince = config.databaseURL == nil ? nil : WebhookRecorder.checkpoint(at: webhookCheckpoint)
            .map { $0.addingTimeInterval(-WebhookRecorder.replayMargin) }
        // With delivery on, the oldest messages (up to the active limit) are checked
        // first and delivered while recovery checks the rest beside the server (a
        // million queued: the first attempt seconds after the listing instead of after
        // every file was read); without it, everything is checked before serving.
        let recovery = try spool.beginRecovery()
        if config.deliveryEnabled {
            recovered.reserve(min(recovery.found, config.delivery.activeLimit + Spool.recoveryChunk))
        }
        while !config.deliveryEnabled || recovered.count < config.delivery.activeLimit,
              try recovery.checkNext(queued: { envelope, stamp in
                  if config.deliveryEnabled { recovered.add(envelope, stamp: stamp) }
                  acceptedReplay += replayedAcceptances(envelope, since: replaySince)
              }) {}
        let recoveringBesideServer = !recovery.isDone
        if recoveringBesideServer {
            recovered.later = recovery.found - recovery.queued
            logger.info("recovery: delivery starts with the oldest messages; the rest are checked beside it",
                        metadata: ["found": "\(recovery.found)", "first": "\(recovery.queued)"])
        } else {
            _ = try recovery.finish()   // logs its own report
        }
        let tlsContext = makeTLSContext(config, logger: logger)
        // The campaign store: migrated before anything listens.
        var database: PostgresClient?
        if let url = config.databaseURL {
            let db = PostgresClient(url: url, logger: logger)
            try await Migrator.migrate(db)
            database = db
            logger.info("database ready")
        }
        var queueManager: QueueManager?
        var resolver: CAresResolver?
        // Mail whose From domain has a key is signed once, before it is spooled (DSNs too).
        let signer = DKIMSigner(keys: config.dkimKeys)
        // Delivery outcomes of campaign messages update the campaign counters (batched).
        let statsRecorder = database.map {
            CampaignStatsRecorder(db: $0, classifier: config.bounce?.classifier, logger: logger)
        }
        // Secrets in the database (tenants' DKIM keys, webhook secrets) are sealed under
        // the encryption secret.
        let sealer = try database.map { _ in
            SecretSealer(secret: try secretKey(config.encryptionSecret, file: spool.path + "/database.key", logger: logger))
        }
        // Webhooks: acceptances and delivery outcomes of database tenants' mail go into
        // the outbox (batched, off the delivery path), which the dispatcher sends.
        let webhookStore = database.flatMap { db in sealer.map { WebhookStore(db, sealer: $0) } }
        let webhookRecorder = webhookStore.map { WebhookRecorder(store: $0, logger: logger) }
        var onOutcome: DeliveryOutcomeHandler?
        if statsRecorder != nil || webhookRecorder != nil {
            onOutcome = { @Sendable [statsRecorder, webhookRecorder] (event: DeliveryOutcomeEvent) in
                statsRecorder?.record(event)
                webhookRecorder?.record(event)
            }
        }
        // Mail to the [bounce] domains is consumed by the intake, not relayed. The intake
        // records in the campaign database: without one the domains are not Herald's.
        var config = config
        var bounceIntake: BounceIntake?
        if let bounce = config.bounce {
            if let db = database {
                bounceIntake = BounceIntake(store: BounceStore(db), settings: bounce, logger: logger)
            } else {
                logger.error("[bounce] is set but there is no [database]: bounce processing is off",
                             metadata: ["domains": "\(bounce.domains)"])
                config.bounce = nil
                config.delivery.localDomains = []
            }
        }
        if config.deliveryEnabled {
            let r = try CAresResolver(servers: config.dnsServers, timeout: .milliseconds(Int64(config.dnsTimeout * 1000)),
                                      logger: logger)
            resolver = r
            queueManager = QueueManager(spool: spool, config: config.delivery, resolver: r,
                                        group: MultiThreadedEventLoopGroup.singleton, logger: logger,
                                        signer: signer, onOutcome: onOutcome,
                                        localAgent: bounceIntake)
            await queueManager?.adoptRecovered(recovered, recovering: recoveringBesideServer)
        }
        recovered = QueueManager.RecoveredQueue(limit: 0)
        defer { resolver?.shutdown() }
        // SMTP AUTH users' tenants, and the database tenants' limits: read once before
        // anything listens or delivers, then every two seconds.
        // AUTH users: the config's `[[user]]` tables, then (with a database) the users
        // tenants make over `/v1/smtp-users`, whose mail carries their tenant's tag.
        let smtpUsers = SMTPUserDirectory(
            configUsers: Dictionary(config.users.map { ($0.name, $0.passwordHash) }, uniquingKeysWith: { a, _ in a }),
            store: database.map { SMTPUserStore($0) }, logger: logger)
        let userTenants = Dictionary(config.users.compactMap { u in u.tenant.map { (u.name, $0) } },
                                     uniquingKeysWith: { a, _ in a })
        let tenants = TenantDirectory(store: database.map { TenantLimitsStore($0) }, users: userTenants,
                                      databaseUsers: database == nil ? nil : smtpUsers,
                                      queueManager: queueManager, logger: logger)
        await tenants.refresh()
        let listeners = config.listeners.map { l in
            SMTPListenerSettings(
                host: l.host, port: l.port,
                session: SMTPSessionConfiguration(
                    hostname: config.hostname, role: l.role, tls: l.tls,
                    tlsAvailable: l.tls != .off && tlsContext != nil,
                    allowPlaintextAuth: l.allowPlaintextAuth, authAvailable: smtpUsers.hasUsers,
                    maxMessageSize: config.maxMessageSize, maxRecipients: config.maxRecipients,
                    maxCommandLineLength: config.maxCommandLineLength, maxTextLineLength: config.maxTextLineLength,
                    maxErrors: config.maxErrors, recipientOvershootLimit: config.recipientOvershootLimit,
                    localDomains: Set(config.bounce?.domains ?? [])),
                trustedNetworks: l.trustedNetworks,
                tlsContext: l.tls == .off ? nil : tlsContext,
                timeouts: SMTPTimeouts(command: seconds(config.commandTimeout), data: seconds(config.dataTimeout),
                                       greetingDelay: seconds(config.greetingDelay)))
        }
        let server = SMTPServer(
            listeners: listeners, group: MultiThreadedEventLoopGroup.singleton,
            sink: SpoolSink(spool: spool, hostname: config.hostname, signer: signer, tenants: tenants,
                            onCommit: { [queueManager, webhookRecorder] envelope in
                HeraldMetrics.accepted(envelope)
                webhookRecorder?.accepted(envelope)
                await queueManager?.enqueue(envelope)
            }),
            authenticator: smtpUsers,
            limiter: ConnectionLimiter(maxTotal: config.maxConnections, maxPerClient: config.maxConnectionsPerClient),
            authThrottle: AuthFailureThrottle(step: seconds(config.authFailureDelay)),
            tenants: tenants,
            logger: logger)
        let service = SMTPServerService(server: server, grace: seconds(config.shutdownGrace), logger: logger)
        // Services stop in reverse order: the listeners drain first, then delivery.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // The webhook dispatcher stops last, so that the last outcomes reach the outbox.
        let replayWebhooks = { @Sendable [webhookRecorder, logPath = config.delivery.logPath] (events: [WebhookEvent]) in
            _ = webhookRecorder?.replay(logPath: logPath, recovered: events, checkpointPath: webhookCheckpoint)
        }
        if let queueManager, recoveringBesideServer {
            // The webhook checkpoint stays where it is until the rest is checked (replayed
            // with it), so that a kill meanwhile loses none of the acceptances.
            finishRecovery(recovery, manager: queueManager, replaySince: replaySince, acceptedReplay: acceptedReplay,
                           replayWebhooks: replayWebhooks, logger: logger)
        } else {
            replayWebhooks(acceptedReplay)
        }
        if let webhookStore {
            services.append(.init(service: WebhookDispatcher(store: webhookStore, recorder: webhookRecorder,
                                                             settings: config.webhooks, logger: logger)))
        }
        acceptedReplay = []
        if let queueManager {
            services.append(.init(service: DeliveryService(manager: queueManager, grace: seconds(config.shutdownGrace),
                                                           statsRecorder: statsRecorder)))
        }
        // Pause, resume and cancel reach this node's spool: the first pass runs before
        // any delivery starts (the index is loaded for it), then every second.
        // Outcomes buffered but not written when the last run was killed come back from
        // the delivery log.
        if let statsRecorder, let logPath = config.delivery.logPath {
            await statsRecorder.replay(logPath: logPath, checkpointPath: spool.path + "/campaign-stats.checkpoint")
        }
        var control: CampaignControl?
        if let db = database {
            await queueManager?.loadIndex()
            let c = CampaignControl(db: db, mail: queueManager.map { $0 as any CampaignMailControl }
                                        ?? SpoolHeldCampaigns(spool: spool), logger: logger)
            await c.start()
            services.append(.init(service: c))
            control = c
        }
        if database != nil { services.append(.init(service: tenants)) }
        services.append(.init(service: service))
        var campaignServices: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let http = config.httpAddress {
            // Tenants' own DKIM keys, sealed in the database under the encryption secret.
            var tenantSigners: TenantDKIMSigners?
            if let db = database, let sealer {
                tenantSigners = TenantDKIMSigners(store: DKIMKeyStore(db, sealer: sealer), base: config.dkimKeys,
                                                  logger: logger)
            }
            let writer = SpoolWriter(spool: spool, signer: signer, tenantSigners: tenantSigners,
                                     onCommit: { [queueManager, webhookRecorder] envelope in
                HeraldMetrics.accepted(envelope)
                webhookRecorder?.accepted(envelope)
                await queueManager?.enqueue(envelope)
            })
            var stores: HTTPStores?
            var ping: (@Sendable () async -> Bool)?
            let unsubscribeKey = try unsubscribeKey(config, spoolPath: spool.path, logger: logger)
            if let db = database {
                // The node name outlives restarts (one process per spool), so chunks this node
                // held when it was killed are taken back at once instead of after the lease.
                let expander = CampaignExpander(db: db, writer: writer, publicURL: config.publicURL,
                                                secret: unsubscribeKey, hostname: config.hostname,
                                                node: "\(config.hostname):\(spool.path)",
                                                returnPathDomains: config.bounce?.domains ?? [], logger: logger)
                stores = HTTPStores(db, expander: expander, statsRecorder: statsRecorder, control: control,
                                    sealer: sealer, tenantSigners: tenantSigners, smtpUserAccounts: smtpUsers)
                ping = { (try? await db.query("SELECT 1")) != nil }
                // Campaigns that were expanding when Herald stopped carry on from their
                // checkpoints; every 30 s, chunks whose lease expired on a dead node are taken over.
                campaignServices.append(.init(service: CampaignExpansionService(expander: expander, logger: logger)))
                // Scheduled campaigns start at their send_at, or expire past their deadline.
                campaignServices.append(.init(service: CampaignSchedulerService(
                    scheduler: CampaignScheduler(store: expander.store, expander: expander, logger: logger))))
            }
            let metrics = metricsRegistry.map { [queueManager, resolver, database, webhookStore] registry in
                let collector = MetricsCollector(registry: registry, queueManager: queueManager, resolver: resolver,
                                                 campaigns: database.map { CampaignStore($0) }, webhooks: webhookStore,
                                                 logger: logger)
                return MetricsEndpoint(token: config.metricsToken) { await collector.scrape() }
            }
            let router = HTTPAPI.makeRouter(spool: spool, writer: writer, verifier: StaticAPIKeys(config.apiKeys),
                                            hostname: config.hostname, databasePing: ping, stores: stores,
                                            unsubscribeKey: unsubscribeKey, maxMessageSize: config.maxMessageSize,
                                            maxBodySize: config.maxBodySize, maxEventStreams: config.maxEventStreams,
                                            metrics: metrics,
                                            admin: AdminV1(queue: queueManager, logPath: config.delivery.logPath),
                                            adminKeys: AdminKeys(config.adminKeys))
            let app = Application(router: router, server: HTTPAPI.server(),
                                  configuration: .init(address: .hostname(http.host, port: http.port), serverName: "Herald"),
                                  onServerRunning: { channel in
                                      let a = channel.localAddress
                                      logger.info("listening", metadata: [
                                          "address": "\(a?.ipAddress ?? http.host):\(a?.port ?? http.port)", "role": "http",
                                      ])
                                  },
                                  logger: logger)
            services.append(.init(service: app))
        }
        // Last in, first stopped: no new expansion or scheduled start during shutdown.
        services += campaignServices
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("stopped")
    }

    /// The `accepted` webhook events a recovered message may not have made before the
    /// last run ended (arrived after `since`; none without a webhook checkpoint).
    static func replayedAcceptances(_ envelope: Envelope, since: Date?) -> [WebhookEvent] {
        guard let since, envelope.tenant != nil, envelope.arrival >= since else { return [] }
        return WebhookRecorder.acceptedEvents(envelope, onlyUnattempted: true)
    }

    /// Checks the rest of the queue on a thread of its own while the server runs, handing
    /// each chunk's healthy messages to the queue manager; then rescans may resume and the
    /// webhook events are replayed. Stops early when the queue manager stops.
    static func finishRecovery(_ recovery: RecoveryPass, manager: QueueManager, replaySince: Date?,
                               acceptedReplay: [WebhookEvent],
                               replayWebhooks: @escaping @Sendable ([WebhookEvent]) -> Void, logger: Logger) {
        let thread = Thread {
            var replay = acceptedReplay
            do {
                var handing = true
                while handing {
                    var batch: [(envelope: Envelope, stamp: Int64)] = []
                    guard try recovery.checkNext(queued: { envelope, stamp in
                        batch.append((envelope, stamp))
                        replay += replayedAcceptances(envelope, since: replaySince)
                    }, besideServer: true) else { break }
                    handing = waitFor { [batch] in await manager.addRecovered(batch) }
                }
                _ = try recovery.finish()   // logs its own report
            } catch {
                logger.error("recovery stopped; the queue manager's rescans index the rest",
                             metadata: ["error": "\(error)"])
            }
            waitFor { await manager.recoveryFinished() }
            replayWebhooks(replay)
        }
        thread.name = "herald-recovery"
        thread.start()
    }

    /// Runs `work` on the concurrency pool and blocks this (non-pool) thread until it is done.
    @discardableResult
    private static func waitFor<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        let result = NIOLockedValueBox<T?>(nil)
        Task {
            let value = await work()
            result.withLockedValue { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLockedValue { $0! }
    }

    /// The unsubscribe-token key: `[http] unsubscribe_secret`, or a random key made once
    /// and kept in `<spool>/unsubscribe.key` (0600). Several nodes must share one: set it.
    static func unsubscribeKey(_ config: HeraldConfig, spoolPath: String, logger: Logger) throws -> [UInt8] {
        try secretKey(config.unsubscribeSecret, file: spoolPath + "/unsubscribe.key", logger: logger)
    }

    /// `configured` (a secret from the config), or a random 32-byte key made once and
    /// kept in `path` (0600).
    static func secretKey(_ configured: String?, file path: String, logger: Logger) throws -> [UInt8] {
        if let secret = configured { return Array(secret.utf8) }
        if let data = FileManager.default.contents(atPath: path), data.count >= 32 { return Array(data) }
        var key = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in key.indices { key[i] = rng.next() }
        guard FileManager.default.createFile(atPath: path, contents: Data(key), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigError("cannot write \(path)")
        }
        logger.notice("made a new secret key", metadata: ["path": "\(path)"])
        return key
    }

    static func seconds(_ s: Double) -> TimeAmount { .nanoseconds(Int64(s * 1_000_000_000)) }

    /// The listeners' certificate; nil (STARTTLS answered with 454) when it cannot be loaded.
    static func makeTLSContext(_ config: HeraldConfig, logger: Logger) -> NIOSSLContext? {
        guard config.listeners.contains(where: { $0.tls != .off }),
              let certPath = config.tlsCertificate, let keyPath = config.tlsPrivateKey
        else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certPath).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tls.minimumTLSVersion = .tlsv12
            return try NIOSSLContext(configuration: tls)
        } catch {
            logger.error("TLS disabled: cannot load certificate \(certPath) / key \(keyPath): \(error)")
            return nil
        }
    }
}

/// The queue manager as a ServiceLifecycle service.
struct DeliveryService: Service {
    let manager: QueueManager
    let grace: TimeAmount
    var statsRecorder: CampaignStatsRecorder?

    func run() async throws {
        await withGracefulShutdownHandler {
            await manager.run()
        } onGracefulShutdown: {
            Task { await manager.requestStop() }
        }
        // Attempts in flight finish and their outcomes reach the envelopes before exit.
        await manager.shutdown(grace: grace)
        // Then their campaign counters (the last outcomes) reach the database.
        await statsRecorder?.shutdown()
    }
}

/// The SMTP listeners as a ServiceLifecycle service.
struct SMTPServerService: Service {
    let server: SMTPServer
    let grace: TimeAmount
    let logger: Logger

    func run() async throws {
        try await server.start()
        try? await gracefulShutdown()
        await server.shutdown(grace: grace)
    }
}

