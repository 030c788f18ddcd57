import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

extension HTTPAPI {
    /// The HTTP/1.1 server of `herald serve`: Hummingbird's, with ``ExpectContinueHandler``
    /// in its pipeline.
    public static func server(idleTimeout: TimeAmount? = nil) -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()], idleTimeout: idleTimeout))
    }
}

/// Answers a request head carrying `Expect: 100-continue` (RFC 9110 §10.1.1) with an
/// interim `100 Continue` at once, so that a client that waits for it before sending the
/// body (curl waits a second for bodies over 1 MiB: every large import or message) sends
/// it straight away. The route reads the body, or refuses the request with its final
/// status, as for any other request (the limits stay the route's).
///
/// Only while no earlier response on the connection is still being written: a `100`
/// must not land in the middle of another response. A pipelined request behind one gets
/// none and its client goes on after its own wait, as before. Other expectations are
/// passed on untouched.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Requests read whose response has not ended yet.
    private var unanswered = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var request) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        unanswered += 1
        if unanswered == 1, let expect = request.headerFields[.expect],
           expect.lowercased() == "100-continue" {
            request.headerFields[.expect] = nil   // answered here
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            context.fireChannelRead(wrapInboundOut(.head(request)))
            return
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { unanswered = max(0, unanswered - 1) }
        context.write(data, promise: promise)
    }
}
