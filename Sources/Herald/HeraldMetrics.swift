import CampaignStore
import DNS
import Delivery
import Foundation
import Logging
import Metrics
import Prometheus
import Spool

/// Herald's metrics: the swift-metrics backend (swift-prometheus) and what `GET /metrics`
/// shows.
///
/// Two kinds of figures end up in one registry:
/// - events, counted where they happen through swift-metrics: messages accepted
///   (`herald_messages_accepted_total{listener}`, here), delivery outcomes, attempt
///   durations and the arrival-to-outcome latency (``DeliveryMetrics``);
/// - state, read at each scrape by ``MetricsCollector`` from the parts that own it: the
///   queue manager's index (spool depth, destinations, the connection pool), the DNS
///   resolver's counters, the campaign counters and the webhook outbox in PostgreSQL.
///
/// Label values are kept few: listeners are the configured sockets (plus `http`,
/// `campaign`, `campaign-test`), destinations only the top ``MetricsCollector/topDestinations``,
/// campaigns only running ones (at most ``MetricsCollector/maxCampaigns``). Series that
/// drop out of those sets are removed from the registry, not left at their last value.
enum HeraldMetrics {
    static let acceptedLabel = "herald_messages_accepted_total"

    /// The registry behind `/metrics`. The first use bootstraps swift-metrics with it,
    /// once per process (swift-metrics allows no second bootstrap); before that, and in
    /// a process that never asks for it, swift-metrics records nothing.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[DeliveryMetrics.latencyLabel] = DeliveryMetrics.latencyBuckets
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// A message was committed to the spool (SMTP, `POST /v1/messages`, campaign
    /// expansion, test sends), labelled with the envelope's `origin.listener`: the SMTP
    /// listener's bound address (`127.0.0.1:2525`), `http`, `campaign` or `campaign-test`.
    static func accepted(_ envelope: Envelope) {
        Metrics.Counter(label: acceptedLabel, dimensions: [("listener", envelope.origin.listener)]).increment()
    }
}

