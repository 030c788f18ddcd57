import Foundation
import Hummingbird
import Postgres

/// An RFC 9457 problem: every error the HTTP API returns is one of these, as
/// `application/problem+json` with a `detail` a person can act on.
public struct Problem: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var title: String
    public var detail: String
    /// Extra members, e.g. `errors` for per-field validation problems.
    public var extensions: [String: ProblemValue]
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ detail: String, title: String? = nil,
                extensions: [String: ProblemValue] = [:], headers: HTTPFields = [:]) {
        self.status = status
        self.detail = detail
        self.title = title ?? status.reasonPhrase
        self.extensions = extensions
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var object: [String: ProblemValue] = extensions
        object["type"] = .string("about:blank")
        object["title"] = .string(title)
        object["status"] = .int(status.code)
        object["detail"] = .string(detail)
        object["instance"] = .string(request.uri.path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(object)
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    public static func badRequest(_ detail: String) -> Problem { Problem(.badRequest, detail) }
    public static func notFound(_ what: String) -> Problem { Problem(.notFound, "\(what) not found") }
    public static func unprocessable(_ detail: String, errors: [String] = []) -> Problem {
        Problem(.unprocessableContent, detail,
                extensions: errors.isEmpty ? [:] : ["errors": .array(errors.map { .string($0) })])
    }
}

/// The JSON values a problem may carry.
public indirect enum ProblemValue: Encodable, Sendable {
    case string(String)
    case int(Int)
    case array([ProblemValue])
    case object([String: ProblemValue])

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .int(let i): try c.encode(i)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

/// Turns anything a route throws into a problem: decoding errors become 400 with the
/// path of the bad field, unknown errors a bland 500 (details go to the log).
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            throw problem
        } catch let error as DecodingError {
            throw Problem.badRequest(Self.describe(error))
        } catch let error as PostgresError where error.isUnavailable {
            context.logger.warning("request failed: the database is unavailable: \(error)")
            throw Problem(.serviceUnavailable, "The database is unavailable; nothing was changed. Try again shortly.",
                          headers: [.retryAfter: "5"])
        } catch let error as HTTPError {
            throw Problem(error.status, error.body ?? error.status.reasonPhrase)
        } catch let error as any HTTPResponseError {
            throw Problem(error.status, error.status.reasonPhrase)
        } catch {
            context.logger.error("request failed: \(error)")
            throw Problem(.internalServerError, "The request could not be completed; the error is in Herald's log.")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let p = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "the body" : String(p.drop(while: { $0 == "." }))
        }
        switch error {
        case .typeMismatch(let type, let ctx): return "\(path(ctx.codingPath)): expected \(type)"
        case .valueNotFound(_, let ctx): return "\(path(ctx.codingPath)): a value is required"
        case .keyNotFound(let key, let ctx): return "\(path(ctx.codingPath + [key])): this field is required"
        case .dataCorrupted(let ctx): return "\(path(ctx.codingPath)): malformed JSON (\(ctx.debugDescription))"
        @unknown default: return "malformed JSON"
        }
    }
}
