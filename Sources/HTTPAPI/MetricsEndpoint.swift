import Foundation
import Hummingbird
import NIOCore
import Rendering

/// `GET /metrics`: the node's figures in the Prometheus text exposition format
/// (version 0.0.4), for a Prometheus server to scrape.
///
/// Security: the figures are the node's, across tenants (listener addresses, destination
/// domains, campaign ids and counts), so no tenant API key opens them. By Prometheus'
/// convention the endpoint has no authentication of its own and the operator chooses
/// who reaches the listener (the default HTTP address is loopback); `[http] metrics =
/// false` removes the route, and `[http] metrics_token` makes it want
/// `Authorization: Bearer <token>` (Prometheus' `authorization` scrape setting), for an
/// HTTP listener that other hosts reach.
public struct MetricsEndpoint: Sendable {
    /// The exposition text, gathered at each scrape.
    let exposition: @Sendable () async -> String
    /// The bearer token the scraper must send; nil = none.
    let token: String?

    public init(token: String?, exposition: @escaping @Sendable () async -> String) {
        self.token = token
        self.exposition = exposition
    }

    public func add(to router: Router<HeraldRequestContext>) {
        router.get("metrics") { request, _ -> Response in
            if let token {
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = "Bearer realm=\"herald-metrics\""
                let value = request.headers[.authorization] ?? ""
                guard value.lowercased().hasPrefix("bearer "),
                      Crypto.constantTimeEqual(Array(value.dropFirst(7).trimmingCharacters(in: .whitespaces).utf8),
                                               Array(token.utf8))
                else {
                    throw Problem(.unauthorized, "Send the metrics token ([http] metrics_token) as: Authorization: Bearer <token>",
                                  headers: headers)
                }
            }
            let text = await exposition()
            return Response(status: .ok,
                            headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

}
