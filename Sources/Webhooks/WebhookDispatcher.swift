import AsyncHTTPClient
import CampaignStore
import Foundation
import Logging
import MailFormat
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Sends the outbox's due deliveries (see the module comment, ``Webhooks``), as a
/// ServiceLifecycle service. Every ``WebhookSettings/flushInterval`` it writes the
/// recorder's buffer, then leases what is due within the limits (per endpoint, in
/// flight) and sends each in a task of its own. On graceful shutdown it takes no new
/// deliveries, lets the requests in flight finish (each has its time-out), and writes
/// the recorder's last events; a delivery whose result could not be written keeps its
/// lease, which expires, and it is sent again.
///
/// The request: `POST <url>`, `Content-Type: application/json`, body
/// `{"id", "type", "created_at", "tenant_id", "data"}` (``body(_:)``), headers
/// `Herald-Event-Id` (the same on every retry: de-duplicate on it), `Herald-Event-Type`,
/// ``WebhookSignature/header``. A 2xx answer is a success; anything else, a time-out or
/// a connection failure is retried. Redirects are not followed (a 3xx is a failure).
public final class WebhookDispatcher: Service, Sendable {
    let store: WebhookStore
    let recorder: WebhookRecorder?
    let settings: WebhookSettings
    let policy: WebhookAddressPolicy
    let logger: Logger
    /// Requests in flight per endpoint on this node.
    private let busy = NIOLockedValueBox<[Int64: Int]>([:])

    public init(store: WebhookStore, recorder: WebhookRecorder?, settings: WebhookSettings, logger: Logger) {
        self.store = store
        self.recorder = recorder
        self.settings = settings
        self.policy = WebhookAddressPolicy(allowPrivateAddresses: settings.allowPrivateAddresses)
        self.logger = logger
    }

    /// The largest part of an answer read (it is not kept; reading lets the connection be reused).
    static let maxResponseBytes = 64 * 1024

    public func run() async throws {
        let timeout = TimeAmount.nanoseconds(Int64(WebhookBackoff.seconds(settings.timeout) * 1e9))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(
            redirectConfiguration: .disallow, timeout: .init(connect: timeout, read: timeout)))
        let stopping = NIOLockedValueBox(false)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                var lastPrune = Date.distantPast
                while !stopping.withLockedValue({ $0 }) && !Task.isCancelled {
                    await recorder?.flush()
                    let (inFlight, snapshot) = busy.withLockedValue { b in (b.values.reduce(0, +), b) }
                    let room = settings.maxInFlight - inFlight
                    if room > 0 {
                        do {
                            let jobs = try await store.claim(limit: room, perEndpoint: settings.concurrencyPerEndpoint,
                                                             busy: snapshot, lease: settings.timeout + .seconds(30))
                            for job in jobs {
                                busy.withLockedValue { $0[job.endpointID, default: 0] += 1 }
                                group.addTask {
                                    await self.send(job, client: client, timeout: timeout)
                                    self.busy.withLockedValue { b in
                                        b[job.endpointID, default: 1] -= 1
                                        if b[job.endpointID] == 0 { b[job.endpointID] = nil }
                                    }
                                }
                            }
                        } catch {
                            logger.error("cannot read due webhook deliveries", metadata: ["error": "\(error)"])
                        }
                    }
                    if Date().timeIntervalSince(lastPrune) > 3600 {
                        lastPrune = Date()
                        do {
                            try await store.prune(retention: settings.retention)
                        } catch {
                            logger.warning("cannot prune old webhook events", metadata: ["error": "\(error)"])
                        }
                    }
                    try? await Task.sleep(for: settings.flushInterval)
                }
            }
        } onGracefulShutdown: {
            stopping.withLockedValue { $0 = true }
        }
        await recorder?.flush()
        try? await client.shutdown()
    }

    /// The request body: the event's envelope around its stored `data` (JSON already).
    static func body(_ job: WebhookJob) -> [UInt8] {
        let created = MailDate.iso8601(job.occurredAt, fractionDigits: 3)
        return Array("""
            {"id":"\(job.eventID)","type":"\(job.eventType)","created_at":"\(created)",\
            "tenant_id":\(job.tenant.rawValue),"data":\(job.data)}
            """.utf8)
    }

    func send(_ job: WebhookJob, client: HTTPClient, timeout: TimeAmount) async {
        let began = ContinuousClock.now
        var status: Int?
        var failure: String?
        do {
            guard let url = URL(string: job.url), let host = url.host else { throw Refusal("not a URL") }
            if let refusal = await policy.refusal(host: host) { throw Refusal(refusal) }
            let secret = try store.secret(of: job)
            let body = Self.body(job)
            var request = HTTPClientRequest(url: job.url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "User-Agent", value: "Herald-Webhooks/1")
            request.headers.add(name: "Herald-Event-Id", value: String(job.eventID))
            request.headers.add(name: "Herald-Event-Type", value: job.eventType)
            request.headers.add(name: WebhookSignature.header, value: WebhookSignature.sign(
                secret: secret, timestamp: Int64(Date().timeIntervalSince1970), body: body))
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: timeout, logger: nil)
            status = Int(response.status.code)
            var read = 0
            for try await chunk in response.body {
                read += chunk.readableBytes
                if read > Self.maxResponseBytes { break }
            }
            if !(200..<300).contains(status ?? 0) { failure = "HTTP \(status ?? 0)" }
        } catch let error as Refusal {
            failure = error.reason
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout
                    || error == .connectTimeout {
            failure = "timed out after \(settings.timeout)"
        } catch {
            failure = "\(error)"
        }
        let elapsed = ContinuousClock.now - began
        let result = WebhookStore.AttemptResult(
            status: status, error: failure,
            durationMs: Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000))
        do {
            if failure == nil {
                try await store.recordSuccess(job, result)
            } else if let reason = try await store.recordFailure(
                job, result, retryAfter: settings.backoff.delay(afterAttempt: job.attempts + 1),
                giveUpAfter: settings.retryFor, disableAfter: settings.disableAfter) {
                logger.warning("webhook endpoint disabled", metadata: [
                    "endpoint": "\(job.endpointID)", "tenant": "\(job.tenant)", "reason": "\(reason)",
                ])
            }
        } catch {
            // The lease expires and the delivery is sent again.
            logger.error("cannot record a webhook attempt", metadata: [
                "delivery": "\(job.deliveryID)", "error": "\(error)",
            ])
        }
    }

    struct Refusal: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