/// Reads the state figures at each scrape and renders the registry. One scrape at a time
/// (an actor): a scrape updates gauges, and two interleaved would mix their values.
actor MetricsCollector {
    /// Destinations shown per scrape, those with the most messages waiting.
    static let topDestinations = 20
    /// Running campaigns shown per scrape, the most recently started.
    static let maxCampaigns = 50

    let registry: PrometheusCollectorRegistry
    let queueManager: QueueManager?
    let resolver: CAresResolver?
    let campaigns: CampaignStore?
    /// The webhook outbox (`herald_webhook_backlog`).
    let webhooks: WebhookStore?
    let logger: Logger

    /// The gauges the last scrape set, by family and label value: a label value missing
    /// from the next scrape has its series removed.
    private var gauges: [String: [String: Prometheus.Gauge]] = [:]
    /// Counters fed from cumulative figures kept elsewhere (DNS, pool): the value each
    /// had at the last scrape, so that only the difference is added.
    private var counters: [String: (counter: Prometheus.Counter, last: Int)] = [:]

    init(registry: PrometheusCollectorRegistry, queueManager: QueueManager?, resolver: CAresResolver?,
         campaigns: CampaignStore?, webhooks: WebhookStore? = nil, logger: Logger) {
        self.registry = registry
        self.webhooks = webhooks
        self.queueManager = queueManager
        self.resolver = resolver
        self.campaigns = campaigns
        self.logger = logger
    }

    /// The exposition text (Prometheus text format 0.0.4).
    func scrape() async -> String {
        if let queueManager {
            let s = await queueManager.metricsSnapshot(topDestinations: Self.topDestinations)
            let states = [("queued", s.queued), ("deferred", s.deferred), ("held", s.held)]
            publish("herald_spool_messages", help: "Messages in the spool by state (held: on hold or campaign paused; "
                        + "deferred: a recipient waits for a retry; queued: the rest).",
                    label: "state", states.map { ($0.0, Double($0.1.messages)) })
            publish("herald_spool_bytes", help: "Octets of the spooled messages by state.",
                    label: "state", states.map { ($0.0, Double($0.1.bytes)) })
            publish("herald_destination_messages",
                    help: "Messages waiting for a destination (domain or smart host), top \(Self.topDestinations).",
                    label: "destination", s.destinations.map { ($0.name, Double($0.messages)) })
            publish("herald_destination_active", help: "Attempts in flight to a destination, same destinations.",
                    label: "destination", s.destinations.map { ($0.name, Double($0.active)) })
            publish("herald_destination_window",
                    help: "Concurrency window of a destination (slow start, halved on throttling), same destinations.",
                    label: "destination", s.destinations.compactMap { d in d.window.map { (d.name, $0) } })
            publish("herald_destinations", help: "Destinations with messages waiting or attempts in flight.",
                    Double(s.destinationCount))
            publish("herald_delivery_in_flight", help: "Delivery attempts in flight.", Double(s.inFlight))
            publish("herald_smtp_pool_idle_connections", help: "Outbound SMTP connections kept open for reuse.",
                    Double(s.pool.idle))
            count("herald_smtp_connections_opened_total", help: "Outbound SMTP connections opened.", s.pool.opened)
            count("herald_smtp_connections_reused_total",
                  help: "Delivery attempts made on a pooled connection instead of a new one.", s.pool.reused)
        }
        if let resolver {
            let d = resolver.statistics
            count("herald_dns_cache_hits_total", help: "DNS questions answered from the cache.", d.cacheHits)
            count("herald_dns_cache_misses_total",
                  help: "DNS questions not in the cache (sent to the server, or joined an identical one in flight).",
                  d.queriesSent + d.coalesced)
            publish("herald_dns_cache_entries", help: "Answers in the DNS cache.", Double(d.cacheEntries))
        }
        if let campaigns {
            let families: [(String, String, KeyPath<CampaignProgress, Int64>)] = [
                ("herald_campaign_recipients", "Recipients of a running campaign.", \.total),
                ("herald_campaign_expanded", "Recipients of a running campaign rendered into a spool.", \.expanded),
                ("herald_campaign_sent", "Recipients of a running campaign delivered.", \.sent),
                ("herald_campaign_bounced", "Recipients of a running campaign bounced (permanent failure).", \.bounced),
                ("herald_campaign_failed", "Recipients of a running campaign failed otherwise (expired, gave up).",
                 \.failed),
            ]
            do {
                let running = try await campaigns.runningCampaigns(limit: Self.maxCampaigns)
                for (name, help, field) in families {
                    publish(name, help: help + " Running: sending or paused.", label: "campaign",
                            running.map { (String($0.id), Double($0[keyPath: field])) })
                }
            } catch {
                // The series end until the database answers again; the rest of the scrape stands.
                logger.warning("metrics: cannot read the running campaigns", metadata: ["error": "\(error)"])
                for (name, _, _) in families { publish(name, help: "", label: "campaign", []) }
            }
        }
        if let webhooks {
            do {
                publish("herald_webhook_backlog",
                        help: "Webhook deliveries waiting to be sent or retried (the outbox's depth, all tenants).",
                        Double(try await webhooks.backlog()))
            } catch {
                logger.warning("metrics: cannot read the webhook backlog", metadata: ["error": "\(error)"])
            }
        }
        return registry.emitToString()
    }

    /// `name` as swift-prometheus wants it: base and unit (the last `_` part), joined
    /// back with `_` into the same name.
    static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        guard let cut = name.lastIndex(of: "_") else { preconditionFailure("metric name without a unit: \(name)") }
        return MetricNameDescriptor(metricName: String(name[..<cut]), unitName: String(name[name.index(after: cut)...]),
                                    helpText: help)
    }

    /// Sets one gauge per label value; removes the series of values not given now.
    private func publish(_ name: String, help: String, label: String, _ values: [(String, Double)]) {
        var previous = gauges[name] ?? [:]
        var current: [String: Prometheus.Gauge] = [:]
        for (value, number) in values {
            let gauge = previous.removeValue(forKey: value)
                ?? registry.makeGauge(descriptor: Self.descriptor(name, help), labels: [(label, value)])
            gauge.set(to: number)
            current[value] = gauge
        }
        for gauge in previous.values { registry.unregisterGauge(gauge) }
        gauges[name] = current
    }

    /// Sets a gauge without labels.
    private func publish(_ name: String, help: String, _ value: Double) {
        let gauge = gauges[name]?[""] ?? registry.makeGauge(descriptor: Self.descriptor(name, help))
        gauge.set(to: value)
        gauges[name] = ["": gauge]
    }

    /// Brings a counter up to a cumulative figure kept elsewhere.
    private func count(_ name: String, help: String, _ total: Int) {
        let entry = counters[name] ?? (registry.makeCounter(descriptor: Self.descriptor(name, help)), 0)
        if total > entry.last { entry.counter.increment(by: Int64(total - entry.last)) }
        counters[name] = (entry.counter, max(total, entry.last))
    }
}
