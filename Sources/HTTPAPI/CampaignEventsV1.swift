import CampaignStore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers

/// `GET /v1/campaigns/{id}/events`: the campaign's progress as Server-Sent Events (the
/// WHATWG HTML "text/event-stream" format), for live views that would otherwise poll
/// `/stats`.
///
/// - `event: progress`, `id: N`, `data:` the same JSON object `GET …/stats` answers; sent
///   at once, then whenever it changes (looked at every `interval_ms`, 1,000 by default,
///   250 to 60,000).
/// - `event: end`, `data: {"status": …}` once the campaign is `sent`, `cancelled` or
///   `expired` (after its last progress event); the server then closes the stream.
/// - `: keep-alive` comments every 15 s without a change, so that proxies keep the
///   connection and a client that went away is noticed.
/// - A database outage does not end the stream: that poll is skipped (no event), the next
///   one tries again.
///
/// Another tenant's campaign is a 404 before anything is streamed. At most
/// `[http] max_event_streams` streams are open at once; one more is a 503 problem with
/// `Retry-After`. Failure rows are not streamed: `failed` and `bounced` count them, and
/// `GET …/failures` lists them.
struct CampaignEventsV1: Sendable {
    static let keepAlive: Duration = .seconds(15)
    static let finalStatuses: Set<CampaignStatus> = [.sent, .cancelled, .expired]

    let stores: HTTPStores
    let maxStreams: Int
    private let open = NIOLockedValueBox(0)

    init(stores: HTTPStores, maxStreams: Int) {
        self.stores = stores
        self.maxStreams = maxStreams
    }

    func add(to group: RouterGroup<HeraldRequestContext>) {
        let campaigns = stores.campaigns
        let recorder = stores.statsRecorder
        let open = self.open
        let maxStreams = self.maxStreams
        group.get("campaigns/:id/events") { request, context -> Response in
            let tenant = try context.databaseTenant()
            let id = try APIInput.id(context, "id", what: "campaign")
            var requested = 1000
            if let text = request.uri.queryParameters["interval_ms"] {
                guard let value = Int(text), (250...60_000).contains(value) else {
                    throw Problem.badRequest("interval_ms: a whole number of milliseconds from 250 to 60000")
                }
                requested = value
            }
            let interval = requested
            guard let first = try await campaigns.stats(tenant: tenant, id: id) else {
                throw Problem.notFound("campaign \(id)")
            }
            let admitted = open.withLockedValue { count -> Bool in
                guard count < maxStreams else { return false }
                count += 1
                return true
            }
            guard admitted else {
                throw Problem(.serviceUnavailable,
                              "Too many campaign event streams are open (http.max_event_streams = \(maxStreams)); "
                                  + "try again shortly or poll GET /v1/campaigns/\(id)/stats.",
                              headers: [.retryAfter: "10"])
            }
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let logger = context.logger
            let body = ResponseBody { writer in
                defer { open.withLockedValue { $0 -= 1 } }
                var stats = first
                var sequence = 0
                var last: Data?
                var quietSince = ContinuousClock.now
                func send(_ text: String) async throws {
                    try await writer.write(ByteBuffer(string: text))
                    quietSince = .now
                }
                while true {
                    let progress = CampaignsV1.StatsJSON(stats, progress: await recorder?.progress(stats, campaign: id))
                    let json = try encoder.encode(progress)
                    if json != last {
                        sequence += 1
                        try await send("id: \(sequence)\nevent: progress\ndata: \(String(decoding: json, as: UTF8.self))\n\n")
                        last = json
                    } else if ContinuousClock.now - quietSince >= Self.keepAlive {
                        try await send(": keep-alive\n\n")
                    }
                    if Self.finalStatuses.contains(stats.status) {
                        try await send("event: end\ndata: {\"status\":\"\(stats.status.rawValue)\"}\n\n")
                        break
                    }
                    try await Task.sleep(for: .milliseconds(interval))
                    do {
                        guard let next = try await campaigns.stats(tenant: tenant, id: id) else { break }
                        stats = next
                    } catch {
                        logger.warning("campaign events: stats unavailable, trying again",
                                       metadata: ["campaign": "\(id)", "error": "\(error)"])
                    }
                }
                try await writer.finish(nil)
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: body)
        }
    }
}
