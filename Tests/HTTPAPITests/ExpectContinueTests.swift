import Foundation
import HeraldTestSupport
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Testing

@testable import HTTPAPI

/// `Expect: 100-continue` on a real listener: the interim `100 Continue` comes before the
/// client sends its body, never in the middle of another response, and not at all from
/// Hummingbird's plain server (the reason for the handler).
@Suite("Expect: 100-continue")
struct ExpectContinueTests {
    /// A route that reads the whole body and answers its length; `/slow` first waits.
    /// Answers end with a line feed, which the line-reading client needs.
    static func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/echo") { request, _ -> String in
            String(try await request.body.collect(upTo: 1 << 20).readableBytes) + "\n"
        }
        router.get("/slow") { _, _ -> String in
            try await Task.sleep(for: .milliseconds(400))
            return "slow\n"
        }
        return router
    }

    /// Runs `client` (blocking socket calls) on a thread of its own against a live server:
    /// on the concurrency pool it would hold a thread the routes need.
    static func live(server: HTTPServerBuilder, _ client: @escaping @Sendable (Int) throws -> Void) async throws {
        let app = Application(router: router(), server: server,
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { test in
            let port = try #require(test.port)
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                Thread { done.resume(with: Result { try client(port) }) }.start()
            }
        }
    }

    /// Reads one response (status line, headers, a body of Content-Length octets ending
    /// in a line feed, returned without it).
    static func response(_ client: SMTPTestClient) throws -> (status: String, body: String) {
        let status = try client.readLine()
        var length = 0
        while true {
            let line = try client.readLine()
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                length = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        var body = ""
        while body.utf8.count < length { body += try client.readLine() + "\n" }
        return (status, String(body.dropLast()))
    }

    @Test("the 100 comes before the body is sent; the route then reads the body; a request without it gets none")
    func continueBeforeBody() async throws {
        try await Self.live(server: HTTPAPI.server()) { port in
            let client = try SMTPTestClient(port: port, timeout: 5)
            defer { client.close() }
            try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n")
            #expect(try client.readLine(timeout: 2) == "HTTP/1.1 100 Continue")
            #expect(try client.readLine() == "")
            try client.send("payload")
            let first = try Self.response(client)
            #expect(first.status == "HTTP/1.1 200 OK" && first.body == "7", "\(client.transcript)")

            // The same connection, no expectation: the final response only.
            try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            let second = try Self.response(client)
            #expect(second.status == "HTTP/1.1 200 OK" && second.body == "3", "\(client.transcript)")
            #expect(client.transcript.components(separatedBy: "100 Continue").count == 2, "one 100 in all")
        }
    }

    @Test("a request pipelined behind a response still being made gets no 100 in the middle of it")
    func pipelinedGetsNone() async throws {
        try await Self.live(server: HTTPAPI.server()) { port in
            let client = try SMTPTestClient(port: port, timeout: 5)
            defer { client.close() }
            try client.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
                            + "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            let slow = try Self.response(client)
            #expect(slow.status == "HTTP/1.1 200 OK" && slow.body == "slow", "\(client.transcript)")
            try client.send("ok")
            let echo = try Self.response(client)
            #expect(echo.status == "HTTP/1.1 200 OK" && echo.body == "2", "\(client.transcript)")
            #expect(!client.transcript.contains("100 Continue"), "\(client.transcript)")
        }
    }

    @Test("without the handler the client waits: no 100 within a second")
    func plainServerWaits() async throws {
        try await Self.live(server: .http1()) { port in
            let client = try SMTPTestClient(port: port, timeout: 5)
            defer { client.close() }
            try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            #expect(throws: (any Error).self) { try client.readLine(timeout: 1) }
            try client.send("ok")
            #expect(try Self.response(client).status == "HTTP/1.1 200 OK")
        }
    }
}
